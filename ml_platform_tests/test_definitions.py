"""`defs` loads, and what the UI shows for each asset is filled in."""

import dagster as dg

from ml_platform import constants
from ml_platform.definitions import defs

ASSETS = {"raw_data", "training_data", "train_split", "test_split", "trained_model", "model_metrics",
          "deployed_model"}
CHECKS = {
    ("raw_data", "not_empty"),
    ("raw_data", "target_column_present"),
    ("raw_data", "null_ratio_below_threshold"),
    ("raw_data", "feature_columns_valid"),
    ("raw_data", "at_least_two_classes"),
    ("model_metrics", "accuracy_above_threshold"),
}


def test_defs_load_with_every_asset_and_check():
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSETS
    assert {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys} == CHECKS


def test_every_asset_has_description_group_owner_and_kind():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.description and "\n" not in node.description.strip(), name
        assert node.group_name in {
            constants.INGEST_GROUP, constants.TRAINING_GROUP, constants.EVALUATION_GROUP,
            constants.DEPLOYMENT_GROUP,
        }, name
        assert node.owners, name
        assert node.kinds & {"pandas", "scikitlearn"}, name
        assert node.partitions_def is not None, name


def test_gating_checks_are_blocking():
    graph = defs.resolve_asset_graph()
    for key in graph.asset_check_keys:
        assert graph.get_check_spec(key).blocking, key


def test_training_pipeline_job_resolves_over_every_asset():
    job = defs.resolve_job_def("training_pipeline")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == ASSETS
    assert job.partitions_def is not None
    assert job.executor_def.name == dg.in_process_executor.name


def test_raw_data_can_be_backfilled_as_one_run():
    raw = defs.resolve_assets_def("raw_data")
    assert raw.backfill_policy == dg.BackfillPolicy.single_run()


def test_schedule_and_sensors_are_present():
    assert [s.name for s in defs.schedules] == ["daily_training"]
    assert {s.name for s in defs.sensors} == {
        "landing_zone_sensor", "notify_on_run_failure", "notify_on_deploy"
    }
    for sensor in defs.sensors:
        assert defs.resolve_sensor_def(sensor.name).description


def test_storage_steps_retry_with_backoff_and_jitter():
    for name in ("raw_data", "deployed_model"):
        policy = defs.resolve_assets_def(name).op.retry_policy
        assert policy.max_retries >= 1, name
        assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter == dg.Jitter.PLUS_MINUS, name
    job = defs.resolve_job_def("training_pipeline")
    assert int(job.tags["dagster/max_runtime"]) > 0


def test_local_mode_does_not_import_boto3_but_prod_mode_builds_the_s3_backends():
    """boto3 + dagster-aws cost about half a second at every process start: local mode skips them."""
    import os
    import subprocess
    import sys

    code = ("import sys, ml_platform.definitions as d; "
            "print(sorted({type(r).__name__ for r in d.defs.resources.values()}), 'boto3' in sys.modules)")
    base = {k: v for k, v in os.environ.items() if not k.startswith("ML_PLATFORM_")}
    local = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True,
                           check=True).stdout
    assert "LocalModelStore" in local and local.strip().endswith("False"), local
    prod = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**base, "ML_PLATFORM_ENV": "prod", "ML_PLATFORM_S3_BUCKET": "b"}).stdout
    assert "S3ModelStore" in prod and prod.strip().endswith("True"), prod
