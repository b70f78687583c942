"""A stored version's record, free of Dagster: what ``metadata.json`` of a model version says about
it, written in one place (deployed_model builds it from the model and its score; the model store
adds what it knows: name, version, sha256, size, time, extras) and read in one place
(``VersionRecord.from_dict``: every reader, from the pipeline's steps to ``ml-platform`` and the
server, gets these typed fields instead of reaching into a dict).

Files written by older versions of the platform still load: a field they lack takes its default,
a key this version does not know is kept in ``others`` and written back as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from ml_platform.signature import Signature


@dataclass(frozen=True)
class VersionRecord:
    """What one model version records (its metadata.json)."""

    # The model and where it came from (deployed_model).
    task: str | None = None  # classification or regression (older files may not say)
    estimator: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None  # with model.variants: the one chosen
    target: str | None = None
    feature_columns: list[str] = field(default_factory=list)
    signature: Signature | None = None
    classes: list[Any] = field(default_factory=list)
    training_rows: int | None = None
    fit_seconds: float | None = None
    cv_metric: str | None = None  # a variant's cross-validated score
    cv_score: float | None = None
    data_fingerprint: str | None = None
    data_as_of: str | None = None
    platform_version: str | None = None
    pipeline_version: str | None = None
    feature_transform: str | None = None
    requirements: list[dict[str, str]] = field(default_factory=list)
    encoding: dict[str, Any] | None = None
    # A binary classifier's decision: as pipelines.yaml set it (part of the recipe), and the
    # threshold it predicts at (ml_platform.decision.decision_of); None: at 0.5, as predict does.
    decision: dict[str, Any] | None = None
    decision_threshold: dict[str, Any] | None = None
    # Its score on the test split (model_metrics' headline scores), and which one the gate judged.
    metrics: dict[str, float] = field(default_factory=dict)
    # Each score's bootstrap 95 % interval, [low, high] (versions stored before intervals: none).
    metric_intervals: dict[str, list[float]] = field(default_factory=dict)
    gate_metric: str | None = None
    confusion_matrix: list[list[int]] | None = None
    labels: list[Any] | None = None
    mlflow_run_id: str | None = None
    dagster_run_id: str | None = None
    # What the model store adds when it stores the version.
    model_name: str | None = None
    version: str | None = None
    identity: str | None = None  # the recipe (ml.recipe_identity): the same recipe is stored once
    sha256: str | None = None
    size_bytes: int | None = None
    created_at: str | None = None
    extras: list[str] = field(default_factory=list)  # the files stored beside the model
    # Keys of a file this version of the platform does not know (written by a newer one, or by hand).
    others: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As metadata.json holds it (JSON-ready; the signature as its own dict)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("signature", "others")}
        data["signature"] = self.signature.to_dict() if self.signature is not None else None
        return {**self.others, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionRecord:
        """A record from metadata.json, of this version of the platform or an older one."""
        known = {f.name for f in fields(cls)} - {"others"}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        values["signature"] = Signature.of_version(data)
        for name in ("params", "metrics", "metric_intervals", "encoding", "decision", "decision_threshold"):
            if name in values and not isinstance(values[name], dict):
                values.pop(name)
        for name in ("feature_columns", "classes", "requirements", "extras"):
            values[name] = list(values.get(name) or [])
        return cls(**values, others={k: v for k, v in data.items() if k not in known})

    def stored(self, **store_fields: Any) -> VersionRecord:
        """This record with what the model store adds (model_name, version, identity, sha256, …)."""
        return replace(self, **store_fields)
