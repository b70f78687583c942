"""Resources: one module per external thing the platform talks to."""

from ml_platform.resources.landing_zone import LandingFile, LandingZone, LocalLandingZone
from ml_platform.resources.model_store import LocalModelStore, ModelStore, ModelVersion

__all__ = [
    "LandingFile",
    "LandingZone",
    "LocalLandingZone",
    "LocalModelStore",
    "ModelStore",
    "ModelVersion",
]
