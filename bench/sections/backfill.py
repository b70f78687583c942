"""Section "backfill": the per-day ingest work of a 30-day backfill (read, sha256, parse, validate,
store), one process per variant (bench/backfill_work.py), timed after the imports: 30 single-day
runs, one range run on every usable core and pinned to one, a plain loop and a plain 2-process
pool doing the same work, and Dagster's no-work range run (the floor)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from projects import (
    END_DAY,
    Workspace,
    days_ending,
    dispose,
    events_total,
    phase_text,
    rows_label,
    run_events,
    write_landing,
)
from scaffold import BENCH, PYTHON, Row, log, verdict
from timing import RunFailed, interleaved, median, medians, run_measured


@dataclass
class Backfill:
    ws: Workspace
    days: list[str]
    landing: Path
    reps: int
    keep: bool

    def variants(self) -> dict[str, tuple[str, set[int] | None]]:
        """name -> (backfill_work.py's mode, the CPUs it is pinned to, or None for every usable one)."""
        cpu0 = {min(os.sched_getaffinity(0))}
        return {
            "single_runs": ("single", None),
            "range_run": ("range", None),
            "range_run_1cpu": ("range", cpu0),
            "plain_loop": ("plain-seq", None),
            "plain_pool2": ("plain-pool", None),
            "floor_range": ("floor", None),  # Dagster's own cost of a 30-day range run with no work
        }

    def measure(self, name: str, mode: str, cpus: set[int] | None, rep: int) -> dict:
        root, env = self.ws.project(f"backfill-{name}-{rep}", self.landing)
        root.mkdir(exist_ok=True)
        result_file = root / "result.json"
        command = [PYTHON, str(BENCH / "backfill_work.py"), mode, "--landing", str(self.landing)]
        command += ["--days", ",".join(self.days), "--out", str(root / "plain_out"), "--result", str(result_file)]
        measured = run_measured([command], env, root / "output.log", cpus=cpus)
        record = {**measured, **json.loads(result_file.read_text())}
        if not mode.startswith("plain"):
            if record.get("materialized_days") != len(self.days):
                done = record.get("materialized_days")
                raise RunFailed(f"backfill {name}: {done} of {len(self.days)} days materialized")
            if mode != "floor":
                record["events"] = events_total(run_events(Path(env["DAGSTER_HOME"])))
        log(
            f"backfill rep {rep}/{self.reps} {name:>15}: work {record['work_s']:6.2f} s"
            f" (process {record['wall_s']:6.2f} s, peak RSS {record['max_rss_mb']:5.0f} MB)"
        )
        dispose(root, self.keep)
        return record


def bench_backfill(ws: Workspace, days_count: int, rows_per_day: int, reps: int, keep: bool) -> dict:
    days = days_ending(END_DAY, days_count)
    landing = ws.root / "landing-backfill"
    log(f"backfill: writing {days_count} days x {rows_per_day} rows to {landing}")
    write_landing(landing, days_count * rows_per_day, days)
    backfill = Backfill(ws, days, landing, reps, keep)
    variants = backfill.variants()
    runs = interleaved(variants, reps, lambda name, rep: backfill.measure(name, *variants[name], rep))
    dispose(landing, keep)
    return {"days": days_count, "rows_per_day": rows_per_day, "runs": runs, "summary": summarize(runs)}


def summarize(runs: dict[str, list[dict]]) -> dict:
    summary = {name: medians(records, ("work_s", "wall_s", "max_rss_mb")) for name, records in runs.items()}
    for name, records in runs.items():
        if "events" in records[0]:
            summary[name]["events"] = events_medians(records)
    work = {name: values["work_s"] for name, values in summary.items()}
    summary["speedup_range_vs_single_runs"] = work["single_runs"] / work["range_run"]
    summary["speedup_range_2cpu_vs_1cpu"] = work["range_run_1cpu"] / work["range_run"]
    summary["speedup_plain_pool2_vs_loop"] = work["plain_loop"] / work["plain_pool2"]
    summary["range_vs_plain_pool2"] = work["range_run"] / work["plain_pool2"]
    # No range run doing this work can beat Dagster's no-work range run + the plain pool's work.
    summary["lower_bound_vs_plain_pool2"] = (work["floor_range"] + work["plain_pool2"]) / work["plain_pool2"]
    # Issue 18's bar: the range run against that bound itself, in the same run.
    summary["range_vs_floor_plus_pool2"] = work["range_run"] / (work["floor_range"] + work["plain_pool2"])
    summary["cores"] = len(os.sched_getaffinity(0))
    return summary


def events_medians(records: list[dict]) -> dict:
    first = records[0]["events"]
    return {
        "runs": first["runs"],
        "setup_s": median([r["events"]["setup_s"] for r in records]),
        "run_s": median([r["events"]["run_s"] for r in records]),
        "step_phases_s": {
            step: {phase: median([r["events"]["step_phases_s"][step][phase] for r in records]) for phase in phases}
            for step, phases in first["step_phases_s"].items()
        },
    }


def table_rows(backfill: dict | None) -> list[Row]:
    if not backfill:
        return [("backfill speedup", "not run", *verdict("backfill_speedup", None))]
    s = backfill["summary"]
    n, per_day = backfill["days"], rows_label(backfill["rows_per_day"])
    bound_s = s["floor_range"]["work_s"] + s["plain_pool2"]["work_s"]
    return [
        (
            f"backfill {n} days x {per_day} rows: {n} single-day runs in sequence",
            f"{s['single_runs']['work_s']:.2f} s",
            "",
            "",
        ),
        (
            f"backfill {n} days x {per_day} rows: one range run (--partition-range)",
            f"{s['range_run']['work_s']:.2f} s",
            "",
            "",
        ),
        (
            "backfill speedup: range run vs single-day runs",
            f"{s['speedup_range_vs_single_runs']:.2f}x",
            *verdict("backfill_speedup", s["speedup_range_vs_single_runs"]),
        ),
        (
            "backfill speedup from the 2nd core (range run, 1 vs 2 CPUs)",
            f"{s['speedup_range_2cpu_vs_1cpu']:.2f}x",
            *verdict("backfill_speedup", s["speedup_range_2cpu_vs_1cpu"]),
        ),
        # The same bar for the plain reference: what 2 cores can give this per-day work at all.
        (
            "backfill reference: plain per-day work, 2-process pool vs loop",
            f"{s['speedup_plain_pool2_vs_loop']:.2f}x",
            *verdict("backfill_speedup", s["speedup_plain_pool2_vs_loop"]),
        ),
        (
            "backfill range run vs plain 2-process pool (same per-day work)",
            f"{s['range_vs_plain_pool2']:.2f}x",
            *verdict("backfill_vs_pool", s["range_vs_plain_pool2"]),
        ),
        (
            f"backfill Dagster's floor: range run of {n} days doing no work",
            f"{s['floor_range']['work_s']:.2f} s",
            "-",
            "",
        ),
        (
            "backfill lower bound = floor + plain pool work (x plain pool)",
            f"{s['lower_bound_vs_plain_pool2']:.2f}x",
            *verdict("backfill_vs_pool", s["lower_bound_vs_plain_pool2"]),
        ),
        (
            f"backfill range run vs that lower bound (floor + pool), {s.get('cores', '?')} cores",
            f"{s['range_run']['work_s']:.2f} s / {bound_s:.2f} s = {s['range_vs_floor_plus_pool2']:.2f}x",
            *verdict("backfill_vs_floor_plus_pool", s["range_vs_floor_plus_pool2"]),
        ),
    ]


def time_lines(backfill: dict | None) -> list[str]:
    if not backfill:
        return []
    s = backfill["summary"]
    lines = []
    for name in ("single_runs", "range_run", "range_run_1cpu"):
        e = s[name]["events"]
        steps = ", ".join(f"{step} ({phase_text(p)})" for step, p in e["step_phases_s"].items())
        lines.append(
            f"backfill {name}: work {s[name]['work_s']:.2f} = {e['runs']} run(s):"
            f" setup {e['setup_s']:.2f}"
            f" + runs {e['run_s']:.2f} [{steps}]"
        )
    lines.append(
        f"backfill plain per-day work (read, sha256, parse, validate, write parquet): loop"
        f" {s['plain_loop']['work_s']:.2f}, 2-process pool {s['plain_pool2']['work_s']:.2f}"
    )
    return lines
