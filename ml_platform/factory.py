"""From a pipelines.yaml entry to Dagster definitions: one asset group, its checks, job, schedule
and sensors. Every pipeline, the demo included, is built by ``build_pipeline``."""

from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ml_platform.assets.deployment import build_deployed_model
from ml_platform.assets.evaluation import build_model_metrics
from ml_platform.assets.ingest import build_raw_data
from ml_platform.assets.scoring import build_predictions, build_scoring_checks, build_scoring_data
from ml_platform.assets.training import (
    build_splits,
    build_trained_model,
    build_training_data,
    build_variant_model,
)
from ml_platform.checks.data_quality import build_raw_data_quality
from ml_platform.checks.model_quality import build_gate, build_signature_check
from ml_platform.errors import ConfigError
from ml_platform.jobs import build_jobs
from ml_platform.pipelines import Pipeline, PipelineSpec
from ml_platform.schedules import build_schedule
from ml_platform.sensors import (
    build_deploy_sensor,
    build_drift_sensor,
    build_failure_sensor,
    build_landing_sensor,
    build_scoring_sensor,
    build_variants_sensor,
)
from ml_platform.settings import Settings


@dataclass
class BuiltPipeline:
    pipeline: Pipeline
    assets: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    job: UnresolvedAssetJobDefinition | None = None  # the pipeline's job (schedule, sensors)
    jobs: list = field(default_factory=list)  # all its jobs: with variants, three
    schedule: dg.ScheduleDefinition | None = None
    sensors: list = field(default_factory=list)

    def sensor(self, kind: str) -> dg.SensorDefinition:
        """One of its sensors by kind: ``landing_zone_sensor``, ``notify_on_deploy``, ``drift_sensor``,
        ``variants_sensor`` (named ``<pipeline>_<kind>``)."""
        name = f"{self.pipeline.name}_{kind}"
        return next(s for s in self.sensors if s.name == name)

    @property
    def definitions(self) -> list:
        """Assets and checks, as ``dg.materialize`` takes them."""
        return [*self.assets, *self.checks]


def check_landing(spec: PipelineSpec, settings: Settings, source: str, landing: str | None = None,
                  field: str = "landing") -> None:
    """A pipeline's landing (or scoring landing) must be readable in this environment (fails at
    load, naming it)."""
    where = f"{source}: pipeline {spec.name!r}: {field}"
    landing = (spec.landing if landing is None else landing) or ""
    if landing.startswith("s3://") and settings.env != "prod":
        raise ConfigError(f"{where}: {landing!r} is on S3; S3 needs ML_PLATFORM_ENV=prod")
    if landing.startswith("/") and settings.env == "prod":
        raise ConfigError(f"{where}: {landing!r} is a local folder; ML_PLATFORM_ENV=prod reads from S3")
    if ".." in landing.split("/"):
        raise ConfigError(f"{where}: {landing!r} must not climb out of the landing root with '..'")


def build_pipeline(spec: PipelineSpec, settings: Settings, source: str = "pipelines.yaml") -> BuiltPipeline:
    check_landing(spec, settings, source)
    if spec.scoring is not None:
        check_landing(spec, settings, source, spec.scoring.landing, "scoring.landing")
    pipeline = Pipeline(spec, settings)
    built = BuiltPipeline(pipeline)
    built.assets = [
        build_raw_data(pipeline),
        build_training_data(pipeline),
        build_splits(pipeline),
        *([build_variant_model(pipeline)] if pipeline.variants else []),
        build_trained_model(pipeline),
        build_model_metrics(pipeline),
        build_deployed_model(pipeline),
    ]
    built.checks = [build_raw_data_quality(pipeline), build_gate(pipeline), build_signature_check(pipeline)]
    if spec.scoring is not None:
        built.assets += [build_scoring_data(pipeline), build_predictions(pipeline)]
        built.checks.append(build_scoring_checks(pipeline))
    built.jobs = build_jobs(pipeline)
    built.job = built.jobs[0]
    built.schedule = build_schedule(pipeline, built.job)
    built.sensors = [build_landing_sensor(pipeline, built.job), build_deploy_sensor(pipeline)]
    if spec.drift.enabled:
        built.sensors.append(build_drift_sensor(pipeline, built.job))
    if pipeline.variants:
        built.sensors.append(build_variants_sensor(pipeline, *built.jobs[1:]))
    if spec.scoring is not None:
        built.sensors.append(build_scoring_sensor(pipeline, built.jobs[-1]))
    return built


def build_all(specs: list[PipelineSpec], settings: Settings, source: str) -> list[BuiltPipeline]:
    return [build_pipeline(spec, settings, source) for spec in specs]


def definitions_of(built: list[BuiltPipeline], resources: dict, executor) -> dg.Definitions:
    return dg.Definitions(
        assets=[a for b in built for a in b.assets],
        asset_checks=[c for b in built for c in b.checks],
        jobs=[j for b in built for j in b.jobs],
        schedules=[b.schedule for b in built],
        sensors=[*(s for b in built for s in b.sensors), build_failure_sensor([b.pipeline for b in built])],
        resources=resources,
        executor=executor,
    )
