"""What every section of `make bench` shares around its measures: where things are, the log line,
the flags every section script takes (``--results-dir``, ``--workdir``, ``--keep``), the work
folder, the results JSON, the issue's targets and the table of measures (measure, figure, target,
met?).

``bench/run.py`` runs the sections in one process; ``bench/serving.py`` and ``bench/monitoring.py``
also run alone through ``run_section`` (their own flags + the common ones, a work folder, the
measure, the table, ``bench/results/<section>-<UTC time>.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
BIN = Path(sys.executable).parent
RESULTS = BENCH / "results"

Row = tuple[str, str, str, str]
HEADER: Row = ("measure", "figure", "target", "met?")

# The targets: (kind, limit). kind "max": figure <= limit; "min": figure >= limit.
TARGETS = {
    "cli_ratio_1m": ("max", 1.05),
    "cli_ratio_10k": ("max", 1.6),
    "cli_memory_ratio_1m": ("max", 1.15),
    # the daily run's peak RSS at most the same work's as a Prefect 3 flow (daily / Prefect)
    "daily_memory_vs_prefect_1m": ("max", 1.0),
    "rerun_ratio_1m": ("max", 0.10),
    "backfill_speedup": ("min", 1.7),
    "backfill_vs_pool": ("max", 1.15),
    "backfill_vs_floor_plus_pool": ("max", 1.10),
    "sensor_seconds": ("max", 1.0),
    "sensor_mb": ("max", 200.0),
    # raw_data of the window with a 21-rule data contract declared, against the same run without one
    "contract_ratio_1m": ("max", 1.2),
    "contract_memory_ratio_1m": ("max", 1.2),
    # the daily run (1M rows, a champion in production) with the baseline, the intervals and the
    # paired bootstrap, against the same run without them
    "evaluation_ratio_1m": ("max", 1.10),
}


def logger(name: str = "bench", stream: TextIO | None = None) -> Callable[[str], None]:
    """A ``log(message)`` printing ``[name HH:MM:SS] message`` to ``stream`` (stderr by default)."""

    def log(message: str) -> None:
        print(f"[{name} {time.strftime('%H:%M:%S')}] {message}", file=stream or sys.stderr, flush=True)

    return log


log = logger()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- flags, work folder, results ------------------------------------------------------------------
def add_common_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags every section script takes: where the JSON goes, the work folder, keeping it."""
    parser.add_argument("--results-dir", default=str(RESULTS))
    parser.add_argument("--workdir", default=None, help="where temp projects go (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp projects and logs")
    return parser


def make_workdir(given: str | None, prefix: str) -> Path:
    """``--workdir`` if given, else a new temp folder named ``prefix...``."""
    workdir = Path(given or tempfile.mkdtemp(prefix=prefix))
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def dispose_workdir(workdir: Path, keep: bool, log: Callable[[str], None] = log) -> None:
    if keep:
        log(f"kept {workdir} (projects, instances and logs)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def utc_stamp(when: dt.datetime | None = None) -> str:
    return f"{when or dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"


def write_results(results: dict, results_dir: str | Path, stem: str) -> Path:
    """``results`` as ``<results_dir>/<stem>.json`` (indented; what JSON cannot hold, as text)."""
    out_dir = Path(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{stem}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    return out


# -- the table ------------------------------------------------------------------------------------
def verdict(key: str, figure: float | None) -> tuple[str, str]:
    """(target, met?) of ``figure`` against ``TARGETS[key]``; "not measured" when there is none."""
    kind, limit = TARGETS[key]
    unit = "x" if "ratio" in key or "speedup" in key or "_vs_" in key else (" s" if "seconds" in key else " MB")
    target = f"{'<=' if kind == 'max' else '>='} {limit:g}{unit}"
    if figure is None:
        return target, "not measured"
    ok = figure <= limit if kind == "max" else figure >= limit
    return target, "yes" if ok else "NO"


def verdict_if(applies: bool, key: str | None, figure: float | None) -> tuple[str, str]:
    """``verdict(key, figure)`` where the target applies to the row (its size, say), else ("-", "")."""
    return verdict(key, figure) if applies else ("-", "")


def format_table(rows: list[Row], header: bool = True) -> str:
    """The rows in aligned columns, under the header (measure, figure, target, met?) if ``header``."""
    head = [HEADER] if header else []
    if not head and not rows:
        return ""
    widths = [max(len(r[i]) for r in [*head, *rows]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    lines = [line(HEADER), line(tuple("-" * w for w in widths))] if header else []
    return "\n".join([*lines, *map(line, rows)])


# -- a section run alone ---------------------------------------------------------------------------
def run_section(
    name: str,
    description: str,
    add_flags: Callable[[argparse.ArgumentParser], object],
    measure: Callable[[Path, argparse.Namespace], dict],
    table_rows: Callable[[dict], list[Row]],
    argv: list[str] | None = None,
) -> int:
    """``main()`` of a section script run alone (``bench/serving.py``, ``bench/monitoring.py``):
    its own flags and the common ones; ``measure(workdir, args)`` in a work folder (removed after,
    unless ``--keep``); its table rows printed; the results and the table written to
    ``<results-dir>/<name>-<UTC time>.json``."""
    parser = argparse.ArgumentParser(description=description)
    add_flags(parser)
    args = add_common_flags(parser).parse_args(argv)
    workdir = make_workdir(args.workdir, f"ml_platform_bench_{name}-")
    try:
        results = measure(workdir, args)
    finally:
        dispose_workdir(workdir, args.keep, logger(f"bench {name}", sys.stdout))
    rows = table_rows(results)
    print(format_table(rows, header=False))
    out = write_results({**results, "table": rows}, args.results_dir, f"{name}-{utc_stamp()}")
    print(f"raw: {out}")
    return 0
