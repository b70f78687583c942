"""`make demo`, as README says, on temp folders: both pipelines deployed, and every demo day's checks
recorded as passed (each day is ingested in its own run), so the UI opens on what happened."""

import os
import re
import subprocess

import dagster as dg
import pytest

from ml_platform.checks.data_quality import DRIFT_CHECK
from ml_platform.demo import demo_days
from ml_platform.quality.rules import rule_names
from ml_platform_tests.support.constants import ROOT

pytestmark = pytest.mark.cli


def test_make_demo_deploys_both_pipelines_and_records_each_days_checks(tmp_path):
    home = tmp_path / "dagster_home"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ML_PLATFORM_LANDING_DIR": str(tmp_path / "landing"),
        "ML_PLATFORM_MODEL_STORE_DIR": str(tmp_path / "model_store"),
        "ML_PLATFORM_ASSET_STORAGE_DIR": str(tmp_path / "assets"),
        "ML_PLATFORM_PIPELINES": str(ROOT / "pipelines.yaml"),  # the repository's own, as make demo uses it
    }
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "demo"], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Production model : demo_classifier v" in proc.stdout and "Production model : diabetes v" in proc.stdout
    # Eight `dagster asset materialize` commands and not one Python warning among their lines (Dagster's
    # own log lines say " - WARNING - " when a step warns; those are the platform's, and none here).
    python_warnings = re.findall(r"^.*\b\w*Warning: .*$", proc.stdout + proc.stderr, flags=re.MULTILINE)
    assert python_warnings == [], python_warnings
    assert (tmp_path / "model_store" / "demo_classifier" / "production.json").is_file()

    days = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ml-platform"), "demo-range", "--list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert days == demo_days(days[-1], 7)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for pipeline, task in (("demo", "classification"), ("diabetes", "regression")):
            keys = [
                dg.AssetCheckKey(dg.AssetKey([pipeline, "raw_data"]), name) for name in (*rule_names(task), DRIFT_CHECK)
            ]
            statuses = {
                (info.check_key.name, info.partition_key): info.latest_execution_status.value
                for info in instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=days)
            }
            assert {(k.name, day) for k in keys for day in days} <= set(statuses), pipeline
            assert set(statuses.values()) == {"SUCCEEDED"}, {k: v for k, v in statuses.items() if v != "SUCCEEDED"}
