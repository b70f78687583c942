"""The value of the model_metrics asset, free of Dagster: ``ModelMetrics``, the model's scores on the
test split with the production model's on the same fresh rows (``ChampionComparison``) and how its
signature differs from production's (``SignatureComparison``). Written in one place (model_metrics),
read by the gate and the signature check, deployed_model and the MLflow tracking through its fields,
not by reaching into a dict.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from ml_platform.signature import SignatureChange
from ml_platform.slices import SliceComparison, SliceScores

# What the scoring functions of ml.py return beside the scores themselves.
_CLASSIFICATION_DETAILS = ("labels", "confusion_matrix", "report", "not_computed", "decision")
_REGRESSION_DETAILS = ("residual_quantiles", "calibration")
# A metric's column in scikit-learn's classification_report.
_REPORT_COLUMNS = {"precision": "precision", "recall": "recall", "f1": "f1-score"}


def _defaults_for_old_values(obj: Any, state: dict[str, Any]) -> None:
    """Unpickling a value stored before a field existed: that field takes its default."""
    for f in fields(obj):
        if f.name not in state:
            state[f.name] = f.default_factory() if f.default_factory is not MISSING else f.default
    obj.__dict__.update(state)


def score_key(metric: str, of_class: str | None = None) -> str:
    """Where a value is kept in a comparison: ``roc_auc``; one class's, ``recall[yes]``."""
    return metric if of_class is None else f"{metric}[{of_class}]"


@dataclass(frozen=True)
class ChampionComparison:
    """The production model (the champion) and the new one (the challenger) on the same fresh test
    rows: their scores (every metric, and the gated per-class values under ``score_key``), or why
    they could not be compared (then the gate uses its thresholds alone)."""

    version: str | None
    rows: int = 0
    champion: dict[str, float] = field(default_factory=dict)
    challenger: dict[str, float] = field(default_factory=dict)
    problem: str | None = None
    # Challenger minus champion on each bootstrap resample of the same rows, per gated value
    # (ml_platform.intervals.paired_differences); empty when compared before there were any.
    differences: dict[str, list[float]] = field(default_factory=dict)
    # Both models on each slice of evaluation.slices of the same fresh rows.
    slices: list[SliceComparison] = field(default_factory=list)

    def __setstate__(self, state: dict[str, Any]) -> None:
        _defaults_for_old_values(self, state)

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "slices": [s.to_dict() for s in self.slices]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChampionComparison:
        slices = [SliceComparison.from_dict(s) for s in data.get("slices") or []]
        return cls(**{**data, "slices": slices})

    def probability_not_worse(self, key: str, higher_is_better: bool, allowed: float) -> float | None:
        """The share of resamples where the challenger is not worse than the champion by more than
        ``allowed``: how sure the comparison is. None without resamples for ``key``."""
        values = self.differences.get(key)
        if not values:
            return None
        oriented = [v if higher_is_better else -v for v in values]
        return sum(v >= -allowed - 1e-12 for v in oriented) / len(oriented)

    @property
    def compared(self) -> bool:
        return bool(self.champion) and bool(self.challenger)


@dataclass(frozen=True)
class Baseline:
    """The do-nothing model (scikit-learn's ``DummyClassifier()``: the training rows' class shares,
    so always the most frequent class; ``DummyRegressor()``: the training mean), fitted on the same
    training rows and scored on the same test rows: what a model must beat to be worth deploying."""

    name: str
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SignatureComparison:
    """The new model's signature against the production model's: the change, or a note saying why
    there is nothing to compare (no production model yet, one stored without a signature)."""

    production_version: str | None
    change: SignatureChange | None = None
    note: str | None = None

    def describe(self) -> str:
        return self.change.describe() if self.change is not None else (self.note or "")


@dataclass(frozen=True)
class ModelMetrics:
    """model_metrics' value: the scores (every metric of the task the model can have) on ``test_rows``
    rows, the details people look at (classification: labels, confusion matrix, per-class report,
    the metrics not computed and why; regression:
    residual quantiles, predicted vs actual per decile), the champion comparison, the signature
    comparison, the MLflow run the scores were logged to, and the do-nothing baseline's scores."""

    task: str
    scores: dict[str, float]
    test_rows: int
    details: dict[str, Any] = field(default_factory=dict)
    champion: ChampionComparison | None = None
    signature: SignatureComparison | None = None
    mlflow_run_id: str | None = None
    baseline: Baseline | None = None  # None: scored before baselines (or without one)
    # The bootstrap 95 % interval of each score (and gated per-class value), by score_key.
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    # Every score on each slice of evaluation.slices, and the worst slices of every categorical feature
    # by the gate metric.
    slices: list[SliceScores] = field(default_factory=list)
    worst_slices: list[SliceScores] = field(default_factory=list)

    def __setstate__(self, state: dict[str, Any]) -> None:
        _defaults_for_old_values(self, state)

    @classmethod
    def of(cls, task: str, measured: dict[str, Any]) -> ModelMetrics:
        """From what ml.classification_metrics / ml.regression_metrics return."""
        names = _CLASSIFICATION_DETAILS if task == "classification" else _REGRESSION_DETAILS
        details = {k: measured[k] for k in names if k in measured}
        scores = {k: float(v) for k, v in measured.items() if k not in details and k != "test_rows"}
        return cls(task=task, scores=scores, test_rows=int(measured["test_rows"]), details=details)

    def score(self, metric: str) -> float:
        return float(self.scores[metric])

    def interval(self, metric: str, of_class: str | None = None) -> tuple[float, float] | None:
        """The bootstrap 95 % interval of a value; None when not computed (or scored before intervals)."""
        found = (self.intervals or {}).get(score_key(metric, of_class))
        return None if found is None else (float(found[0]), float(found[1]))

    def shown(self, metric: str, of_class: str | None = None) -> str:
        """A value as people read it, with its interval: "0.9620 [0.9310, 0.9860]"."""
        value = self.value(metric, of_class)
        if value is None:
            return "not computed"
        interval = self.interval(metric, of_class)
        return f"{value:.4f}" + (f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "")

    def value(self, metric: str, of_class: str | None = None) -> float | None:
        """A score, or one class's precision / recall / f1 (from the report); None when not computed."""
        if of_class is None:
            return self.scores.get(metric)
        row = (self.details.get("report") or {}).get(of_class)
        return None if not isinstance(row, dict) else float(row[_REPORT_COLUMNS[metric]])

    def classes(self) -> list[str]:
        """The model's classes as the report names them."""
        return [str(label) for label in self.details.get("labels", [])]

    def class_rows(self, of_class: str) -> int:
        """How many test rows are of ``of_class`` (its support)."""
        row = (self.details.get("report") or {}).get(of_class)
        return int(row["support"]) if isinstance(row, dict) else 0

    def compared_values(self, per_class: list[tuple[str, str]]) -> dict[str, float]:
        """Every score and the (metric, class) values asked for, keyed by ``score_key``: what a
        champion comparison keeps of one model."""
        values = dict(self.scores)
        for metric, of_class in per_class:
            value = self.value(metric, of_class)
            if value is not None:
                values[score_key(metric, of_class)] = value
        return values

    def with_(self, **changes: Any) -> ModelMetrics:
        """This value with some fields set (the champion, the signature, the MLflow run)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """As plain data (JSON-ready but for numpy values a report may hold)."""
        return {
            "task": self.task,
            "scores": dict(self.scores),
            "test_rows": self.test_rows,
            "details": dict(self.details),
            "champion": None if self.champion is None else self.champion.to_dict(),
            "signature": None
            if self.signature is None
            else {
                "production_version": self.signature.production_version,
                "change": None if self.signature.change is None else self.signature.change.to_dict(),
                "note": self.signature.note,
            },
            "mlflow_run_id": self.mlflow_run_id,
            "baseline": None if self.baseline is None else vars(self.baseline).copy(),
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "slices": [s.to_dict() for s in self.slices],
            "worst_slices": [s.to_dict() for s in self.worst_slices],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetrics:
        champion = data.get("champion")
        signature = data.get("signature")
        return cls(
            task=data["task"],
            scores=dict(data["scores"]),
            test_rows=int(data["test_rows"]),
            details=dict(data.get("details") or {}),
            champion=ChampionComparison.from_dict(champion) if champion else None,
            signature=None
            if not signature
            else SignatureComparison(
                signature["production_version"],
                SignatureChange.from_dict(signature["change"]) if signature.get("change") else None,
                signature.get("note"),
            ),
            mlflow_run_id=data.get("mlflow_run_id"),
            baseline=Baseline(**data["baseline"]) if data.get("baseline") else None,
            intervals={k: (float(v[0]), float(v[1])) for k, v in (data.get("intervals") or {}).items()},
            slices=[SliceScores.from_dict(s) for s in data.get("slices") or []],
            worst_slices=[SliceScores.from_dict(s) for s in data.get("worst_slices") or []],
        )
