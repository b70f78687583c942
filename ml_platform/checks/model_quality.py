"""The deployment gate: a blocking check on model_metrics."""

import dagster as dg
from pydantic import Field

from ml_platform import constants
from ml_platform.partitions import daily_partitions


class AccuracyGateConfig(dg.Config):
    """The accuracy a model needs before it may be deployed."""

    min_accuracy: float = Field(
        default=constants.DEFAULT_MIN_ACCURACY,
        ge=0.0,
        le=1.0,
        description="Smallest test accuracy that may be deployed (0..1).",
    )


@dg.asset_check(asset="model_metrics", blocking=True, partitions_def=daily_partitions)
def accuracy_above_threshold(config: AccuracyGateConfig, model_metrics: dict) -> dg.AssetCheckResult:
    """Test accuracy is at least the threshold; otherwise deployed_model does not run."""
    accuracy = float(model_metrics["accuracy"])
    passed = accuracy >= config.min_accuracy
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"accuracy {accuracy:.4f} {'>=' if passed else '<'} threshold {config.min_accuracy}"
        ),
        metadata={"Accuracy": accuracy, "Threshold": float(config.min_accuracy)},
    )
