"""Jobs: the whole pipeline for one day."""

import dagster as dg

training_pipeline_job = dg.define_asset_job(
    name="training_pipeline",
    selection=dg.AssetSelection.all(),
    description="Ingest one day, retrain on the window ending that day, evaluate, gate and deploy.",
)
