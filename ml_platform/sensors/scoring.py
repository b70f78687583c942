"""The scoring sensor (``scoring``): each new or changed file of the scoring landing is scored once
with the production model (run_key = day + fingerprint, as the landing sensor does for training)."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from ml_platform.resources.landing_zone import LandingZone
from ml_platform.runtime import PipelineRuntime
from ml_platform.sensors.base import (
    changed_files,
    files_of_partitions,
    of_present,
    pipeline_sensor,
    run_request,
    tick_result,
)
from ml_platform.sensors.cursors import FilesCursor


def build_scoring_sensor(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    location = pipeline.spec.scoring.landing

    @pipeline_sensor(
        pipeline,
        "scoring_sensor",
        f"Scores each new or changed file of {location} with the production {pipeline.model_name}.",
        jobs=[job],
    )
    def scoring_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZone):
        seen = FilesCursor.load(context.cursor).seen
        files = files_of_partitions(pipeline, landing_zone.at(location))
        requests = [
            run_request(pipeline, f"score:{f.day}:{f.fingerprint}", f.day, "scoring", fingerprint=f.fingerprint)
            for f in changed_files(files, seen)
        ]
        return tick_result(requests, FilesCursor(of_present(seen, files)).dump(), "no new or changed scoring files")

    return scoring_sensor
