"""model_metrics: how the trained model does on the held-out split."""

from typing import Any

import dagster as dg
import pandas as pd

from ml_platform import constants
from ml_platform.metadata import markdown_table, rows_table
from ml_platform.ml import TrainedModel, classification_metrics
from ml_platform.partitions import daily_partitions


def report_markdown(metrics: dict[str, Any]) -> str:
    """The evaluation report: headline scores, confusion matrix and per-class scores."""
    labels = [str(label) for label in metrics["labels"]]
    headline = markdown_table(
        ["Metric", "Value"],
        [
            ["Accuracy", metrics["accuracy"]],
            ["Precision (weighted)", metrics["precision"]],
            ["Recall (weighted)", metrics["recall"]],
            ["F1 (weighted)", metrics["f1"]],
            ["Test rows", metrics["test_rows"]],
        ],
    )
    confusion = markdown_table(
        ["actual \\ predicted", *labels],
        [[label, *row] for label, row in zip(labels, metrics["confusion_matrix"])],
    )
    report = metrics["report"]
    per_class = markdown_table(
        ["Class", "Precision", "Recall", "F1", "Support"],
        [
            [label, report[label]["precision"], report[label]["recall"], report[label]["f1-score"],
             int(report[label]["support"])]
            for label in labels
            if label in report
        ],
    )
    return (
        f"## Evaluation\n\n{headline}\n\n### Confusion matrix\n\n{confusion}\n\n"
        f"### Per-class scores\n\n{per_class}\n"
    )


@dg.asset(
    partitions_def=daily_partitions,
    io_manager_key="model_io_manager",
    group_name=constants.EVALUATION_GROUP,
    kinds={"scikitlearn"},
    owners=[constants.ML_OWNER],
    config_schema={},  # takes no config: any key given to it is refused before the run starts
)
def model_metrics(
    context: dg.AssetExecutionContext, trained_model: TrainedModel, test_split: pd.DataFrame
) -> dg.Output[dict]:
    """Accuracy, weighted precision/recall/F1, confusion matrix and report on the test split."""
    metrics = classification_metrics(trained_model.pipeline, test_split, trained_model.target)
    context.log.info(
        f"accuracy {metrics['accuracy']:.4f}, F1 {metrics['f1']:.4f} on {metrics['test_rows']} test rows"
    )
    labels = [str(label) for label in metrics["labels"]]
    return dg.Output(
        metrics,
        metadata={
            "Accuracy": float(metrics["accuracy"]),
            "Precision": float(metrics["precision"]),
            "Recall": float(metrics["recall"]),
            "F1": float(metrics["f1"]),
            "Test rows": metrics["test_rows"],
            "Confusion matrix": rows_table(
                [
                    {"Actual": label, **{f"Predicted {p}": int(n) for p, n in zip(labels, row)}}
                    for label, row in zip(labels, metrics["confusion_matrix"])
                ],
                [("Actual", "string"), *[(f"Predicted {p}", "int") for p in labels]],
            ),
            "Report": dg.MetadataValue.md(report_markdown(metrics)),
        },
    )
