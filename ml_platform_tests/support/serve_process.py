"""`ml-platform serve` as a real process on a free port of 127.0.0.1, and a real HTTP client for it;
and the same app in the test's own process, on a clock the test sets."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_platform_tests.support.constants import BIN, MODEL_NAME
from ml_platform_tests.support.servers import free_port

TOKEN = "serve-token-for-tests"


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        token: str | None = TOKEN,
        timeout: float = 30,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict | str, dict]:
        headers = {**({"Content-Type": content_type} if body is not None else {}), **(headers or {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw, answer_headers = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, raw, answer_headers = error.code, error.read(), dict(error.headers)
        text = raw.decode()
        try:
            return status, json.loads(text), answer_headers
        except json.JSONDecodeError:
            return status, text, answer_headers

    def predict(self, rows, model: str = MODEL_NAME, query: str = "", **kwargs):
        body = rows if isinstance(rows, bytes) else json.dumps(rows).encode()
        return self.request("POST", f"/v1/models/{model}/predict{query}", body, **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(env: dict[str, str], log: Path, *args: str, ready: bool = True) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "ml-platform"), "serve", "--port", str(port), *args],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ml-platform serve exited {process.returncode}:\n{log.read_text()}")
        try:
            status, _, _ = server.request("GET", "/readyz" if ready else "/livez", token=None, timeout=2)
            if status == 200:
                return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"ml-platform serve was not ready within 60 s:\n{log.read_text()}")


@contextlib.contextmanager
def serving_in_process(store_dir: Path, log: dict[str, dict[str, Any]], clock) -> Iterator[Any]:
    """The server's own app (``create_app``) for the models of ``log`` (their ``serving.log``
    settings, with the time zone), in this process, answering on ``clock``: a Starlette TestClient
    whose requests the app checks, predicts and logs as `ml-platform serve` does. The log is
    written when the block ends (the app stops, as on SIGTERM)."""
    from ml_platform.serving.app import ServeConfig, create_app

    with warnings.catch_warnings():  # Starlette would rather have httpx2; httpx is what is installed
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
        from starlette.testclient import TestClient

    config = ServeConfig(models=list(log), store_dir=str(store_dir), log=log, log_flush_s=600)
    with TestClient(create_app(config, clock)) as client:
        yield client


def until(condition, what: str, timeout: float = 30):
    """Poll ``condition`` until it returns something true (its value), failing after ``timeout``
    seconds: a liveness bound, not a performance target (reload times are measured by make bench)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")
