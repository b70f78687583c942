"""Loading the production model, verified, for code that predicts."""

from __future__ import annotations

from typing import Any

from ml_platform.resources.model_store import LocalModelStore, ModelVersion, model_store_for
from ml_platform.settings import load_settings


def load_production_model(
    model_name: str | None = None, store_dir: str | None = None, version: str | None = None
) -> tuple[Any, ModelVersion]:
    """Return (sklearn Pipeline, ModelVersion) of the production model, after checking its sha256.

    Defaults come from the settings: ML_PLATFORM_MODEL_NAME, and the store ML_PLATFORM_ENV selects
    (ML_PLATFORM_MODEL_STORE_DIR locally, the S3 bucket in prod); ``store_dir`` picks a local
    store explicitly. The pipeline
    predicts on raw rows (a DataFrame with the training feature columns).
    Raises NoProductionModelError, ModelVersionNotFoundError or ModelIntegrityError.
    """
    settings = load_settings()
    store = LocalModelStore(root=store_dir) if store_dir else model_store_for(settings)
    return store.load(model_name or settings.model_name, version=version)
