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
    """`dagster dev` (webserver + daemon) on a free port of 127.0.0.1, stopped by process group."""
    # The sensors look every 5 s instead of every minute.
    env = {**project_env(tmp_path), "ML_PLATFORM_SENSOR_INTERVAL_S": "5", **(extra_env or {})}
    subprocess.run(
        [str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = _free_port()
    log = open(tmp_path / "dagster_dev.log", "w")
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
            assert proc.poll() is None, (tmp_path / "dagster_dev.log").read_text()
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "dagster dev did not answer within 120 s"
            time.sleep(0.5)
        yield url, port, tmp_path, env, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
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
