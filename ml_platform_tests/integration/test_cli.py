"""The real clients in subprocesses: `dagster asset materialize` and `ml-platform`."""

import json
import subprocess
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.demo import breast_cancer_frame, demo_days
from ml_platform_tests.support.constants import BIN, END_DAY, MODEL_NAME, ROOT
from ml_platform_tests.support.good_platform import deployed  # noqa: F401
from ml_platform_tests.support.platform import project_env

pytestmark = pytest.mark.cli


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return project_env(tmp_path)


def run(args: list[str], env: dict[str, str], expect: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def materialize(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    return run([str(BIN / "dagster"), "asset", "materialize", "-m", "ml_platform.definitions", *args], env, expect)


def test_cli_backfills_30_days_in_one_run_then_trains_once(cli_env, tmp_path):
    days = demo_days(END_DAY, 30)
    run(
        [str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY, "--days", "30", "--synthetic-rows", "200"],
        cli_env,
    )
    materialize(cli_env, "--select", "key:demo/raw_data", "--partition-range", f"{days[0]}...{days[-1]}")
    materialize(cli_env, "--select", "key:demo/training_data+", "--partition", END_DAY)

    pointer = json.loads((tmp_path / "model_store" / MODEL_NAME / "production.json").read_text())
    assert (tmp_path / "model_store" / MODEL_NAME / pointer["version"] / "model.joblib").is_file()
    for day in days:
        assert (tmp_path / "assets" / "demo" / "raw_data" / f"{day}.parquet").is_file()

    # The runs and their materializations are in the instance the CLI used: one run for the
    # 30 days, one for training; the model was trained on the 7-day window ending END_DAY.
    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.is_success for r in runs)
        raw = instance.fetch_materializations(dg.AssetKey(["demo", "raw_data"]), limit=100).records
        assert {r.partition_key for r in raw} == set(days)
        assert len({r.run_id for r in raw}) == 1
        deployed = instance.fetch_materializations(dg.AssetKey(["demo", "deployed_model"]), limit=10).records
        assert [r.partition_key for r in deployed] == [END_DAY]
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey(["demo", "model_metrics"]), "accuracy_above_threshold")]
        )
        assert list(check.values())[0].status.value == "SUCCEEDED"

    shown = run([str(BIN / "ml-platform"), "production", "--json"], cli_env)
    info = json.loads(shown.stdout)
    assert info["version"] == pointer["version"] and info["sha256_verified"] is True
    assert info["metrics"]["accuracy"] >= 0.8
    assert info["metrics"]["test_rows"] == round(7 * 200 * 0.25)
    listed = run([str(BIN / "ml-platform"), "models"], cli_env)
    assert f"* {pointer['version']}" in listed.stdout


def test_cli_fails_visibly_on_a_missing_landing_file(cli_env, tmp_path):
    run([str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY, "--days", "2"], cli_env)
    proc = materialize(cli_env, "--select", "key:demo/raw_data", "--partition", "2026-01-01", expect=1)
    output = proc.stdout + proc.stderr
    assert "no landing file for 2026-01-01" in output
    assert not (tmp_path / "model_store").exists()
    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        assert [r.status for r in instance.get_runs()] == [dg.DagsterRunStatus.FAILURE]


def test_ml_platform_cli_errors_are_one_line(cli_env):
    proc = run([str(BIN / "ml-platform"), "production"], cli_env, expect=2)
    assert proc.stderr.startswith("ml-platform: error:") and "no production version" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    bad = run([str(BIN / "ml-platform"), "seed-demo", "--days", "0"], cli_env, expect=2)
    assert "--days must be >= 1" in bad.stderr


@pytest.fixture
def trained_cli(cli_env):
    """A project whose pipeline ran through the CLI: 7 days ingested, one model deployed."""
    run([str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY], cli_env)
    days = demo_days(END_DAY, 7)
    materialize(cli_env, "--select", "key:demo/raw_data", "--partition-range", f"{days[0]}...{days[-1]}")
    materialize(cli_env, "--select", "key:demo/training_data+", "--partition", END_DAY)
    return cli_env


def test_asset_list_and_selections_by_asset_group_and_partition(trained_cli):
    listed = run([str(BIN / "dagster"), "asset", "list", "-m", "ml_platform.definitions"], trained_cli)
    assert set(listed.stdout.split()) >= {
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
    # One asset for one partition, then a whole group: the runs succeed and say what they did.
    one = materialize(trained_cli, "--select", "key:demo/raw_data", "--partition", END_DAY)
    assert "RUN_SUCCESS" in one.stdout + one.stderr
    group = materialize(trained_cli, "--select", "group:demo", "--partition", END_DAY)
    assert "demo__model_metrics" in group.stdout + group.stderr
    bad = materialize(trained_cli, "--select", "no_such_asset", "--partition", END_DAY, expect=1)
    assert "no_such_asset" in bad.stdout + bad.stderr


def test_predict_writes_predictions_with_the_verified_model(trained_cli, tmp_path):
    rows = tmp_path / "rows.csv"
    frame = breast_cancer_frame("target").head(25)
    frame.drop(columns=["target"]).to_csv(rows, index=False)
    out = run([str(BIN / "ml-platform"), "predict", "--input", str(rows)], trained_cli)
    written = tmp_path / "rows.predictions.csv"
    assert f"25 predictions by {MODEL_NAME}" in out.stdout and str(written) in out.stdout
    predicted = pd.read_csv(written)
    assert len(predicted) == 25 and set(predicted["prediction"]) <= {0, 1}
    # Most of these labelled rows are predicted right (the model scored >= 0.9 on held-out rows).
    assert (predicted["prediction"] == frame["target"]).mean() >= 0.8

    frame.drop(columns=["target", "mean radius"]).to_csv(rows, index=False)
    bad = run([str(BIN / "ml-platform"), "predict", "--input", str(rows)], trained_cli, expect=2)
    assert bad.stderr.startswith(
        f"ml-platform: error: --input {rows}: missing feature column(s) 'mean radius'"
        " of the model's 30 (the input has 'mean texture'"
    )
    assert len(bad.stderr.strip().splitlines()) == 1


def test_rollback_moves_the_pointer_back_and_records_who_and_why(trained_cli, tmp_path):
    store_dir = tmp_path / "model_store"
    first = json.loads((store_dir / MODEL_NAME / "production.json").read_text())["version"]
    # A second model (other hyperparameters) replaces the first.
    materialize(
        trained_cli,
        "--select",
        "key:demo/trained_model+",
        "--partition",
        END_DAY,
        "--config-json",
        json.dumps({"ops": {"demo__trained_model": {"config": {"n_estimators": 20, "max_depth": 4}}}}),
    )
    second = json.loads((store_dir / MODEL_NAME / "production.json").read_text())
    assert second["version"] != first and second["previous"] == first

    compare = run([str(BIN / "ml-platform"), "models", "--compare", "--json"], trained_cli)
    rows = json.loads(compare.stdout)
    assert {r["version"] for r in rows} == {first, second["version"]}
    assert rows[0]["accuracy"] >= rows[1]["accuracy"]  # best first
    assert {r["params"]["n_estimators"] for r in rows} == {100, 20}

    out = run([str(BIN / "ml-platform"), "rollback", "--reason", "second model misbehaves"], trained_cli)
    assert f"{second['version']} -> {first}" in out.stdout
    pointer = json.loads((store_dir / MODEL_NAME / "production.json").read_text())
    assert pointer["version"] == first and pointer["reason"] == "second model misbehaves"
    assert pointer["actor"].startswith("ml-platform rollback")
    history = sorted((store_dir / MODEL_NAME / "history").glob("*.json"))
    assert len(history) == 3

    again = run([str(BIN / "ml-platform"), "rollback", "--to", first], trained_cli, expect=2)
    assert "already in production" in again.stderr


def test_dg_launch_runs_the_pipeline_too(cli_env, tmp_path):
    """`dg launch` (dagster-dg-cli), the successor of `dagster asset materialize`, on this project."""
    run([str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY], cli_env)
    days = demo_days(END_DAY, 7)
    dg_cli = [str(BIN / "dg"), "launch"]
    run([*dg_cli, "--assets", "key:demo/raw_data", "--partition-range", f"{days[0]}...{days[-1]}"], cli_env)
    run([*dg_cli, "--assets", "key:demo/training_data+", "--partition", END_DAY], cli_env)
    pointer = json.loads((tmp_path / "model_store" / MODEL_NAME / "production.json").read_text())
    assert (tmp_path / "model_store" / MODEL_NAME / pointer["version"] / "model.joblib").is_file()
    checked = run([str(BIN / "dg"), "check", "defs"], cli_env)
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
