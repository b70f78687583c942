"""How a model version was built, as two records shared by the trained model and the stored version.

- ``Recipe``: what the model is built from, known before the fit (the train split's fingerprint,
  the estimator and its params, the columns, the pipeline's version and code, the encoding, the
  decision). Its ``identity`` is the sha256 of it: the same recipe is the same model, stored once
  and reused instead of fitted again.
- ``Fit``: what fitting it gave (classes, rows, time, the as-of day, the input signature, and with
  ``model.variants`` the chosen variant's cross-validated score).

``TrainedModel`` (ml.py) and ``VersionRecord`` (version_record.py) each hold one of both: the
deploy hands them over whole, the reuse of a stored version gets them back whole. In a version's
metadata.json their fields stay at the top level, as every earlier version of the platform wrote
them, so older files load and newer readers find the same keys. Free of Dagster.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from ml_platform.signature import Signature


def platform_version() -> str:
    """The installed ml_platform version, recorded with every model and part of its recipe."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ml_platform")
    except PackageNotFoundError:
        return "unknown"


def _lists(values: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        values[name] = list(values.get(name) or [])


def _dicts(values: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if name in values and not isinstance(values[name], dict):
            values.pop(name)


@dataclass(frozen=True)
class Recipe:
    """What a model is built from (older metadata.json files may lack some: their defaults)."""

    data_fingerprint: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    feature_columns: list[str] = field(default_factory=list)
    task: str | None = None  # classification or regression (older files may not say)
    estimator: str | None = None
    pipeline_version: str | None = None  # the pipeline's ``version`` in pipelines.yaml
    feature_transform: str | None = None  # its ``features.transform`` (an import path)
    # The team's own modules the model needs to load (ml_platform.user_code.requirements_of).
    requirements: list[dict[str, str]] = field(default_factory=list)
    # How its columns were encoded (ml.encoding_recipe): the declared kinds and the one-hot bound.
    encoding: dict[str, Any] | None = None
    # A binary classifier's decision as pipelines.yaml sets it; the threshold it predicts at is the
    # fitted model's (ml_platform.decision.decision_of).
    decision: dict[str, Any] | None = None

    @property
    def identity(self) -> str:
        """sha256 of the recipe with ml_platform's and scikit-learn's versions: a stored version with
        the same identity is the same model, so deploy does not store it twice and trained_model
        reuses it instead of fitting again."""
        import sklearn

        recipe = {
            "data_fingerprint": self.data_fingerprint,
            "params": self.params,
            "target": self.target,
            "feature_columns": self.feature_columns,
            "task": self.task,
            "estimator": self.estimator,
            "platform_version": platform_version(),
            "scikit_learn": sklearn.__version__,
            "pipeline_version": self.pipeline_version,
            "feature_transform": self.feature_transform,
            "requirements": self.requirements,
        }
        if self.encoding is not None:  # recorded since models encode by kind (TableEncoder)
            recipe["encoding"] = self.encoding
        if self.decision is not None:  # only models with a decision threshold: the others keep their identity
            recipe["decision"] = self.decision
        return "sha256:" + hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """The recipe's keys of ``data`` (metadata.json, or an older pickled TrainedModel's state)."""
        values = {f.name: data[f.name] for f in fields(cls) if data.get(f.name) is not None}
        _dicts(values, ("params", "encoding", "decision"))
        _lists(values, ("feature_columns", "requirements"))
        return cls(**values)


@dataclass(frozen=True)
class Fit:
    """What fitting a recipe gave."""

    classes: list[Any] = field(default_factory=list)
    training_rows: int | None = None
    fit_seconds: float | None = None
    data_as_of: str | None = None  # the newest day of the window it learnt from
    signature: Signature | None = None  # the input contract (ml_platform.signature)
    variant: str | None = None  # with model.variants: the one chosen, and its cross-validated score
    cv_metric: str | None = None
    cv_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """As metadata.json holds it (the signature as its own dict)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "signature"}
        data["signature"] = self.signature.to_dict() if self.signature is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fit:
        values = {f.name: data[f.name] for f in fields(cls) if data.get(f.name) is not None}
        values["signature"] = Signature.of_version(data)
        _lists(values, ("classes",))
        return cls(**values)


RECIPE_KEYS = frozenset(f.name for f in fields(Recipe))
FIT_KEYS = frozenset(f.name for f in fields(Fit))
