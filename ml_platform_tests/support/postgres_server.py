"""A real, throwaway PostgreSQL server on 127.0.0.1 (Debian's `postgresql` package): `initdb` into a
temp folder, `pg_ctl start` on a free port, one database and one login with a password.

The cluster belongs to the `postgres` OS user when the tests run as root (PostgreSQL refuses to run
as root), and to the current user otherwise. TCP logins need the password (scram-sha-256); the
superuser is reached only through the cluster's own Unix socket folder, to create databases.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from ml_platform_tests.support.platform import service_unavailable
from ml_platform_tests.support.servers import free_port

HOW_TO_INSTALL = "apt-get install postgresql (or: make services)"
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 20


def postgres_bindir() -> Path | None:
    """The newest installed server's bin folder (Debian keeps them in /usr/lib/postgresql/N/bin);
    else the folder of an `initdb` on PATH."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        newest = max(found, key=lambda p: int(re.search(r"/postgresql/(\d+)/", p).group(1)))
        return Path(newest).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    db: str
    socket_dir: Path  # the superuser's way in (trust, Unix socket only)
    data_dir: Path

    def dagster_env(self, db: str | None = None, password: str | None = None) -> dict[str, str]:
        """The DAGSTER_PG_* variables that deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password if password is None else password,
            "DAGSTER_PG_DB": db or self.db,
        }

    def connect(self, db: str | None = None):
        """A psycopg2 connection as the login user over TCP (autocommit)."""
        conn = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=db or self.db,
            connect_timeout=5,
        )
        conn.autocommit = True
        return conn

    def create_database(self, name: str) -> str:
        """A new, empty database owned by the login user (for a test that needs its own)."""
        conn = psycopg2.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}" OWNER "{self.user}"')
        finally:
            conn.close()
        return name


def _as_cluster_owner(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run the command as the `postgres` user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        _as_cluster_owner(args),
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to another user
        return True
    return True


def _stop(bindir: Path, data_dir: Path) -> None:
    """`pg_ctl stop -m fast`; if the postmaster is still there, kill it by its PID."""
    pid = _postmaster_pid(data_dir)
    try:
        _run(
            [str(bindir / "pg_ctl"), "-D", str(data_dir), "stop", "-m", "fast", "-w", "-t", str(STOP_TIMEOUT_S)],
            timeout=STOP_TIMEOUT_S + 10,
        )
    except subprocess.TimeoutExpired:
        pass
    if pid is None or not _alive(pid):
        return
    # SIGQUIT: immediate shutdown (the postmaster takes its backends down); then SIGKILL.
    for sig, wait_s in ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)


def _unavailable(why: str, log: Path | None = None) -> None:
    detail = why
    if log is not None and log.exists():
        detail += "\n--- server log ---\n" + log.read_text(errors="replace")[-3000:]
    print(f"PostgreSQL test server: {detail}", file=sys.stderr)
    service_unavailable("PostgreSQL", HOW_TO_INSTALL)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the test session, stopped (and its files removed) at
    the end. Fails under CI, skips elsewhere, when PostgreSQL is not installed or cannot start."""
    bindir = postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        _unavailable("initdb/pg_ctl not found")
    owner = _cluster_owner()
    # Under /tmp (not pytest's 0700 root-owned tmp folders), so that the `postgres` user can reach it.
    root = Path(tempfile.mkdtemp(prefix="ml-platform-pg-"))
    data_dir, socket_dir, log = root / "data", root / "sock", root / "server.log"
    socket_dir.mkdir()
    if owner is not None:
        for path in (root, socket_dir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    try:
        _initdb(bindir, data_dir)
        port = _start(bindir, data_dir, socket_dir, log)
        user, password, db = "ml_platform", secrets.token_urlsafe(18), "dagster"
        admin = psycopg2.connect(host=str(socket_dir), port=port, user="postgres", dbname="postgres")
        try:
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(f'CREATE ROLE "{user}" LOGIN PASSWORD %s', (password,))
                cur.execute(f'CREATE DATABASE "{db}" OWNER "{user}"')
        finally:
            admin.close()
        server = PostgresServer("127.0.0.1", port, user, password, db, socket_dir, data_dir)
        _wait_for_login(server, log)
        yield server
    finally:
        if data_dir.exists():
            _stop(bindir, data_dir)
        shutil.rmtree(root, ignore_errors=True)


def _cluster_owner():
    """The `postgres` user the server runs as when the tests run as root (None otherwise)."""
    if os.geteuid() != 0:
        return None
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        _unavailable("running as root and there is no `postgres` user to run the server as")
    if shutil.which("runuser") is None:
        _unavailable("running as root and `runuser` is missing")
    return owner


def _initdb(bindir: Path, data_dir: Path) -> None:
    init = _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        ],
        timeout=120,
    )
    if init.returncode != 0:
        _unavailable(f"initdb failed:\n{init.stdout}\n{init.stderr}")


def _start(bindir: Path, data_dir: Path, socket_dir: Path, log: Path) -> int:
    """Start the cluster on a free port of 127.0.0.1 and return it. A free port can be taken between
    choosing and binding it: then try another."""
    for _ in range(3):
        port = free_port()
        log_start = log.stat().st_size if log.exists() else 0
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {socket_dir} "
            # A throwaway cluster: durability is not needed, speed is.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        start = _run(
            [str(bindir / "pg_ctl"), "-D", str(data_dir), "-l", str(log), "-w", "-t", str(START_TIMEOUT_S)]
            + ["-o", options, "start"],
            timeout=START_TIMEOUT_S + 10,
        )
        if start.returncode == 0:
            return port
        _stop(bindir, data_dir)
        if not log.exists():
            break
        with open(log, "rb") as f:
            f.seek(log_start)
            if b"could not bind" not in f.read():
                break
    _unavailable(f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}", log)


def _wait_for_login(server: PostgresServer, log: Path) -> None:
    """Ready when the login user gets in over TCP with its password."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            server.connect().close()
            return
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                _unavailable(f"no TCP login on 127.0.0.1:{server.port}: {exc}", log)
            time.sleep(0.2)
