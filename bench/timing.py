"""How every section times, written once: repetitions (interleaved across variants, so that a drift
of the machine weighs on each alike) and their medians; the wall time and peak RSS of a process
(``run_measured``, through ``bench/measure.py``); the RSS of a process group."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from scaffold import BENCH, PYTHON, ROOT

T = TypeVar("T")


class RunFailed(RuntimeError):
    pass


# -- repetitions and medians ----------------------------------------------------------------------
def median(values):
    """The median of the values that are not None (None if there is none)."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def medians(records: list[dict], keys: Iterable[str]) -> dict:
    """Per key, the median of the records' values."""
    return {k: median([r[k] for r in records]) for k in keys}


def repeat(measure: Callable[[int], dict], reps: int) -> list[dict]:
    """``measure(rep)`` for rep 1..reps: one record each, ``{"rep": rep, **measured}``."""
    return [{"rep": rep, **measure(rep)} for rep in range(1, reps + 1)]


def interleaved(names: Iterable[str], reps: int, measure: Callable[[str, int], dict]) -> dict[str, list[dict]]:
    """``measure(name, rep)`` of every variant per repetition (a, b, c, a, b, c, ...): name -> its
    records, ``{"rep": rep, **measured}`` each."""
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for rep in range(1, reps + 1):
        for name in runs:
            runs[name].append({"rep": rep, **measure(name, rep)})
    return runs


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(wall seconds of ``fn()``, what it returned)."""
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


# -- a process's wall time and peak RSS ----------------------------------------------------------
def run_measured(
    commands: list[list[str]], env: dict, log_path: Path, cpus: set[int] | None = None, timeout: float = 3600
) -> dict:
    """Run commands one after the other, each in its own process, under bench/measure.py (a bare
    wrapper interpreter): wall time and peak RSS of each process, from os.wait4 of that process."""
    result_path = log_path.with_suffix(".measure.json")
    wrapper = [
        PYTHON,
        "-I",
        "-S",
        str(BENCH / "measure.py"),
        str(result_path),
        ",".join(map(str, sorted(cpus))) if cpus else "",
        json.dumps(commands),
    ]
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            wrapper, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            what = " ".join(commands[0][:6])
            raise RunFailed(f"{what} took longer than {timeout} s; log {log_path}") from None
    if code != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RunFailed(f"{' '.join(commands[-1][:6])} failed (exit {code}); log {log_path}:\n{tail}")
    measured = json.loads(result_path.read_text())
    results = measured["processes"]
    return {
        "wall_s": sum(r["wall_s"] for r in results),
        "max_rss_mb": max(r["max_rss_mb"] for r in results),
        "cpu_s": sum(r["user_s"] + r["sys_s"] for r in results),
        "rss_floor_mb": measured["floor_mb"],
        "processes": results,
    }


def group_rss_mb(pgid: int) -> float:
    """The RSS of every process of the group ``pgid`` together (VmRSS from /proc), in MB."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5 of stat: the process group
                continue
            with open(f"/proc/{entry}/status") as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    return total / 1024
