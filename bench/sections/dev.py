"""Section "dev": `dagster dev` on a fresh DAGSTER_HOME, the time until `GET /` answers 200 and
until GraphQL reports the code location loaded, and the RSS of its processes then; stopped
through its process group. ``dev_server`` also serves the queued backfill (sections/queued.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from projects import DAGSTER, Workspace, dispose
from scaffold import ROOT, Row, free_port, log
from timing import RunFailed, group_rss_mb, medians, repeat

WORKSPACE_STATUS = (
    "{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus"
    " locationOrLoadError { __typename } } } } }"
)


def _get(url: str, body: bytes | None = None, timeout: float = 5) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    payload = json.dumps({"query": query, "variables": variables or {}}).encode()
    _, body = _get(url + "/graphql", payload, timeout=120)
    answer = json.loads(body)
    if answer.get("errors"):
        raise RunFailed(f"GraphQL error: {answer['errors']}")
    return answer["data"]


@contextlib.contextmanager
def dev_server(root: Path, env: dict[str, str]):
    """`dagster dev` on a free port of 127.0.0.1, in its own process group; yields the record of
    its start (time to the first page, to a loaded code location) and its URL; stopped by
    SIGTERM to the group (SIGKILL after 30 s)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_handle = open(root / "dagster_dev.log", "wb")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [DAGSTER, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log_handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    record: dict = {"url": url}
    try:
        wait_until_loaded(proc, root, started, record)
        yield record
    finally:
        stopping = time.perf_counter()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        record["stop_s"] = time.perf_counter() - stopping
        log_handle.close()


def wait_until_loaded(proc: subprocess.Popen, root: Path, started: float, record: dict) -> None:
    """Poll the server every 50 ms until its first page, then its code location loaded, into
    ``record`` (seconds since ``started``); at most 240 s."""
    deadline = started + 240
    while "first_page_s" not in record or "location_loaded_s" not in record:
        if proc.poll() is not None:
            raise RunFailed(f"dagster dev exited: {(root / 'dagster_dev.log').read_text()[-3000:]}")
        if time.perf_counter() > deadline:
            raise RunFailed("dagster dev did not serve a loaded code location within 240 s")
        try:
            if poll_once(proc, started, record):
                continue
        except (urllib.error.URLError, ConnectionError, OSError, KeyError, ValueError):
            pass
        time.sleep(0.05)


def poll_once(proc: subprocess.Popen, started: float, record: dict) -> bool:
    """One look at the server; True when it moved ``record`` on (then look again at once)."""
    url = record["url"]
    if "first_page_s" not in record:
        status, _ = _get(url + "/")
        if status == 200:
            record["first_page_s"] = time.perf_counter() - started
            return True
        return False
    entries = graphql(url, WORKSPACE_STATUS)["workspaceOrError"].get("locationEntries") or []
    if not (entries and all(e["loadStatus"] == "LOADED" for e in entries)):
        return False
    kinds = {e["locationOrLoadError"]["__typename"] for e in entries}
    if kinds != {"RepositoryLocation"}:
        raise RunFailed(f"the code location failed to load: {kinds}")
    record["location_loaded_s"] = time.perf_counter() - started
    record["process_group_rss_mb"] = group_rss_mb(proc.pid)
    record["location_name"] = entries[0]["name"]
    return True


def bench_dev(ws: Workspace, landing: Path, reps: int, keep: bool) -> dict:
    def measure(rep: int) -> dict:
        root, env = ws.project(f"dev-{rep}", landing)
        root.mkdir(exist_ok=True)
        with dev_server(root, env) as record:
            pass
        log(
            f"dagster dev rep {rep}/{reps}: first page {record['first_page_s']:.2f} s, code location loaded"
            f" {record['location_loaded_s']:.2f} s, {record['process_group_rss_mb']:.0f} MB in its processes"
        )
        dispose(root, keep)
        return record

    runs = repeat(measure, reps)
    summary = medians(runs, ("first_page_s", "location_loaded_s", "process_group_rss_mb", "stop_s"))
    return {"runs": runs, "summary": summary}


def table_rows(dev: dict | None) -> list[Row]:
    if not dev:
        return []
    s = dev["summary"]
    return [
        ("dagster dev: time to first page (GET / = 200)", f"{s['first_page_s']:.2f} s", "-", ""),
        ("dagster dev: time to code location loaded", f"{s['location_loaded_s']:.2f} s", "-", ""),
    ]
