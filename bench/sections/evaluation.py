"""Section "evaluation": the daily run of the window's rows with a champion in production
(bench/evaluation_run.py), with the evaluation's extras (the do-nothing baseline, the bootstrap
intervals, the paired bootstrap against the champion, slices declared and gated, the worst
slices) and without them (switched off in that process, no slices declared), interleaved per
repetition, each in a fresh project."""

from __future__ import annotations

import json

from projects import END_DAY, WINDOW, Workspace, days_ending, dispose, rows_label, write_landing
from scaffold import BENCH, PYTHON, Row, log, verdict, verdict_if
from timing import interleaved, median, run_measured


def bench_evaluation(ws: Workspace, rows: int, reps: int, keep: bool) -> dict:
    """The daily run of `rows` window rows with a champion in production (bench/evaluation_run.py),
    with the do-nothing baseline, the bootstrap intervals, the paired bootstrap and slices (two
    declared, gated, and the worst slices), and the same run without them (switched off in that
    process, no slices declared), interleaved per repetition."""
    days = days_ending(END_DAY, WINDOW + 1)  # the champion's window, and the daily run's a day later
    landing = ws.root / f"landing-evaluation-{rows}"
    write_landing(landing, rows * (WINDOW + 1) // WINDOW, days)

    def measure(name: str, rep: int) -> dict:
        sliced = {"ML_PLATFORM_PIPELINES": str(ws.pipelines_sliced)} if name == "with" else {}
        root, env = ws.project(f"evaluation-{name}-{rep}", landing, **sliced)
        out = root / "phases.json"
        command = [PYTHON, str(BENCH / "evaluation_run.py"), "--first", days[0], "--champion-day", days[-2]]
        command += ["--day", days[-1], "--out", str(out)] + (["--plain"] if name == "without" else [])
        measured = run_measured([command], env, root / "output.log")
        phases = json.loads(out.read_text())
        log(
            f"evaluation {rows_label(rows)} rep {rep}/{reps} {name:>7} the extras: daily run"
            f" {phases['phases']['daily_run']:6.2f} s, peak RSS {measured['max_rss_mb']:5.0f} MB"
        )
        dispose(root, keep)
        return {**measured, **phases}

    runs = interleaved(("without", "with"), reps, measure)
    dispose(landing, keep)
    summary = {
        name: {
            "daily_run_s": median([r["phases"]["daily_run"] for r in records]),
            "max_rss_mb": median([r["max_rss_mb"] for r in records]),
        }
        for name, records in runs.items()
    }
    summary["time_ratio"] = summary["with"]["daily_run_s"] / summary["without"]["daily_run_s"]
    summary["memory_ratio"] = summary["with"]["max_rss_mb"] / summary["without"]["max_rss_mb"]
    return {"rows": rows, "runs": runs, "summary": summary}


def table_rows(evaluation: dict | None) -> list[Row]:
    if not evaluation:
        return [
            (
                "daily run with baseline + intervals + slices (x without)",
                "not run",
                *verdict("evaluation_ratio_1m", None),
            )
        ]
    s, label = evaluation["summary"], rows_label(evaluation["rows"])
    return [
        (
            f"daily run {label} rows, a champion in production: without baseline, intervals, slices",
            f"{s['without']['daily_run_s']:.2f} s, {s['without']['max_rss_mb']:.0f} MB",
            "",
            "",
        ),
        (
            f"daily run {label} rows with baseline, intervals, paired bootstrap, slices (x without)",
            f"{s['with']['daily_run_s']:.2f} s = {s['time_ratio']:.2f}x; {s['memory_ratio']:.2f}x RSS",
            *verdict_if(label == "1M", "evaluation_ratio_1m", s["time_ratio"]),
        ),
    ]
