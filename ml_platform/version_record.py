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

from ml_platform.recipe import FIT_KEYS, RECIPE_KEYS, Fit, Recipe


@dataclass(frozen=True)
class VersionRecord:
    """What one model version records (its metadata.json)."""

    # How it was built and what the fit gave (ml_platform.recipe): handed over whole by deploy.
    recipe: Recipe = field(default_factory=Recipe)
    fit: Fit = field(default_factory=Fit)
    # A binary classifier's threshold as fitted (ml_platform.decision.decision_of); None: at 0.5,
    # as predict does.
    decision_threshold: dict[str, Any] | None = None
    # Its score on the test split (model_metrics' headline scores), and which one the gate judged.
    metrics: dict[str, float] = field(default_factory=dict)
    # Each score's bootstrap 95 % interval, [low, high] (versions stored before intervals: none).
    metric_intervals: dict[str, list[float]] = field(default_factory=dict)
    gate_metric: str | None = None
    confusion_matrix: list[list[int]] | None = None
    labels: list[Any] | None = None
    platform_version: str | None = None
    # Whether it serves through its compiled form, with the parity check's evidence, or why not
    # (``compiled.Parity.to_dict()``); None: stored before compiled forms (served by scikit-learn).
    parity: dict[str, Any] | None = None
    mlflow_run_id: str | None = None
    dagster_run_id: str | None = None
    # What the model store adds when it stores the version.
    model_name: str | None = None
    version: str | None = None
    identity: str | None = None  # the recipe's identity (Recipe.identity): the same recipe is stored once
    sha256: str | None = None
    size_bytes: int | None = None
    created_at: str | None = None
    extras: list[str] = field(default_factory=list)  # the files stored beside the model
    # Keys of a file this version of the platform does not know (written by a newer one, or by hand).
    others: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As metadata.json holds it: the recipe's and the fit's fields at the top level, as ever."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NESTED}
        return {**self.others, **self.recipe.to_dict(), **self.fit.to_dict(), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionRecord:
        """A record from metadata.json, of this version of the platform or an older one."""
        own = {f.name for f in fields(cls)} - _NESTED
        values = {k: v for k, v in data.items() if k in own and v is not None}
        for name in ("metrics", "metric_intervals", "decision_threshold", "parity"):
            if name in values and not isinstance(values[name], dict):
                values.pop(name)
        values["extras"] = list(values.get("extras") or [])
        known = own | RECIPE_KEYS | FIT_KEYS
        return cls(
            recipe=Recipe.from_dict(data),
            fit=Fit.from_dict(data),
            **values,
            others={k: v for k, v in data.items() if k not in known},
        )

    def stored(self, **store_fields: Any) -> VersionRecord:
        """This record with what the model store adds (model_name, version, identity, sha256, …)."""
        return replace(self, **store_fields)


_NESTED = frozenset({"recipe", "fit", "others"})
