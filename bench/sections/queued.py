"""Section "queued" (opt-in, --queued-backfill): a backfill of the whole training job (one run per
day: ingest the day, train on its window, evaluate, gate, deploy), launched in `dagster dev` as
the UI does; the queued run coordinator runs 1, then 2 of them at once, each in its own process."""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path

from projects import END_DAY, Workspace, days_ending, dispose, storage_time, write_landing
from scaffold import ROOT, Row, log, verdict
from timing import RunFailed, interleaved, medians

from sections.dev import dev_server, graphql

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""
_DONE = ("SUCCESS", "FAILURE", "CANCELED")
CONCURRENCY = {"concurrent_1": 1, "concurrent_2": 2}


def backfill_runs(home: Path, backfill_id: str) -> list[tuple[str, float, float | None, float | None]]:
    """(status, created, started, ended) of the backfill's runs, from the run storage."""
    import sqlite3

    try:
        uri = f"file:{home / 'history' / 'runs.db'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            rows = db.execute(
                "select status, create_timestamp, start_time, end_time from runs where backfill_id = ?", (backfill_id,)
            ).fetchall()
    except sqlite3.OperationalError:  # locked by a writer: ask again on the next poll
        return []
    return [(status, storage_time(created), start, end) for status, created, start, end in rows]


def bench_queued(ws: Workspace, days_count: int, rows_per_day: int, reps: int, keep: bool) -> dict:
    """A backfill of the whole training job (one run per day: ingest the day, train on its
    window, evaluate, gate, deploy), launched in `dagster dev` as the UI does; the queued run
    coordinator runs max_concurrent_runs of them at once, each in its own process."""
    days = days_ending(END_DAY, days_count)
    landing = ws.root / "landing-queued"
    log(f"queued backfill: writing {days_count} days x {rows_per_day} rows to {landing}")
    write_landing(landing, days_count * rows_per_day, days)

    def measure(name: str, rep: int) -> dict:
        concurrency = CONCURRENCY[name]
        root, env = ws.project(f"queued-{name}-{rep}", landing)
        config = (ROOT / "deploy" / "dagster.local.yaml").read_text()
        (root / "dagster_home" / "dagster.yaml").write_text(config.replace("@MAX_CONCURRENT_RUNS@", str(concurrency)))
        rows, launched_at, finished_at = run_backfill(root, env, days, name)
        record = {"concurrency": concurrency, **backfill_figures(rows, launched_at, finished_at)}
        log(
            f"queued backfill rep {rep}/{reps}, {concurrency} at a time: {record['runs']} runs,"
            f" first created to last end {record['created_to_last_end_s']:.1f} s,"
            f" launch to done {record['launch_to_done_s']:.1f} s"
        )
        dispose(root, keep)
        return record

    runs = interleaved(CONCURRENCY, reps, measure)
    dispose(landing, keep)
    keys = ("launch_to_done_s", "created_to_last_end_s", "first_start_to_last_end_s", "run_s_mean")
    summary = {name: medians(records, keys) for name, records in runs.items()}
    summary["speedup_2_vs_1"] = (
        summary["concurrent_1"]["created_to_last_end_s"] / summary["concurrent_2"]["created_to_last_end_s"]
    )
    return {"days": days_count, "rows_per_day": rows_per_day, "runs": runs, "summary": summary}


def run_backfill(root: Path, env: dict, days: list[str], name: str) -> tuple[list[tuple], float, float]:
    """Launch the backfill of ``days`` in `dagster dev` and wait for its runs: (the runs, launched
    at, finished at)."""
    home = root / "dagster_home"
    with dev_server(root, env) as server:
        repository = {"repositoryLocationName": server["location_name"], "repositoryName": "__repository__"}
        params = {
            "selector": {"partitionSetName": "demo_training_partition_set", "repositorySelector": repository},
            "partitionNames": days,
        }
        launched_at = time.time()
        answer = graphql(server["url"], LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if answer["__typename"] != "LaunchBackfillSuccess":
            raise RunFailed(f"launching the backfill failed: {answer}")
        deadline = time.perf_counter() + 60 * len(days)
        while True:
            rows = backfill_runs(home, answer["backfillId"])
            if len(rows) == len(days) and all(row[0] in _DONE for row in rows):
                break
            if time.perf_counter() > deadline:
                raise RunFailed(f"queued backfill ({name}) did not finish: {rows}")
            time.sleep(1)
        finished_at = time.time()
    failed = [row[0] for row in rows if row[0] != "SUCCESS"]
    if failed:
        raise RunFailed(
            f"queued backfill ({name}): {len(failed)} run(s) did not succeed; see {root / 'dagster_dev.log'}"
        )
    return rows, launched_at, finished_at


def backfill_figures(rows: list[tuple], launched_at: float, finished_at: float) -> dict:
    """From the first run created (queued) to the last run ended: queueing, a process per run
    (interpreter, imports, code location), the runs. Launch to done adds the backfill daemon's
    pickup and the polling."""
    first_created = min(row[1] for row in rows)
    last_end = max(row[3] for row in rows)
    return {
        "runs": len(rows),
        "launch_to_done_s": finished_at - launched_at,
        "created_to_last_end_s": last_end - first_created,
        "first_start_to_last_end_s": last_end - min(row[2] for row in rows),
        "run_s_mean": statistics.mean(end - start for _, _, start, end in rows),
        "timeline": sorted(
            (round(c - first_created, 2), round(a - first_created, 2), round(b - first_created, 2))
            for _, c, a, b in rows
        ),
    }


def table_rows(queued: dict | None) -> list[Row]:
    if not queued:
        return []
    s, n = queued["summary"], queued["days"]
    rows: list[Row] = [
        (
            f"queued backfill: {n} training runs, {k} at a time",
            f"{s[f'concurrent_{k}']['created_to_last_end_s']:.1f} s",
            "",
            "",
        )
        for k in (1, 2)
    ]
    rows.append(
        (
            "queued backfill speedup, 2 runs at a time vs 1",
            f"{s['speedup_2_vs_1']:.2f}x",
            *verdict("backfill_speedup", s["speedup_2_vs_1"]),
        )
    )
    return rows


def time_lines(queued: dict | None) -> list[str]:
    if not queued:
        return []
    lines = []
    for k in (1, 2):
        q = queued["summary"][f"concurrent_{k}"]
        lines.append(
            f"queued backfill, {k} at a time: launch to done {q['launch_to_done_s']:.1f},"
            f" first run created to last run ended {q['created_to_last_end_s']:.1f},"
            f" first run started to last run ended {q['first_start_to_last_end_s']:.1f},"
            f" mean run (start to end, inside its process) {q['run_s_mean']:.2f}"
        )
    return lines
