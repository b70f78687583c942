"""Pipelines built as the code location builds them, from the test suite's own pipelines.yaml or
from YAML text in a test; and the helpers that run them."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import dagster as dg

from ml_platform.demo import seed_landing
from ml_platform.factory import build_pipeline_defs
from ml_platform.loading import load_pipelines, pipelines_from_text
from ml_platform.runtime import PipelineRuntime
from ml_platform.settings import load_settings
from ml_platform.spec import PipelineSpec
from ml_platform_tests.support.constants import DAYS, END_DAY, TEST_PIPELINES_FILE
from ml_platform_tests.support.results import step_errors


@dataclass
class BuiltPipeline:
    """One pipeline: its run-time view and the Dagster definitions built from it."""

    pipeline: PipelineRuntime
    defs: dg.Definitions

    @property
    def definitions(self) -> list:
        """Assets and checks, as ``dg.materialize`` takes them."""
        return [*self.defs.assets, *self.defs.asset_checks]

    @property
    def assets(self) -> list:
        return list(self.defs.assets)

    @property
    def checks(self) -> list:
        return list(self.defs.asset_checks)

    @property
    def jobs(self) -> list:
        return list(self.defs.jobs)

    @property
    def schedule(self):
        (schedule,) = self.defs.schedules
        return schedule

    @property
    def sensors(self) -> list:
        return list(self.defs.sensors)

    def sensor(self, kind: str) -> dg.SensorDefinition:
        """One of its sensors by kind: ``landing_zone_sensor``, ``notify_on_deploy``, ``drift_sensor``,
        ``variants_sensor``, ``scoring_sensor`` (named ``<pipeline>_<kind>``)."""
        name = f"{self.pipeline.name}_{kind}"
        return next(s for s in self.defs.sensors if s.name == name)


def build(spec: PipelineSpec, settings=None) -> BuiltPipeline:
    pipeline = PipelineRuntime(spec, settings or load_settings())
    return BuiltPipeline(pipeline, build_pipeline_defs(pipeline))


def built_from(text: str) -> BuiltPipeline:
    """A pipeline built from YAML text, exactly as the code location builds pipelines.yaml."""
    settings = load_settings()
    (spec,) = pipelines_from_text(textwrap.dedent(text), "test.yaml", settings)
    return build(spec, settings)


BUILT_PIPELINES = [build(spec) for spec in load_pipelines(load_settings(), TEST_PIPELINES_FILE)]
DEMO = next(b for b in BUILT_PIPELINES if b.pipeline.name == "demo")
DIABETES = next(b for b in BUILT_PIPELINES if b.pipeline.name == "diabetes")
ALL_DEFS = DEMO.definitions  # the demo pipeline's assets and checks


def ingest_and_train(platform, built: BuiltPipeline, run_config=None) -> dg.ExecuteInProcessResult:
    """raw_data of DAYS in one range run, then the training chain for END_DAY."""
    name = built.pipeline.name
    ingest = dg.materialize(
        built.definitions,
        selection=f"key:{name}/raw_data",
        instance=platform.instance,
        resources=platform.resources,
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
    )
    assert ingest.success, step_errors(ingest)
    return dg.materialize(
        built.definitions,
        selection=f"key:{name}/training_data+",
        partition_key=END_DAY,
        instance=platform.instance,
        resources=platform.resources,
        run_config=run_config or {},
        raise_on_error=False,
    )


def seed(platform, folder: str, dataset: str, target: str, **kwargs) -> None:
    seed_landing(
        str(platform.landing / folder), end_day=END_DAY, days=len(DAYS), target=target, dataset=dataset, **kwargs
    )
