"""The metrics a model is scored by: one registry that everything else reads.

Each ``Metric`` says its name, its label in the UI, its task, which way is better, the scikit-learn
scorer that cross-validation uses, whether it needs ``predict_proba``, how the bootstrap resamples
it, and the text of its gate threshold. The gate's fields (``min_<metric>`` / ``max_<metric>`` of
pipelines.yaml, ml_platform/spec.py), the scorers (ml.py), the intervals (intervals.py), the labels
of the UI and the CLI, and docs/pipelines.md are all built from ``METRICS``; a unit test checks that
ml.py computes exactly these and that intervals.py resamples each one. Free of Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass

COUNTING = "counting"  # a function of the confusion matrix: resampled as one multinomial draw
WEIGHTED = "weighted"  # a function of the rows: resampled with Poisson(1) row weights


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    task: str  # classification | regression
    higher_is_better: bool
    cv_scorer: str  # scikit-learn's scorer name (errors are scored negated)
    gate_text: str  # what its gate threshold means, for the field's description
    resampling: str = WEIGHTED
    unit: bool = False  # its values lie between 0 and 1
    needs_proba: bool = False
    per_class: bool = False  # a gate threshold may name classes: {"yes": 0.3}
    headline: bool = False  # one of the scores model_metrics leads with
    multiclass_scorer: str | None = None  # the scorer for more than two classes, when it differs

    @property
    def bounds(self) -> dict[str, float]:
        """The values it can take, as pydantic's bounds: 0 to 1, at most 1 (R2), or 0 and more (errors)."""
        if self.unit:
            return {"ge": 0.0, "le": 1.0}
        return {"le": 1.0} if self.higher_is_better else {"ge": 0.0}

    @property
    def gate_key(self) -> str:
        """Its key in the gate of pipelines.yaml: ``min_accuracy``, ``max_log_loss``."""
        return f"{'min' if self.higher_is_better else 'max'}_{self.name}"


def _counting(name: str, label: str, scorer: str, text: str, **options) -> Metric:
    return Metric(name, label, "classification", True, scorer, text, COUNTING, unit=True, **options)


def _per_class_text(what: str) -> str:
    return (
        f"Smallest test {what} deployed (classification): one number for the weighted {what}, or"
        f' per class, `{{"yes": 0.3}}` (quote class names YAML reads as booleans: yes, no, on, off).'
    )


METRICS: tuple[Metric, ...] = (
    _counting(
        "accuracy",
        "Accuracy",
        "accuracy",
        "Smallest test accuracy deployed (classification; default gate: 0.8).",
        headline=True,
    ),
    _counting(
        "balanced_accuracy",
        "Balanced accuracy",
        "balanced_accuracy",
        "Smallest test balanced accuracy deployed (classification).",
    ),
    _counting(
        "precision", "Precision", "precision_weighted", _per_class_text("precision"), per_class=True, headline=True
    ),
    _counting("recall", "Recall", "recall_weighted", _per_class_text("recall"), per_class=True, headline=True),
    _counting("f1", "F1", "f1_weighted", _per_class_text("F1"), per_class=True, headline=True),
    _counting(
        "precision_macro",
        "Precision (macro)",
        "precision_macro",
        "Smallest test macro precision deployed (classification).",
    ),
    _counting(
        "recall_macro", "Recall (macro)", "recall_macro", "Smallest test macro recall deployed (classification)."
    ),
    _counting("f1_macro", "F1 (macro)", "f1_macro", "Smallest test macro F1 deployed (classification)."),
    Metric(
        "roc_auc",
        "ROC AUC",
        "classification",
        True,
        "roc_auc",
        "Smallest test ROC AUC deployed (classification; one-vs-rest macro for more than two classes;"
        " the estimator needs predict_proba).",
        unit=True,
        needs_proba=True,
        multiclass_scorer="roc_auc_ovr",
    ),
    Metric(
        "average_precision",
        "Average precision",
        "classification",
        True,
        "average_precision",
        "Smallest test average precision deployed (classification; needs predict_proba).",
        unit=True,
        needs_proba=True,
    ),
    Metric(
        "log_loss",
        "Log loss",
        "classification",
        False,
        "neg_log_loss",
        "Largest test log loss deployed (classification; needs predict_proba).",
        needs_proba=True,
    ),
    Metric(
        "brier_score_loss",
        "Brier score",
        "classification",
        False,
        "neg_brier_score",
        "Largest test Brier score deployed (binary classification; needs predict_proba).",
        unit=True,
        needs_proba=True,
    ),
    Metric(
        "r2",
        "R2",
        "regression",
        True,
        "r2",
        "Smallest test R2 deployed (regression; default gate: 0.0).",
        headline=True,
    ),
    Metric(
        "rmse",
        "RMSE",
        "regression",
        False,
        "neg_root_mean_squared_error",
        "Largest test RMSE deployed (regression).",
        headline=True,
    ),
    Metric(
        "mae",
        "MAE",
        "regression",
        False,
        "neg_mean_absolute_error",
        "Largest test MAE deployed (regression).",
        headline=True,
    ),
    Metric(
        "mape",
        "MAPE",
        "regression",
        False,
        "neg_mean_absolute_percentage_error",
        "Largest test MAPE deployed (regression; a share: 0.1 is 10 %).",
    ),
    Metric(
        "median_absolute_error",
        "Median absolute error",
        "regression",
        False,
        "neg_median_absolute_error",
        "Largest test median absolute error deployed (regression).",
    ),
)
METRIC = {metric.name: metric for metric in METRICS}
TASKS = ("classification", "regression")

# The views of the registry that the rest of the platform reads.
GATE_METRICS: dict[str, dict[str, bool]] = {
    task: {m.name: m.higher_is_better for m in METRICS if m.task == task} for task in TASKS
}
COUNTING_METRICS = frozenset(m.name for m in METRICS if m.resampling == COUNTING)
PROBABILITY_METRICS = tuple(m.name for m in METRICS if m.needs_proba)
PER_CLASS_METRICS = tuple(m.name for m in METRICS if m.per_class)
CV_SCORERS = {m.name: m.cv_scorer for m in METRICS}
MULTICLASS_SCORERS = {m.name: m.multiclass_scorer for m in METRICS if m.multiclass_scorer}
# The headline scores model_metrics reports, per task, with the test rows they were computed on.
HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    task: (*(m.name for m in METRICS if m.task == task and m.headline), "test_rows") for task in TASKS
}
METRIC_LABELS = {**{m.name: m.label for m in METRICS}, "test_rows": "Test rows"}
