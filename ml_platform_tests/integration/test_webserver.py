"""`dagster dev` on 127.0.0.1: the asset graph the UI shows, and a run launched through its API.

The browser-driven version of this test (headless Chromium) belongs to the UI issue; this one
talks to the same GraphQL endpoint the UI uses.
"""

import subprocess

import pandas as pd
import pytest
from dagster_graphql import DagsterGraphQLClient

from ml_platform import constants
from ml_platform.backends.local import LocalModelStore
from ml_platform_tests.support.constants import BIN, DAYS, END_DAY, MODEL_NAME, ROOT
from ml_platform_tests.support.dagster_dev import (  # noqa: F401 (fixtures, used by name)
    dagster_dev,
    graphql,
    ingest_earlier_days,
    running_dagster_dev,
    wait_for_run,
    wait_for_runs,
)
from ml_platform_tests.support.sockets import listening_addresses, only_loopback

pytestmark = pytest.mark.cli

ASSET_NODES = """
{ assetNodes { assetKey { path } groupName description kinds
    owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }
"""
AUTOMATION = """
{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { ... on RepositoryLocation {
    repositories { schedules { name cronSchedule scheduleState { status } }
                   sensors { name sensorState { status } } } } } } } } }
"""


def test_dagster_dev_shows_the_graph_and_runs_the_pipeline(dagster_dev):
    url, port, tmp_path, _, pid = dagster_dev
    # Every server `dagster dev` starts (webserver, code server, daemon) listens on loopback only.
    listening = listening_addresses(pid)
    assert ("127.0.0.1", port) in listening
    assert only_loopback(listening), listening

    nodes = {"/".join(n["assetKey"]["path"]): n for n in graphql(url, ASSET_NODES)["assetNodes"]}
    # Both pipelines of pipelines.yaml, each its own group.
    assert set(nodes) == {
        f"{p}/{a}"
        for p in ("demo", "diabetes")
        for a in (
            "raw_data",
            "training_data",
            "train_split",
            "test_split",
            "trained_model",
            "model_metrics",
            "deployed_model",
        )
    }
    for name, node in nodes.items():
        assert node["groupName"] and node["description"] and node["kinds"] and node["owners"], name
    assert {n["groupName"] for n in nodes.values()} == {"demo", "diabetes"}
    raw_checks = {c["name"]: c["blocking"] for c in nodes["demo/raw_data"]["assetChecksOrError"]["checks"]}
    assert len(raw_checks) == 8 and raw_checks.pop("no_feature_drift") is False  # drift only warns
    assert all(raw_checks.values())
    gate = nodes["demo/model_metrics"]["assetChecksOrError"]["checks"]
    assert gate == [
        {"name": "accuracy_above_threshold", "blocking": True},
        {"name": "signature_matches_production", "blocking": True},
    ]
    gate = nodes["diabetes/model_metrics"]["assetChecksOrError"]["checks"]
    assert gate == [
        {"name": "r2_above_threshold", "blocking": True},
        {"name": "signature_matches_production", "blocking": True},
    ]

    # The schedule and sensors appear, with the states they start in.
    (location,) = graphql(url, AUTOMATION)["workspaceOrError"]["locationEntries"]
    (repository,) = location["locationOrLoadError"]["repositories"]
    schedules = sorted((s["name"], s["cronSchedule"]) for s in repository["schedules"])
    assert schedules == [("demo_daily_training", "0 2 * * *"), ("diabetes_daily_training", "30 2 * * *")]
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    assert sensors == {
        "demo_landing_zone_sensor": "STOPPED",
        "diabetes_landing_zone_sensor": "STOPPED",
        "demo_drift_sensor": "STOPPED",
        "diabetes_drift_sensor": "STOPPED",
        "notify_on_run_failure": "RUNNING",
        "demo_notify_on_deploy": "RUNNING",
        "diabetes_notify_on_deploy": "RUNNING",
        "notify_on_run_success": "RUNNING",
        "notify_on_held_back_model": "RUNNING",
    }

    # Launch runs as the UI does: the earlier days as one single-run backfill of raw_data,
    # then the whole pipeline for the newest day.
    ingest_earlier_days(url, port, DAYS)
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    # The Python API with run config (docs/operations.md, "The API").
    run_id = client.submit_job_execution(
        "demo_training",
        tags={"dagster/partition": END_DAY},
        run_config={"ops": {"demo__trained_model": {"config": {"n_estimators": 40, "max_depth": 6}}}},
    )
    assert wait_for_run(url, run_id) == "SUCCESS"
    production = LocalModelStore(root=str(tmp_path / "model_store")).production(MODEL_NAME)
    assert production.metadata["params"]["n_estimators"] == 40
    assert production.metadata["params"]["max_depth"] == 6
    assert production.metadata["dagster_run_id"] == run_id


def test_daemon_runs_the_landing_sensor_and_reruns_on_a_corrected_file(dagster_dev):
    """The sensor-triggered path for real: the daemon ticks, launches runs, the model deploys;
    a corrected file triggers an ingest of its day and a retrain that deploys a new version."""
    url, _, tmp_path, env, _ = dagster_dev
    subprocess.run(
        [str(BIN / "dagster"), "sensor", "start", "demo_landing_zone_sensor", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    ingests = wait_for_runs(url, constants.LANDING_INGEST_TRIGGER, len(DAYS))
    assert len(ingests) == len(DAYS)
    (retrain,) = wait_for_runs(url, constants.LANDING_RETRAIN_TRIGGER, 1)
    store = LocalModelStore(root=str(tmp_path / "model_store"))
    first = store.production(MODEL_NAME)
    assert first is not None and first.metadata["data_as_of"] == END_DAY
    assert first.metadata["dagster_run_id"] == retrain["runId"]

    # A late correction of an older day: new content, so a new fingerprint.
    corrected_day = DAYS[2]
    path = tmp_path / "landing" / f"{corrected_day}.parquet"
    frame = pd.read_parquet(path)
    frame.iloc[:-5].to_parquet(path, index=False)
    ingests = wait_for_runs(url, constants.LANDING_INGEST_TRIGGER, len(DAYS) + 1)
    partitions = [t["value"] for r in ingests for t in r["tags"] if t["key"] == "dagster/partition"]
    assert sorted(partitions) == sorted([*DAYS, corrected_day])  # only the corrected day again
    wait_for_runs(url, constants.LANDING_RETRAIN_TRIGGER, 2)
    second = store.production(MODEL_NAME)
    assert second.version != first.version
    assert second.metadata["training_rows"] + second.metadata["metrics"]["test_rows"] == (
        first.metadata["training_rows"] + first.metadata["metrics"]["test_rows"] - 5
    )


VARIANT_NODE = """
{ assetNodeOrError(assetKey: {path: ["churn", "variant_model"]}) { ... on AssetNode {
    partitionKeysByDimension { name partitionKeys } } } }
"""


def test_dagster_dev_runs_a_pipeline_with_variants_to_the_best_model(tmp_path):
    """UI path of model.variants: the day x variant grid, one launched run, the rest by the daemon."""
    import textwrap

    from ml_platform_tests.support.variants import STRONG, VARIANTS_YAML, WEAK

    pipelines = tmp_path / "pipelines.yaml"
    pipelines.write_text(textwrap.dedent(VARIANTS_YAML))
    with running_dagster_dev(tmp_path, {"ML_PLATFORM_PIPELINES": str(pipelines)}) as (url, port, *_):
        dimensions = {
            d["name"]: d["partitionKeys"]
            for d in graphql(url, VARIANT_NODE)["assetNodeOrError"]["partitionKeysByDimension"]
        }
        assert dimensions["variant"] == [WEAK, STRONG]
        assert END_DAY in dimensions["date"]
        (location,) = graphql(url, AUTOMATION)["workspaceOrError"]["locationEntries"]
        (repository,) = location["locationOrLoadError"]["repositories"]
        sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
        assert sensors["churn_variants_sensor"] == "RUNNING"

        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_id = client.submit_job_execution(
            "churn_training",
            tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
            asset_selection=[["churn", "raw_data"]],
        )
        assert wait_for_run(url, run_id) == "SUCCESS"
        run_id = client.submit_job_execution("churn_training", tags={"dagster/partition": END_DAY})
        assert wait_for_run(url, run_id) == "SUCCESS"
        runs = wait_for_runs(url, "variants", 3)
        partitions = sorted(t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/partition")
        assert partitions == sorted([END_DAY, f"{END_DAY}|{WEAK}", f"{END_DAY}|{STRONG}"])
    production = LocalModelStore(root=str(tmp_path / "model_store")).production("churn")
    assert production.metadata["variant"] == STRONG
    assert production.metadata["data_as_of"] == END_DAY
