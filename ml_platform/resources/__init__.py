"""The contracts the assets talk to, one module each: the landing zone, the model store, the IO
managers, the notifier. Their local and S3 implementations are in ``ml_platform.backends``."""

from ml_platform.resources.landing_zone import LandingFile, LandingZone
from ml_platform.resources.model_store import ModelStore, ModelVersion

__all__ = ["LandingFile", "LandingZone", "ModelStore", "ModelVersion"]
