"""Section "contract": raw_data of the 7 window days (one range run: the ingest and the checks
step) with a 21-rule data contract declared, against the same run without one, interleaved per
repetition, each in a fresh project; whole-process wall time and peak RSS."""

from __future__ import annotations

from projects import (
    BENCH_PIPELINES,
    END_DAY,
    WINDOW,
    Workspace,
    days_ending,
    dispose,
    materialize,
    rows_label,
    write_landing,
)
from scaffold import Row, log, verdict, verdict_if
from timing import interleaved, medians, run_measured

# The 21 rules: 3 pipeline-wide (null share, rows a day, labels) + min and max of 8 features +
# the segment's allowed values + one column's own null share.
CONTRACT_PIPELINES = (
    BENCH_PIPELINES
    + """    quality:
      max_null_ratio: 0.1
      min_rows: 10
      target_missing: {max_ratio: 0.05}
      columns:
"""
    + "".join(f"        feature_{i:02d}: {{min: -1000, max: 1000}}\n" for i in range(8))
    + """\
        feature_08: {max_null_ratio: 0.2, severity: warn}
        segment: {allowed: [north, south, east, west]}
"""
)


def bench_contract(ws: Workspace, rows: int, reps: int, keep: bool) -> dict:
    """raw_data of the 7 window days (one range run: ingest + the checks step) with the 21-rule
    contract of CONTRACT_PIPELINES declared, and the same run without it, interleaved per repetition."""
    days = days_ending(END_DAY, WINDOW)
    landing = ws.root / f"landing-contract-{rows}"
    write_landing(landing, rows, days)
    declared = ws.root / "pipelines-contract.yaml"
    declared.write_text(CONTRACT_PIPELINES)
    command = materialize("key:demo/raw_data", "--partition-range", f"{days[0]}...{days[-1]}")

    def measure(name: str, rep: int) -> dict:
        extra = {"ML_PLATFORM_PIPELINES": str(declared)} if name == "with" else {}
        root, env = ws.project(f"contract-{name}-{rep}", landing, **extra)
        measured = run_measured([command], env, root / "output.log")
        log(
            f"contract {rows_label(rows)} rep {rep}/{reps} {name:>7} the contract: {measured['wall_s']:6.2f} s,"
            f" peak RSS {measured['max_rss_mb']:5.0f} MB"
        )
        dispose(root, keep)
        return measured

    runs = interleaved(("without", "with"), reps, measure)
    dispose(landing, keep)
    summary = {name: medians(records, ("wall_s", "max_rss_mb")) for name, records in runs.items()}
    summary["time_ratio"] = summary["with"]["wall_s"] / summary["without"]["wall_s"]
    summary["memory_ratio"] = summary["with"]["max_rss_mb"] / summary["without"]["max_rss_mb"]
    summary["per_rep_time_ratios"] = [w["wall_s"] / o["wall_s"] for w, o in zip(runs["with"], runs["without"])]
    return {"rows": rows, "rules": 21, "runs": runs, "summary": summary}


def table_rows(contract: dict | None) -> list[Row]:
    if not contract:
        return [
            ("raw_data 1M rows with a 21-rule contract (x without)", "not run", *verdict("contract_ratio_1m", None))
        ]
    s, label, rules = contract["summary"], rows_label(contract["rows"]), contract["rules"]
    return [
        (
            f"raw_data {label} rows, 7 days, one range run: no contract declared",
            f"{s['without']['wall_s']:.2f} s, {s['without']['max_rss_mb']:.0f} MB",
            "",
            "",
        ),
        (
            f"raw_data {label} rows with a {rules}-rule contract: time (x without)",
            f"{s['with']['wall_s']:.2f} s = {s['time_ratio']:.2f}x",
            *verdict_if(label == "1M", "contract_ratio_1m", s["time_ratio"]),
        ),
        (
            f"raw_data {label} rows with a {rules}-rule contract: peak RSS (x without)",
            f"{s['with']['max_rss_mb']:.0f} MB = {s['memory_ratio']:.2f}x",
            *verdict_if(label == "1M", "contract_memory_ratio_1m", s["memory_ratio"]),
        ),
    ]
