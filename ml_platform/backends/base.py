"""The backends of one environment, as a bundle: what ``environment.backends_for`` returns and what
``local.py`` and ``s3.py`` each build."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Backends:
    landing_zone: Any
    model_store: Any
    io_manager: Any
    model_io_manager: Any

    def resources(self) -> dict[str, Any]:
        """As Dagster resources, by the keys the assets ask for."""
        return {
            "landing_zone": self.landing_zone,
            "model_store": self.model_store,
            "io_manager": self.io_manager,
            "model_io_manager": self.model_io_manager,
        }
