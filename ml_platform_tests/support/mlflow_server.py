"""A real MLflow tracking server on 127.0.0.1 for the tracking tests: ``mlflow server`` from its own
venv (``make mlflow-server`` installs the full ``mlflow`` in ``.venv-mlflow``, away from Dagster's
pins), a SQLite backend and artifacts served over HTTP (``--serve-artifacts``: the client uploads
through the server, it never needs the server's filesystem), stopped by its process group at teardown.

One server per test module (start-up is a few seconds); each test uses its own experiment name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml_platform_tests.support.platform import service_unavailable
from ml_platform_tests.support.servers import free_port

PROJECT = Path(__file__).resolve().parents[2]
BINARY_ENV = "ML_PLATFORM_TEST_MLFLOW"
HOW_TO_INSTALL = f"make mlflow-server (or set {BINARY_ENV} to an `mlflow` executable)"
# Generous: the server imports Flask, SQLAlchemy and FastAPI and migrates a fresh database; about
# 5 s on a 2-core machine when idle, much more while the rest of the suite runs beside it.
START_TIMEOUT_S = 60.0


def mlflow_binary() -> str | None:
    """``$ML_PLATFORM_TEST_MLFLOW``, else the project's ``.venv-mlflow/bin/mlflow``."""
    candidate = os.environ.get(BINARY_ENV) or str(PROJECT / ".venv-mlflow" / "bin" / "mlflow")
    return candidate if os.access(candidate, os.X_OK) else None


def healthy(url: str, timeout: float = 1.0) -> bool:
    """True when the server answers ``GET /health`` with 200."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to the server's process group (``mlflow server`` runs uvicorn as a child), then
    SIGKILL to it if the server has not exited after ``grace_s`` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    # The group's other members (the uvicorn worker) may outlive the leader: kill what is left.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(timeout=grace_s)


def _log_tail(path: Path) -> str:
    if not path.exists():
        return ""
    # pip's environment on some machines adds noise lines: keep the server's own.
    lines = [line for line in path.read_text(errors="replace").splitlines() if "is ignored" not in line]
    return "\n".join(lines[-40:])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``mlflow server`` on 127.0.0.1 and a free port (1 worker); yield its URL."""
    binary = mlflow_binary()
    if binary is None:
        service_unavailable("The MLflow server", HOW_TO_INSTALL)
    workdir: Path = tmp_path_factory.mktemp("mlflow")
    log_path = workdir / "mlflow.log"
    env = {
        **os.environ,
        # The job runner (GenAI evaluation jobs: a huey consumer per queue) is not needed here.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    proc: subprocess.Popen | None = None
    url = ""
    why = ""
    # A free port can be taken by someone else between the probe and the bind: try a few.
    for _attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{workdir / 'mlflow.db'}",
                    "--artifacts-destination",
                    str(workdir / "artifacts"),
                    "--serve-artifacts",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                env=env,
                start_new_session=True,  # its own process group, stopped as one
            )
        started = time.monotonic()
        while time.monotonic() - started < START_TIMEOUT_S and proc.poll() is None and not healthy(url):
            time.sleep(0.2)
        if proc.poll() is None and healthy(url):
            print(f"mlflow server ready at {url} in {time.monotonic() - started:.1f}s")
            break
        why = (
            f"exited with {proc.returncode}"
            if proc.poll() is not None
            else f"did not answer /health within {START_TIMEOUT_S:.0f}s"
        )
        stop(proc)
        proc = None
    if proc is None:
        service_unavailable(
            "The MLflow server", f"{HOW_TO_INSTALL} (mlflow server {why}; its log:\n{_log_tail(log_path)})"
        )
    try:
        yield url
    finally:
        stop(proc)
