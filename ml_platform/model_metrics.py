"""The value of the model_metrics asset, free of Dagster: ``ModelMetrics``, the model's scores on the
test split with what people look at beside them (``ClassificationDetails`` / ``RegressionDetails``),
the production model's on the same fresh rows (``ChampionComparison``) and how its signature
differs from production's (``SignatureComparison``). Written in one place (model_metrics),
read by the gate and the signature check, deployed_model and the MLflow tracking through its fields,
not by reaching into a dict.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from ml_platform.signature import SignatureChange
from ml_platform.slices import SliceComparison, SliceScores

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


class _Record:
    """to_dict / from_dict of a flat record of plain values (a details record)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        _defaults_for_old_values(self, state)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class ClassificationDetails(_Record):
    """What a classification score holds beside its numbers (ml.classification_metrics): the classes
    as the target holds them, the confusion matrix (rows actual, columns predicted, in ``labels``'
    order), scikit-learn's classification_report (``output_dict``: per class precision, recall,
    f1-score and support, under the class's text, and the averages), the metrics the rows could not
    define with why, and the model's decision threshold (ml_platform.decision) when it has one."""

    labels: list[Any] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    not_computed: dict[str, str] = field(default_factory=dict)
    decision: dict[str, Any] | None = None

    def classes(self) -> list[str]:
        """The classes as the report names them."""
        return [str(label) for label in self.labels]

    def class_report(self, of_class: str) -> dict[str, Any] | None:
        """One class's row of the report (precision, recall, f1-score, support); None when not a class."""
        row = self.report.get(of_class)
        return row if isinstance(row, dict) else None


@dataclass(frozen=True)
class RegressionDetails(_Record):
    """What a regression score holds beside its numbers (ml.regression_metrics): the residuals'
    (actual - predicted) quantiles by name (``p5`` … ``p95``), and predicted vs actual per decile of
    the actual values (one row per bin: "Actual (bin)", "Rows", "Mean actual", "Mean predicted")."""

    residual_quantiles: dict[str, float] = field(default_factory=dict)
    calibration: list[dict[str, Any]] = field(default_factory=list)


Details = ClassificationDetails | RegressionDetails


def details_of(task: str, value: Details | dict[str, Any] | None) -> Details:
    """The task's details record from a record, or from the plain dict an older platform stored
    (the keys are the fields' names); empty ones from None."""
    kind = ClassificationDetails if task == "classification" else RegressionDetails
    if isinstance(value, kind):
        return value
    if value is None or isinstance(value, dict):
        return kind.from_dict(value or {})
    raise TypeError(f"{type(value).__name__} given as the details of a {task} score")


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
    rows, the details people look at (``ClassificationDetails``: labels, confusion matrix,
    per-class report, the metrics not computed and why, the decision threshold;
    ``RegressionDetails``: residual quantiles, predicted vs actual per decile), the champion
    comparison, the signature comparison, the MLflow run the scores were logged to, and the
    do-nothing baseline's scores."""

    task: str
    scores: dict[str, float]
    test_rows: int
    # The task's record: empty ones when not given; an older platform's dict is turned into one.
    details: Details = None  # type: ignore[assignment]
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
    # A classifier's calibration on the test split (``estimate.Calibration.to_dict()``), kept with the
    # version for the rollout's label-free estimate of live accuracy; None without probabilities.
    calibration: dict[str, Any] | None = None
    # The compiled form's answers on the test split against scikit-learn's (``compiled.Parity.to_dict()``):
    # recorded with the version, it says whether the server may serve through the compiled form.
    parity: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", details_of(self.task, self.details))

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A value pickled by an older platform holds its details as a plain dict.
        _defaults_for_old_values(self, {**state, "details": details_of(state["task"], state.get("details"))})

    @classmethod
    def of(cls, task: str, measured: dict[str, Any]) -> ModelMetrics:
        """From what ml.classification_metrics / ml.regression_metrics return."""
        kind = ClassificationDetails if task == "classification" else RegressionDetails
        names = {f.name for f in fields(kind)}
        scores = {k: float(v) for k, v in measured.items() if k not in names and k != "test_rows"}
        return cls(task=task, scores=scores, test_rows=int(measured["test_rows"]), details=kind.from_dict(measured))

    @property
    def classification(self) -> ClassificationDetails | None:
        """The classification details; None for a regression."""
        return self.details if isinstance(self.details, ClassificationDetails) else None

    @property
    def decision(self) -> dict[str, Any] | None:
        """The decision threshold the counting metrics were taken at (ml_platform.decision); None for
        a regression or a classifier without one."""
        return self.classification.decision if self.classification else None

    @property
    def not_computed(self) -> dict[str, str]:
        """The metrics the test rows could not define, with why (classification only)."""
        return self.classification.not_computed if self.classification else {}

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
        row = self.classification.class_report(of_class) if self.classification else None
        return None if row is None else float(row[_REPORT_COLUMNS[metric]])

    def classes(self) -> list[str]:
        """The model's classes as the report names them."""
        return self.classification.classes() if self.classification else []

    def class_rows(self, of_class: str) -> int:
        """How many test rows are of ``of_class`` (its support)."""
        row = self.classification.class_report(of_class) if self.classification else None
        return 0 if row is None else int(row["support"])

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
            "details": self.details.to_dict(),
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
            details=data.get("details"),  # __post_init__ makes it the task's record
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
