"""Jobs: the whole pipeline for one day."""

import dagster as dg

from ml_platform.settings import load_settings

training_pipeline_job = dg.define_asset_job(
    name="training_pipeline",
    selection=dg.AssetSelection.all(),
    description="Ingest one day, retrain on the window ending that day, evaluate, gate and deploy.",
    # Run monitoring (dagster.yaml) fails a run that exceeds this; training is the long step.
    tags={"dagster/max_runtime": load_settings().max_runtime_s},
)

# The retraining part of the pipeline: everything from training_data down.
RETRAIN_ASSETS = [
    dg.AssetKey(name)
    for name in ("training_data", "train_split", "test_split", "trained_model", "model_metrics",
                 "deployed_model")
]
