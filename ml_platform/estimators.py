"""The estimators a pipeline may declare, their parameters, and the metrics of each task.

Each estimator has a parameter model (pydantic): it validates ``model.params`` of pipelines.yaml at
load, and the trained_model run config of a pipeline is built from it (the YAML values become the
defaults), so the UI launchpad and ``--config-json`` accept exactly these parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RandomForestParams(_Params):
    n_estimators: int = Field(default=100, ge=1, description="Number of trees.")
    max_depth: int | None = Field(default=10, ge=1, description="Largest tree depth; null for unlimited.")
    min_samples_leaf: int = Field(default=1, ge=1, description="Fewest rows in a leaf.")
    random_state: int = Field(default=42, description="Seed of the forest.")
    n_jobs: int = Field(default=-1, description="Cores used to fit trees; -1 for all cores (not 0).")

    @field_validator("n_jobs")
    @classmethod
    def _jobs(cls, value: int) -> int:
        if value == 0:
            raise ValueError("n_jobs must not be 0 (use -1 for all cores)")
        return value


class HistGradientBoostingParams(_Params):
    max_iter: int = Field(default=100, ge=1, description="Boosting iterations (trees).")
    learning_rate: float = Field(default=0.1, gt=0, description="Shrinkage of each tree.")
    max_depth: int | None = Field(default=None, ge=1, description="Largest tree depth; null for unlimited.")
    max_leaf_nodes: int | None = Field(default=31, ge=2, description="Most leaves per tree; null for unlimited.")
    l2_regularization: float = Field(default=0.0, ge=0, description="L2 penalty on leaf values.")
    early_stopping: bool = Field(
        default=False, description="Stop when a held-out part of the training rows stops improving."
    )
    random_state: int = Field(default=42, description="Seed (binning subsample, early-stopping split).")


class LogisticRegressionParams(_Params):
    C: float = Field(default=1.0, gt=0, description="Inverse regularization strength.")
    max_iter: int = Field(default=1000, ge=1, description="Solver iterations.")
    class_weight: str | None = Field(
        default=None, description="'balanced' to weigh classes by inverse frequency; null for equal weights."
    )

    @field_validator("class_weight")
    @classmethod
    def _weights(cls, value: str | None) -> str | None:
        if value not in (None, "balanced"):
            raise ValueError(f"{value!r} is not 'balanced' or null")
        return value


class RidgeParams(_Params):
    alpha: float = Field(default=1.0, ge=0, description="L2 regularization strength.")


@dataclass(frozen=True)
class Estimator:
    name: str
    task: str
    params: type[_Params]
    import_path: str  # module.Class, imported when a model is built
    fixed: tuple[tuple[str, Any], ...] = ()  # arguments the platform sets, not pipelines.yaml

    def make(self, params: dict[str, Any]):
        module, _, cls = self.import_path.rpartition(".")
        import importlib

        estimator_cls = getattr(importlib.import_module(module), cls)
        return estimator_cls(**self.params(**params).model_dump(), **dict(self.fixed))

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """The params as the estimator takes them (pydantic ValidationError when one is wrong)."""
        return self.params(**params).model_dump()


@dataclass(frozen=True)
class ImportedEstimator:
    """A team's own estimator: an import path (``lightgbm:LGBMClassifier``, ``mypkg.models:make_model``)
    to a scikit-learn-compatible class, or to a factory returning such an estimator, called with
    ``model.params``."""

    import_path: str
    task: str

    @property
    def name(self) -> str:
        return self.import_path

    def make(self, params: dict[str, Any]):
        """The estimator; UserCodeError when the path, the call or the result is wrong."""
        from sklearn.base import is_classifier, is_regressor

        from ml_platform.errors import UserCodeError
        from ml_platform.user_code import import_object

        factory = import_object(self.import_path)
        if not callable(factory):
            raise UserCodeError(f"{self.import_path} is a {type(factory).__name__}, not a class or a function")
        try:
            estimator = factory(**params)
        except Exception as exc:  # noqa: BLE001 - the team's code refused the params: say which and why
            raise UserCodeError(
                f"{self.import_path}(**params) failed: {type(exc).__name__}: {exc}", about_params=bool(params)
            ) from None
        if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
            raise UserCodeError(
                f"{self.import_path} gave a {type(estimator).__name__}, not a scikit-learn"
                " estimator (it needs fit and predict)"
            )
        try:
            wrong = is_regressor(estimator) if self.task == "classification" else is_classifier(estimator)
        except Exception:  # noqa: BLE001 - an estimator without scikit-learn's tags: take it as given
            wrong = False
        if wrong:
            kind = "regressor" if self.task == "classification" else "classifier"
            raise UserCodeError(f"{self.import_path} gives a {kind}, but the task is {self.task}")
        return estimator

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Build it once with the params (a bad one fails here, at load), and keep them as given."""
        self.make(params)
        return dict(params)


def estimator_of(task: str, name: str) -> Estimator | ImportedEstimator | None:
    """A built-in estimator by name, or an imported one by import path; None for an unknown name."""
    from ml_platform.user_code import is_import_path

    if is_import_path(name):
        return ImportedEstimator(name, task)
    return ESTIMATORS.get((task, name))


# HistGradientBoosting reads the encoder's pandas categoricals as categories (never one-hot).
_NATIVE_CATEGORIES = (("categorical_features", "from_dtype"),)

ESTIMATORS: dict[tuple[str, str], Estimator] = {
    (e.task, e.name): e
    for e in [
        Estimator("random_forest", "classification", RandomForestParams, "sklearn.ensemble.RandomForestClassifier"),
        Estimator(
            "hist_gradient_boosting",
            "classification",
            HistGradientBoostingParams,
            "sklearn.ensemble.HistGradientBoostingClassifier",
            _NATIVE_CATEGORIES,
        ),
        Estimator(
            "logistic_regression", "classification", LogisticRegressionParams, "sklearn.linear_model.LogisticRegression"
        ),
        Estimator("random_forest", "regression", RandomForestParams, "sklearn.ensemble.RandomForestRegressor"),
        Estimator(
            "hist_gradient_boosting",
            "regression",
            HistGradientBoostingParams,
            "sklearn.ensemble.HistGradientBoostingRegressor",
            _NATIVE_CATEGORIES,
        ),
        Estimator("ridge", "regression", RidgeParams, "sklearn.linear_model.Ridge"),
    ]
}


def estimator_names(task: str) -> list[str]:
    return [name for (t, name) in ESTIMATORS if t == task]
