"""`defs` loads both pipelines of pipelines.yaml, and what the UI shows for each asset is filled in."""

import json

import dagster as dg

from ml_platform.definitions import defs

ASSET_NAMES = {
    "raw_data",
    "training_data",
    "train_split",
    "test_split",
    "trained_model",
    "model_metrics",
    "deployed_model",
}
PIPELINES = {"demo": "classification", "diabetes": "regression"}
ASSETS = {f"{p}/{name}" for p in PIPELINES for name in ASSET_NAMES}
RULES = {
    "not_empty",
    "target_column_present",
    "schema_matches",
    "null_ratio_below_threshold",
    "feature_columns_valid",
    "target_missing_below_threshold",
}
CHECKS = {
    *((f"{p}/raw_data", rule) for p in PIPELINES for rule in RULES),
    ("demo/raw_data", "at_least_two_classes"),
    ("diabetes/raw_data", "target_is_numeric"),
    ("demo/model_metrics", "accuracy_above_threshold"),
    ("diabetes/model_metrics", "r2_above_threshold"),
    *((f"{p}/model_metrics", "signature_matches_production") for p in PIPELINES),
    *((f"{p}/raw_data", "no_feature_drift") for p in PIPELINES),
}


def test_defs_load_with_every_asset_and_check_of_both_pipelines():
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSETS
    assert {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys} == CHECKS


def test_every_asset_has_description_group_owner_and_kind():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.description and "\n" not in node.description.strip(), name
        assert node.group_name == key.path[0], name  # one asset group per pipeline
        assert node.owners, name
        assert node.kinds & {"pandas", "scikitlearn"}, name
        assert node.partitions_def is not None, name


def test_gating_checks_are_blocking_and_drift_only_warns():
    graph = defs.resolve_asset_graph()
    for key in graph.asset_check_keys:
        assert graph.get_check_spec(key).blocking == (key.name != "no_feature_drift"), key


def test_each_pipeline_has_a_job_over_its_own_assets():
    for name in PIPELINES:
        job = defs.resolve_job_def(f"{name}_training")
        assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
            f"{name}/{asset}" for asset in ASSET_NAMES
        }
        assert job.partitions_def is not None
        assert job.executor_def.name == dg.in_process_executor.name


def test_raw_data_can_be_backfilled_as_one_run():
    for name in PIPELINES:
        raw = defs.resolve_assets_def(dg.AssetKey([name, "raw_data"]))
        assert raw.backfill_policy == dg.BackfillPolicy.single_run()


def test_schedules_and_sensors_per_pipeline():
    assert sorted(s.name for s in defs.schedules) == ["demo_daily_training", "diabetes_daily_training"]
    assert {s.name for s in defs.sensors} == {
        "demo_landing_zone_sensor",
        "demo_notify_on_deploy",
        "diabetes_landing_zone_sensor",
        "diabetes_notify_on_deploy",
        "notify_on_run_failure",
        "notify_on_run_success",
        "notify_on_held_back_model",
        "demo_drift_sensor",
        "diabetes_drift_sensor",
    }
    for sensor in defs.sensors:
        assert defs.resolve_sensor_def(sensor.name).description
    diabetes = defs.resolve_schedule_def("diabetes_daily_training")
    assert (diabetes.cron_schedule, diabetes.job_name) == ("30 2 * * *", "diabetes_training")


def test_storage_steps_retry_with_backoff_and_jitter():
    for name in ("raw_data", "deployed_model"):
        policy = defs.resolve_assets_def(dg.AssetKey(["demo", name])).op.retry_policy
        assert policy.max_retries >= 1, name
        assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter == dg.Jitter.PLUS_MINUS, name
    job = defs.resolve_job_def("demo_training")
    assert int(job.tags["dagster/max_runtime"]) > 0


def test_stage_resources_become_kubernetes_requests():
    """pipelines.yaml gives diabetes' train stage cpu 2 / memory 2Gi: its steps carry the tag."""
    op = defs.resolve_assets_def(dg.AssetKey(["diabetes", "trained_model"])).op
    # Tags are strings: dagster-k8s reads this one as JSON.
    assert json.loads(op.tags["dagster-k8s/config"]) == {
        "container_config": {"resources": {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}}
    }
    assert "dagster-k8s/config" not in defs.resolve_assets_def(dg.AssetKey(["demo", "trained_model"])).op.tags


def test_local_mode_does_not_import_boto3_but_prod_mode_builds_the_s3_backends():
    """boto3 + dagster-aws cost about half a second at every process start: local mode skips them."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, ml_platform.definitions as d; "
        "print(sorted({type(r).__name__ for r in d.defs.resources.values()}), 'boto3' in sys.modules)"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("ML_PLATFORM_")}
    local = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True, check=True).stdout
    assert "LocalModelStore" in local and local.strip().endswith("False"), local
    prod = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**base, "ML_PLATFORM_ENV": "prod", "ML_PLATFORM_S3_BUCKET": "b"},
    ).stdout
    assert "S3ModelStore" in prod and prod.strip().endswith("True"), prod


def test_the_repository_pipelines_file_builds_both_pipelines():
    """The tests build the suite's own pipelines.yaml; this one checks the repository's."""
    from ml_platform.factory import build_platform_defs
    from ml_platform.loading import load_pipelines
    from ml_platform.runtime import PipelineRuntime
    from ml_platform.settings import load_settings
    from ml_platform_tests.support.constants import ROOT

    settings = load_settings()
    specs = load_pipelines(settings, ROOT / "pipelines.yaml")
    assert {s.name: s.task for s in specs} == PIPELINES
    assert all(s.partitions.start == "2026-11-01" for s in specs)  # the demo opens on a month, not 2025
    from ml_platform.definitions import resources_for

    repository = build_platform_defs(
        [PipelineRuntime(s, settings) for s in specs], resources_for(settings), dg.in_process_executor
    )
    assert {k.to_user_string() for k in repository.resolve_asset_graph().get_all_asset_keys()} == ASSETS


def test_the_code_location_gives_arrow_buffers_back_to_the_system():
    """Arrow's default pool (mimalloc) kept the buffers of every parquet read and write of a run's
    steps in the process through the fit (the daily run's peak at 1M rows, make bench)."""
    import pyarrow as pa

    assert pa.default_memory_pool().backend_name == "system"
