"""From pipelines to Dagster definitions. Every pipeline, the demo included, is built by
``build_pipeline_defs``: one asset group (keys prefixed with its name), its checks, jobs, schedule
and sensors; ``build_platform_defs`` merges them with what the platform shares (resources, the
executor, the run failure and run finished sensors)."""

import dagster as dg

from ml_platform.assets.deployment import build_deployed_model
from ml_platform.assets.evaluation import build_model_metrics
from ml_platform.assets.ingest import build_raw_data
from ml_platform.assets.monitoring import build_live_metrics, build_outcomes, build_served
from ml_platform.assets.rollout import build_rollout
from ml_platform.assets.scoring import build_predictions, build_scoring_checks, build_scoring_data
from ml_platform.assets.training import (
    build_splits,
    build_trained_model,
    build_training_data,
    build_variant_model,
)
from ml_platform.checks.data_quality import build_raw_data_quality
from ml_platform.checks.model_quality import build_gates, build_signature_check
from ml_platform.jobs import build_jobs, monitoring_job_name, scoring_job_name
from ml_platform.runtime import PipelineRuntime
from ml_platform.schedules import build_schedule
from ml_platform.sensors.landing import build_landing_sensor
from ml_platform.sensors.monitoring import build_feedback_sensor, build_served_sensor
from ml_platform.sensors.notifications import build_deploy_sensor, build_failure_sensor, build_finished_sensors
from ml_platform.sensors.retraining import build_decay_sensor, build_drift_sensor
from ml_platform.sensors.rollout import build_rollout_sensor
from ml_platform.sensors.scoring import build_scoring_sensor
from ml_platform.sensors.variants import build_variants_sensor


def build_pipeline_defs(pipeline: PipelineRuntime) -> dg.Definitions:
    """One pipeline's assets, checks, jobs (the training job first), schedule and sensors."""
    spec = pipeline.spec
    assets = [
        build_raw_data(pipeline),
        build_training_data(pipeline),
        build_splits(pipeline),
        *([build_variant_model(pipeline)] if pipeline.variants else []),
        build_trained_model(pipeline),
        build_model_metrics(pipeline),
        build_deployed_model(pipeline),
    ]
    checks = [build_raw_data_quality(pipeline), *build_gates(pipeline), build_signature_check(pipeline)]
    if spec.scoring is not None:
        assets += [build_scoring_data(pipeline), build_predictions(pipeline)]
        checks.append(build_scoring_checks(pipeline))
    assets += _loop_back_assets(pipeline)
    jobs = build_jobs(pipeline)
    training_job = jobs[0]
    job_of = {job.name: job for job in jobs}
    sensors = [build_landing_sensor(pipeline, training_job), build_deploy_sensor(pipeline)]
    if spec.drift.enabled:
        sensors.append(build_drift_sensor(pipeline, training_job))
    if pipeline.variants:
        sensors.append(build_variants_sensor(pipeline, jobs[1], jobs[2]))
    if spec.scoring is not None:
        sensors.append(build_scoring_sensor(pipeline, job_of[scoring_job_name(pipeline)]))
    if spec.monitoring is not None:
        sensors += _loop_back_sensors(pipeline, job_of[monitoring_job_name(pipeline)], training_job)
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=[build_schedule(pipeline, training_job)],
        sensors=sensors,
    )


def _loop_back_assets(pipeline: PipelineRuntime) -> list[dg.AssetsDefinition]:
    """served (with `monitoring`), outcomes and live_metrics (with `feedback`), rollout (with a
    rollout that live evidence decides)."""
    spec = pipeline.spec
    assets = [build_served(pipeline)] if spec.monitoring is not None else []
    if spec.feedback is not None:
        assets += [build_outcomes(pipeline), build_live_metrics(pipeline)]
    if spec.rollout.watched:
        assets.append(build_rollout(pipeline))
    return assets


def _loop_back_sensors(pipeline: PipelineRuntime, monitoring_job, training_job) -> list[dg.SensorDefinition]:
    spec = pipeline.spec
    sensors = [build_served_sensor(pipeline, monitoring_job)]
    if spec.feedback is not None:
        sensors += [build_feedback_sensor(pipeline, monitoring_job), build_decay_sensor(pipeline, training_job)]
    if spec.rollout.watched:
        sensors.append(build_rollout_sensor(pipeline))
    return sensors


def build_platform_defs(pipelines: list[PipelineRuntime], resources: dict, executor) -> dg.Definitions:
    """Every pipeline's definitions, the resources and executor of the environment, and the sensors
    that announce failed and finished runs to each pipeline's channels."""
    return dg.Definitions.merge(
        *(build_pipeline_defs(pipeline) for pipeline in pipelines),
        dg.Definitions(
            sensors=[build_failure_sensor(pipelines), *build_finished_sensors(pipelines)],
            resources=resources,
            executor=executor,
        ),
    )
