"""What the UI shows of model_metrics: its value (``ModelMetrics``, fresh or reused) as Dagster
metadata — each score as a float, the per-class, confusion-matrix, interval, baseline, champion and
slice tables, and the markdown report. Display only: scoring and reuse are in evaluation.py."""

from typing import Any

import dagster as dg

from ml_platform.decision import describe as decision_sentence
from ml_platform.metadata import markdown_table, rows_table
from ml_platform.metrics import GATE_METRICS, METRIC_LABELS
from ml_platform.model_metrics import ChampionComparison, ClassificationDetails, ModelMetrics
from ml_platform.runtime import PipelineRuntime

# The platform's precision, recall and F1 are weighted by class support: the report says so.
_WEIGHTED = {"precision": "Precision (weighted)", "recall": "Recall (weighted)", "f1": "F1 (weighted)"}
_PER_CLASS_COLUMNS = [
    ("Class", "string"),
    ("Precision", "float"),
    ("Recall", "float"),
    ("F1", "float"),
    ("Support", "int"),
]


def report_markdown(metrics: ModelMetrics) -> str:
    """The evaluation report: headline scores, confusion matrix and per-class scores."""
    scores, details = metrics.scores, metrics.details
    labels = details.classes()
    headline = markdown_table(
        ["Metric", "Value"],
        [
            *([_WEIGHTED.get(name, METRIC_LABELS.get(name, name)), value] for name, value in scores.items()),
            ["Test rows", metrics.test_rows],
        ],
    )
    confusion = markdown_table(
        ["actual \\ predicted", *labels],
        [[label, *row] for label, row in zip(labels, details.confusion_matrix)],
    )
    per_class = markdown_table(
        [name for name, _ in _PER_CLASS_COLUMNS],
        [[row[name] for name, _ in _PER_CLASS_COLUMNS] for row in per_class_rows(details)],
    )
    found = details.decision
    decision = (
        f"Decision: {decision_sentence(found)}. The scores counted from predicted classes are at this threshold.\n\n"
        if found
        else ""
    )
    return (
        f"## Evaluation\n\n{decision}{headline}\n\n### Confusion matrix\n\n{confusion}\n\n"
        f"### Per-class scores\n\n{per_class}\n"
    )


def regression_report_markdown(metrics: ModelMetrics) -> str:
    """The evaluation report of a regression: headline scores and residual quantiles."""
    scores = metrics.scores
    headline = markdown_table(
        ["Metric", "Value"],
        [*([METRIC_LABELS.get(name, name), value] for name, value in scores.items()), ["Test rows", metrics.test_rows]],
    )
    residuals = markdown_table(
        ["Residual quantile", "Value"], [[q, v] for q, v in metrics.details.residual_quantiles.items()]
    )
    return f"## Evaluation\n\n{headline}\n\n### Residuals (actual - predicted)\n\n{residuals}\n"


def _scores_metadata(metrics: ModelMetrics) -> dict[str, Any]:
    """Every score as a float under its label (the UI plots each one's history)."""
    return {METRIC_LABELS.get(name, name): float(value) for name, value in metrics.scores.items()}


def per_class_rows(details: ClassificationDetails) -> list[dict[str, Any]]:
    """Each class's precision, recall, F1 and support, in the labels' order: the "Per class" table
    and the report's per-class scores."""
    rows = []
    for label in details.classes():
        found = details.class_report(label)
        if found is not None:
            rows.append(
                {
                    "Class": label,
                    "Precision": float(found["precision"]),
                    "Recall": float(found["recall"]),
                    "F1": float(found["f1-score"]),
                    "Support": int(found["support"]),
                }
            )
    return rows


def _classification_metadata(metrics: ModelMetrics) -> dict[str, Any]:
    labels = metrics.details.classes()
    not_computed = metrics.details.not_computed
    return {
        **_scores_metadata(metrics),
        "Test rows": metrics.test_rows,
        "Per class": rows_table(per_class_rows(metrics.details), _PER_CLASS_COLUMNS),
        **(
            {"Not computed": "; ".join(f"{METRIC_LABELS.get(k, k)}: {why}" for k, why in not_computed.items())}
            if not_computed
            else {}
        ),
        "Confusion matrix": rows_table(
            [
                {"Actual": label, **{f"Predicted {p}": int(n) for p, n in zip(labels, row)}}
                for label, row in zip(labels, metrics.details.confusion_matrix)
            ],
            [("Actual", "string"), *[(f"Predicted {p}", "int") for p in labels]],
        ),
        "Report": dg.MetadataValue.md(report_markdown(metrics)),
        **_decision_metadata(metrics),
    }


def _decision_metadata(metrics: ModelMetrics) -> dict[str, Any]:
    """The model's decision threshold, and which scores it changes."""
    found = metrics.decision
    if not found:
        return {}
    return {
        "Decision threshold": float(found["threshold"]),
        "Decision": decision_sentence(found)
        + "; accuracy, balanced accuracy, precision, recall, F1 and the confusion matrix are at this threshold;"
        " ROC AUC, average precision, log loss and Brier read the probabilities and do not depend on it",
    }


def _regression_metadata(metrics: ModelMetrics) -> dict[str, Any]:
    return {
        **_scores_metadata(metrics),
        "Test rows": metrics.test_rows,
        "Predicted vs actual": rows_table(
            metrics.details.calibration,
            [("Actual (bin)", "string"), ("Rows", "int"), ("Mean actual", "float"), ("Mean predicted", "float")],
        ),
        "Report": dg.MetadataValue.md(regression_report_markdown(metrics)),
    }


def metrics_metadata(pipeline: PipelineRuntime, metrics: ModelMetrics) -> dict[str, Any]:
    """What the UI shows of model_metrics, from the metrics alone (a fresh or a reused score)."""
    metric = pipeline.spec.gate_metric
    label = METRIC_LABELS[metric]
    metadata = (_classification_metadata if pipeline.task == "classification" else _regression_metadata)(metrics)
    champion = metrics.champion
    if champion and champion.compared:
        if metric in champion.champion and metric in champion.challenger:
            metadata[f"Champion {label}"] = float(champion.champion[metric])
            metadata[f"Challenger {label} (same rows)"] = float(champion.challenger[metric])
        metadata["Champion vs challenger"] = _comparison_table(champion)
        metadata["Champion version"] = champion.version
        metadata["Rows compared"] = champion.rows
    else:
        metadata["Champion version"] = (champion.problem if champion else None) or "none (first model)"
    if metrics.intervals:
        metadata["Scores with 95 % intervals"] = _interval_table(metrics)
    if metrics.baseline is not None:
        metadata["Baseline"] = metrics.baseline.name
        metadata["Model vs baseline"] = _baseline_table(metrics)
    metadata.update(_slices_metadata(pipeline, metrics))
    metadata["Signature vs production"] = metrics.signature.describe() if metrics.signature else ""
    return metadata


def _slices_metadata(pipeline: PipelineRuntime, metrics: ModelMetrics) -> dict[str, Any]:
    """The slice tables: every score per declared slice, the champion and challenger per slice, the
    worst slices of every categorical feature."""
    metadata: dict[str, Any] = {}
    keys = list(metrics.scores)
    if metrics.slices:
        rows = [{"Column": s.column, "Slice": s.value, "Rows": s.rows, **s.scores} for s in metrics.slices]
        columns = [("Column", "string"), ("Slice", "string"), ("Rows", "int"), *((k, "float") for k in keys)]
        metadata["Slices"] = rows_table(rows, columns)
    champion = metrics.champion
    if champion is not None and champion.slices:
        # Every value both have, the gated metrics first.
        first = {t.metric for t in pipeline.spec.gate_thresholds}
        gated = sorted(dict.fromkeys([*keys, *champion.challenger]), key=lambda k: k not in first)
        rows = [
            {
                "Slice": s.name,
                "Rows": s.rows,
                "Metric": key,
                "Champion": s.champion[key],
                "Challenger": s.challenger[key],
                "Change": s.challenger[key] - s.champion[key],
            }
            for s in champion.slices
            for key in gated
            if key in s.champion and key in s.challenger
        ]
        columns = [("Slice", "string"), ("Rows", "int"), ("Metric", "string")]
        columns += [("Champion", "float"), ("Challenger", "float"), ("Change", "float")]
        metadata["Slices vs champion"] = rows_table(rows, columns)
    if metrics.worst_slices:
        metric = pipeline.spec.gate_metric
        rows = [
            {"Slice": s.name, "Rows": s.rows, metric: s.scores[metric], "Whole test split": metrics.scores.get(metric)}
            for s in metrics.worst_slices
        ]
        columns = [("Slice", "string"), ("Rows", "int"), (metric, "float"), ("Whole test split", "float")]
        metadata[f"Worst slices by {metric}"] = rows_table(rows, columns)
    return metadata


def _interval_table(metrics: ModelMetrics) -> dg.MetadataValue:
    """Each value with its bootstrap interval: "0.9620 [0.9310, 0.9860]"."""
    rows = []
    for key, (low, high) in metrics.intervals.items():
        metric, _, of_class = key.partition("[")
        value = metrics.value(metric, of_class.removesuffix("]") or None)
        if value is not None:
            rows.append(
                {
                    "Metric": key,
                    "Value": float(value),
                    "Low": low,
                    "High": high,
                    "Shown": f"{value:.4f} [{low:.4f}, {high:.4f}]",
                }
            )
    columns = [("Metric", "string"), ("Value", "float"), ("Low", "float"), ("High", "float"), ("Shown", "string")]
    return rows_table(rows, columns)


def _baseline_table(metrics: ModelMetrics) -> dg.MetadataValue:
    """Each score of the model beside the do-nothing baseline's on the same test rows."""
    rows = []
    for name, value in metrics.scores.items():
        base = metrics.baseline.scores.get(name)
        if base is not None:
            higher = GATE_METRICS[metrics.task].get(name, True)
            beaten = value > base if higher else value < base
            rows.append({"Metric": name, "Model": float(value), "Baseline": float(base), "Beaten": bool(beaten)})
    return rows_table(rows, [("Metric", "string"), ("Model", "float"), ("Baseline", "float"), ("Beaten", "bool")])


def _comparison_table(champion: ChampionComparison) -> dg.MetadataValue:
    """Every value both models have on the same rows, side by side."""
    rows = [
        {
            "Metric": key,
            "Champion": float(value),
            "Challenger": float(champion.challenger[key]),
            "Change": float(champion.challenger[key]) - float(value),
        }
        for key, value in champion.champion.items()
        if key in champion.challenger and key != "test_rows"
    ]
    columns = [("Metric", "string"), ("Champion", "float"), ("Challenger", "float"), ("Change", "float")]
    return rows_table(rows, columns)
