"""The real clients in subprocesses: `dagster asset materialize` and `ml-platform`."""

import json
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.demo import demo_days
from ml_platform_tests.conftest import BIN, END_DAY, MODEL_NAME, project_env

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.cli


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return project_env(tmp_path)


def run(args: list[str], env: dict[str, str], expect: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def materialize(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    return run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "ml_platform.definitions", *args], env, expect
    )


def test_cli_backfills_30_days_in_one_run_then_trains_once(cli_env, tmp_path):
    days = demo_days(END_DAY, 30)
    run([str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY, "--days", "30",
         "--synthetic-rows", "200"], cli_env)
    materialize(cli_env, "--select", "raw_data", "--partition-range", f"{days[0]}...{days[-1]}")
    materialize(cli_env, "--select", "key:training_data+", "--partition", END_DAY)

    pointer = json.loads((tmp_path / "model_store" / MODEL_NAME / "production.json").read_text())
    assert (tmp_path / "model_store" / MODEL_NAME / pointer["version"] / "model.joblib").is_file()
    for day in days:
        assert (tmp_path / "assets" / "raw_data" / f"{day}.parquet").is_file()

    # The runs and their materializations are in the instance the CLI used: one run for the
    # 30 days, one for training; the model was trained on the 7-day window ending END_DAY.
    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.is_success for r in runs)
        raw = instance.fetch_materializations(dg.AssetKey("raw_data"), limit=100).records
        assert {r.partition_key for r in raw} == set(days)
        assert len({r.run_id for r in raw}) == 1
        deployed = instance.fetch_materializations(dg.AssetKey("deployed_model"), limit=10).records
        assert [r.partition_key for r in deployed] == [END_DAY]
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("model_metrics"), "accuracy_above_threshold")]
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
    proc = materialize(cli_env, "--select", "raw_data", "--partition", "2026-01-01", expect=1)
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
