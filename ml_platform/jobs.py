"""Jobs: the whole pipeline for one day, one job per pipeline."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ml_platform.pipelines import Pipeline

# The retraining part of a pipeline: everything from training_data down.
RETRAIN_ASSET_NAMES = (
    "training_data", "train_split", "test_split", "trained_model", "model_metrics", "deployed_model"
)


def job_name(pipeline: Pipeline) -> str:
    return f"{pipeline.name}_training_pipeline"


def retrain_keys(pipeline: Pipeline) -> list[dg.AssetKey]:
    return [pipeline.key(name) for name in RETRAIN_ASSET_NAMES]


def build_job(pipeline: Pipeline) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name=job_name(pipeline),
        selection=dg.AssetSelection.groups(pipeline.name),
        description=f"{pipeline.name}: ingest one day, retrain on the window ending that day, evaluate,"
        " gate and deploy.",
        # Run monitoring (dagster.yaml) fails a run that exceeds this; training is the long step.
        tags={"dagster/max_runtime": pipeline.settings.max_runtime_s},
    )
