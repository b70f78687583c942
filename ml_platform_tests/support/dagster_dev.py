"""`dagster dev` (webserver + daemon) on a free port of 127.0.0.1 for a test, and its GraphQL API."""

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from ml_platform_tests.support.constants import BIN, END_DAY, ROOT
from ml_platform_tests.support.platform import project_env

RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_dagster_dev(tmp_path: Path, extra_env: dict[str, str] | None = None):
    """`dagster dev` (webserver + daemon) on a free port of 127.0.0.1, stopped by process group (Ctrl-C), on a
    new project under ``tmp_path`` with the demo's landing files."""
    # The sensors look every 2 s instead of every minute (as the other daemon tests' do).
    env = {**project_env(tmp_path), "ML_PLATFORM_SENSOR_INTERVAL_S": "2", **(extra_env or {})}
    subprocess.run(
        [str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with dagster_dev_on(env, tmp_path) as (url, port, pid):
        yield url, port, tmp_path, env, pid


@contextlib.contextmanager
def dagster_dev_on(env: dict[str, str], log_dir: Path):
    """`dagster dev` on a project's environment (its DAGSTER_HOME migrated): (url, port, pid)."""
    port = _free_port()
    log = open(log_dir / "dagster_dev.log", "w")
    proc = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (log_dir / "dagster_dev.log").read_text()
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "dagster dev did not answer within 120 s"
            time.sleep(0.5)
        yield url, port, proc.pid
    finally:
        # Ctrl-C, as a user stops it: `dagster dev` stops its webserver, daemon and code server at once
        # (SIGTERM left the daemon finishing its ticks for up to 30 s).
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture
def dagster_dev(tmp_path: Path):
    with running_dagster_dev(tmp_path) as server:
        yield server


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    assert response.ok, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def ingest_earlier_days(url: str, port: int, days: list[str]) -> None:
    """raw_data for all but the newest of ``days`` as one single-run range, launched through the
    GraphQL API as the UI does; returns once the run succeeded."""
    from dagster_graphql import DagsterGraphQLClient

    run_id = DagsterGraphQLClient("127.0.0.1", port_number=port).submit_job_execution(
        "demo_training",
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-2]},
        asset_selection=[["demo", "raw_data"]],
    )
    assert wait_for_run(url, run_id) == "SUCCESS"


def wait_for_run(url: str, run_id: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = graphql(url, RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not finish in {timeout} s")


SENSORS = """
{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { ... on RepositoryLocation {
    repositories { name } } } } } } }
"""
START_SENSOR = """
mutation($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
  __typename ... on Sensor { sensorState { status } } ... on PythonError { message } } }
"""
RUNS_BY_TRIGGER = """
query($value: String!) { runsOrError(filter: {tags: [{key: "ml_platform/trigger", value: $value}]}) {
  ... on Runs { results { runId status tags { key value } } } } }
"""


def start_sensors(url: str, names: list[str]) -> None:
    """Turn sensors on as the UI's toggle does (the one code location, its one repository)."""
    (location,) = graphql(url, SENSORS)["workspaceOrError"]["locationEntries"]
    (repository,) = location["locationOrLoadError"]["repositories"]
    for name in names:
        selector = {
            "repositoryLocationName": location["name"],
            "repositoryName": repository["name"],
            "sensorName": name,
        }
        started = graphql(url, START_SENSOR, {"selector": selector})["startSensor"]
        assert started.get("sensorState", {}).get("status") == "RUNNING", started


def runs_triggered_by(url: str, trigger: str) -> list[dict]:
    """The runs tagged ``ml_platform/trigger`` = ``trigger``: runId, status, tags."""
    return graphql(url, RUNS_BY_TRIGGER, {"value": trigger})["runsOrError"]["results"]


def wait_for_runs(url: str, trigger: str, count: int, timeout: float = 300) -> list[dict]:
    """Wait until ``count`` runs with this trigger have finished; fail fast on a failed run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_triggered_by(url, trigger)
        done = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        assert all(r["status"] == "SUCCESS" for r in done), done
        if len(done) >= count:
            return done
        time.sleep(2)
    raise AssertionError(f"{count} {trigger} run(s) did not finish in {timeout} s: {runs_triggered_by(url, trigger)}")
