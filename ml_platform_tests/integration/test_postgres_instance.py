"""The production instance, deploy/dagster.yaml, on a real PostgreSQL server: the real `dagster` CLI
migrates it and materializes the pipeline into it; the runs and asset events are then read back
with SQL and through Dagster. The password comes from the environment only."""

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from ml_platform_tests.support.constants import BIN, DAYS, END_DAY, ROOT
from ml_platform_tests.support.good_platform import deployed  # noqa: F401
from ml_platform_tests.support.platform import project_env
from ml_platform_tests.support.postgres_server import PostgresServer, postgres  # noqa: F401 (fixture)

DEPLOY_YAML = ROOT / "deploy" / "dagster.yaml"
MAX_CONCURRENT_RUNS = 3

pytestmark = pytest.mark.cli


def pg_home(root: Path) -> Path:
    """A DAGSTER_HOME whose dagster.yaml is deploy/dagster.yaml, unchanged."""
    home = root / "pg_dagster_home"
    home.mkdir()
    shutil.copyfile(DEPLOY_YAML, home / "dagster.yaml")
    return home


def run(args: list[str], env: dict[str, str], expect: int | None = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, check=False, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    if expect is not None:
        assert proc.returncode == expect, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def materialize(env: dict[str, str], *args: str) -> None:
    run([str(BIN / "dagster"), "asset", "materialize", "-m", "ml_platform.definitions", *args], env)


def test_pipeline_runs_on_the_postgres_instance_of_deploy_dagster_yaml(
    postgres: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    db = postgres.create_database(f"pipeline_{uuid.uuid4().hex[:8]}")
    home = pg_home(tmp_path)
    pg_env = {**postgres.dagster_env(db=db), "ML_PLATFORM_MAX_CONCURRENT_RUNS": str(MAX_CONCURRENT_RUNS)}
    env = {**project_env(tmp_path), **pg_env, "DAGSTER_HOME": str(home)}

    run([str(BIN / "dagster"), "instance", "migrate"], env)
    run([str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY], env)
    materialize(env, "--select", "key:demo/raw_data", "--partition-range", f"{DAYS[0]}...{DAYS[-1]}")
    materialize(env, "--select", "key:demo/training_data+", "--partition", END_DAY)

    # Nothing went to SQLite under the Postgres-configured home.
    assert not list(home.rglob("*.db"))

    # In Postgres itself: two successful runs (the 7-day range, then training), one raw_data
    # materialization per day from the range run, the whole chain for END_DAY.
    with postgres.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, status FROM runs ORDER BY create_timestamp")
        runs = cur.fetchall()
        assert [status for _, status in runs] == ["SUCCESS", "SUCCESS"]
        range_run, chain_run = (run_id for run_id, _ in runs)

        cur.execute(
            "SELECT asset_key, partition, run_id FROM event_logs WHERE dagster_event_type = %s",
            (dg.DagsterEventType.ASSET_MATERIALIZATION.value,),
        )
        events = cur.fetchall()
        raw = [(partition, run_id) for key, partition, run_id in events if key == '["demo", "raw_data"]']
        assert sorted(raw) == [(day, range_run) for day in DAYS]
        chain = {key: (partition, run_id) for key, partition, run_id in events if key != '["demo", "raw_data"]'}
        assert set(chain) == {
            f'["demo", "{name}"]'
            for name in (
                "training_data",
                "train_split",
                "test_split",
                "trained_model",
                "model_metrics",
                "deployed_model",
            )
        }
        assert set(chain.values()) == {(END_DAY, chain_run)}

        # (stored under its legacy name, PIPELINE_SUCCESS)
        cur.execute(
            "SELECT run_id, count(*) FROM event_logs WHERE dagster_event_type = %s GROUP BY run_id",
            (dg.DagsterEventType.RUN_SUCCESS.value,),
        )
        assert dict(cur.fetchall()) == {range_run: 1, chain_run: 1}

    # Through Dagster, from the same dagster.yaml (its {env: ...} values from this process's env).
    for name, value in pg_env.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert instance.run_storage.postgres_url.startswith("postgresql+psycopg2://")
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == MAX_CONCURRENT_RUNS
        assert instance.run_monitoring_enabled
        assert not instance.telemetry_enabled

        records = instance.get_run_records()
        assert {r.dagster_run.run_id for r in records} == {range_run, chain_run}
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
        raw_records = instance.fetch_materializations(dg.AssetKey(["demo", "raw_data"]), limit=100).records
        assert sorted(r.partition_key for r in raw_records) == DAYS
        deployed = instance.fetch_materializations(dg.AssetKey(["demo", "deployed_model"]), limit=10).records
        assert [(r.partition_key, r.run_id) for r in deployed] == [(END_DAY, chain_run)]


def test_the_password_comes_from_the_environment(
    postgres: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    text = DEPLOY_YAML.read_text()
    assert postgres.password not in text
    postgres_db = yaml.safe_load(text)["storage"]["postgres"]["postgres_db"]
    assert postgres_db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert all(
        isinstance(value, dict) and set(value) == {"env"} for key, value in postgres_db.items() if key != "scheme"
    ), postgres_db

    home = pg_home(tmp_path)
    env = {
        **os.environ,
        **postgres.dagster_env(password="not-" + postgres.password),
        "ML_PLATFORM_MAX_CONCURRENT_RUNS": "1",
        "DAGSTER_HOME": str(home),
    }
    proc = run([str(BIN / "dagster"), "instance", "migrate"], env, expect=None)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert f'password authentication failed for user "{postgres.user}"' in output, output
    assert postgres.password not in output and env["DAGSTER_PG_PASSWORD"] not in output

    # No password in the environment: the instance does not load, and says which variable is missing.
    monkeypatch.delenv("DAGSTER_PG_PASSWORD", raising=False)
    for name, value in postgres.dagster_env().items():
        if name != "DAGSTER_PG_PASSWORD":
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("ML_PLATFORM_MAX_CONCURRENT_RUNS", "1")
    with pytest.raises(dg.DagsterInvalidConfigError, match='"DAGSTER_PG_PASSWORD" which is not set'):
        dg.DagsterInstance.from_config(str(home))
