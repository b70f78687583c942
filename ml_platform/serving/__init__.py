"""Serving deployed models.

- ``CheckedModel`` (a stored model behind its signature check) and ``load_production_model``, from
  ``ml_platform.checked_model`` (batch scoring uses it too);
- ``holder``: the served version of one model, following its production or candidate pointer (hot reload);
- ``rollout``: a rollout's strategy as the server applies it (shadow, canary) and the canary's routing;
- ``parsing``: request bodies (JSON records, ``{"columns", "data"}``, CSV) to rows;
- ``app`` and ``server``: ``ml-platform serve``, the HTTP app on uvicorn.
"""

from ml_platform.checked_model import CheckedModel, PredictionResult, load_production_model

__all__ = ["CheckedModel", "PredictionResult", "load_production_model"]
