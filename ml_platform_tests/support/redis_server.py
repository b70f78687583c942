"""A real Redis (Debian's `redis-server`) on 127.0.0.1 for the Celery tests: a throwaway server
on a free port, no persistence, stopped by its PID at teardown."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml_platform_tests.support.platform import service_unavailable
from ml_platform_tests.support.servers import free_port

HOW_TO_INSTALL = "apt-get install redis-server (or: make services)"
START_TIMEOUT_S = 15.0


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.access(p, os.X_OK)), None
    )


def ping(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING on 127.0.0.1:port (plain RESP, no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def stop(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `grace_s` seconds (by PID only)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)


@pytest.fixture
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `redis-server` on 127.0.0.1 and a free port; yield its URL (redis://127.0.0.1:P)."""
    binary = redis_server_binary()
    if binary is None:
        service_unavailable("Redis", HOW_TO_INSTALL)
    workdir: Path = tmp_path_factory.mktemp("redis")
    log_path = workdir / "redis.log"
    proc: subprocess.Popen | None = None
    port = 0
    # A free port can be taken by someone else between the probe and the bind: try a few.
    for _attempt in range(3):
        port = free_port()
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(workdir),
                    "--protected-mode",
                    "yes",
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None and not ping(port):
            time.sleep(0.05)
        if proc.poll() is None and ping(port):
            break
        stop(proc)
        proc = None
    if proc is None:
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        why = tail.strip() or f"exited or did not answer PING within {START_TIMEOUT_S:.0f}s"
        service_unavailable("Redis", f"{HOW_TO_INSTALL} (redis-server did not start: {why})")
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop(proc)
