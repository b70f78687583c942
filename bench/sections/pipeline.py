"""Section "pipeline": ingest the 7 window days, then train / evaluate / gate / deploy for the last
day, at one size, several ways interleaved per repetition: the plain script, `dagster asset
materialize` (two commands: "cli"; the schedule's one command: "daily", then twice again on
unchanged data: "rerun", "rerun_again"), `dg.materialize` ("api"), Dagster's floor ("floor") and
the plain script's work as a Prefect 3 flow ("prefect"); whole-process wall time and peak RSS."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from projects import (
    END_DAY,
    FLOOR_DEFS,
    FOREST,
    PHASES,
    WINDOW,
    Workspace,
    days_ending,
    dispose,
    materialize,
    phase_text,
    production_metrics,
    production_version,
    rows_label,
    run_events,
    same_metrics,
    write_landing,
)
from scaffold import BENCH, PYTHON, ROOT, Row, log, verdict, verdict_if
from timing import interleaved, median, medians, run_measured

from ml_platform import constants
from sections.prefect import prefect_env

# Measured in this order per repetition; "rerun" and "rerun_again" right after "daily", on its project.
VARIANTS = ("plain", "cli", "daily", "api", "floor", "prefect")
RERUNS = ("rerun", "rerun_again")


@dataclass
class Size:
    """One size of the measure: its landing days, and what every variant's run needs."""

    ws: Workspace
    rows: int
    reps: int
    keep: bool
    prefect: Path | None  # the Prefect venv's interpreter, or None to leave the variant out
    label: str = ""
    days: list[str] = field(default_factory=list)
    landing: Path = Path()
    plain_metrics: dict[int, dict] = field(default_factory=dict)  # rep -> the plain script's metrics
    reruns: dict[str, list[dict]] = field(default_factory=lambda: {name: [] for name in RERUNS})


def bench_pipeline(ws: Workspace, rows: int, reps: int, keep: bool, prefect: Path | None = None) -> dict:
    """The pipeline's variants at one size, interleaved per repetition; ``prefect``: the Prefect
    venv's interpreter, or None to leave the Prefect variant out."""
    size = Size(ws, rows, reps, keep, prefect, rows_label(rows), days_ending(END_DAY, WINDOW))
    size.landing = ws.root / f"landing-{size.label}"
    log(f"pipeline {size.label}: writing {rows} rows over {len(size.days)} days to {size.landing}")
    write_landing(size.landing, rows, size.days)
    variants = [v for v in VARIANTS if v != "prefect" or prefect]
    # interleaved: plain, CLI, daily, API, floor, Prefect, plain, CLI, ...
    measured = interleaved(variants, reps, lambda variant, rep: measure_variant(size, variant, rep))
    order = ["plain", "cli", "daily", *RERUNS, "api", "floor", *(["prefect"] if prefect else [])]
    runs = {name: size.reruns[name] if name in RERUNS else measured[name] for name in order}
    dispose(size.landing, keep)
    return {"rows": rows, "days": size.days, "runs": runs, "summary": summarize_pipeline(runs)}


def measure_variant(size: Size, variant: str, rep: int) -> dict:
    """One variant's run in a fresh project: what it measured, and what it reported."""
    root, env = size.ws.project(f"{size.label}-{variant}-{rep}", size.landing)
    root.mkdir(exist_ok=True)
    logfile = root / "output.log"
    if variant == "prefect":
        env = prefect_env(size.ws, root, env, size.prefect)
    commands = variant_commands(size, variant, root, env, logfile)
    record = run_measured(commands, env, logfile)
    record.update(READERS[variant](size, rep, root, env))
    if variant == "daily":
        measure_reruns(size, rep, commands, env, logfile, record["wall_s"])
    log_variant(size, variant, rep, record)
    dispose(root, size.keep)
    return record


def variant_commands(size: Size, variant: str, root: Path, env: dict, logfile: Path) -> list[list[str]]:
    days = size.days
    if variant in ("plain", "prefect"):
        return [script_command(size, variant, root)]
    if variant == "cli":
        return [
            materialize("key:demo/raw_data", "--partition-range", f"{days[0]}...{days[-1]}"),
            materialize("key:demo/training_data+", "--partition", days[-1]),
        ]
    if variant == "daily":
        # The daily run (what the schedule starts): the earlier days were ingested by
        # earlier runs (untimed here); one command ingests the last day and retrains.
        prep = materialize("key:demo/raw_data", "--partition-range", f"{days[0]}...{days[-2]}")
        with open(logfile, "ab") as out:
            subprocess.run(prep, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=3600)
        return [materialize("*", "--partition", days[-1])]
    if variant == "api":
        api = [PYTHON, str(BENCH / "api_pipeline.py"), "--first", days[0], "--last", days[-1]]
        return [[*api, "--out", str(root / "api.json")]]
    # Dagster's own floor: the same command as the daily run on the same instance, over
    # five assets that do nothing (bench/floor_defs.py, the plain script's imports).
    return [materialize("*", "--partition", days[-1], defs=FLOOR_DEFS)]


def script_command(size: Size, variant: str, root: Path) -> list[str]:
    """The plain script, or its functions as the tasks of a Prefect flow (bench/prefect_pipeline.py,
    in Prefect's venv, with a PREFECT_HOME of its own): the same arguments."""
    python, script = (PYTHON, "plain_pipeline.py") if variant == "plain" else (str(size.prefect), "prefect_pipeline.py")
    return [
        python,
        str(BENCH / script),
        *("--landing", str(size.landing), "--days", ",".join(size.days), "--out", str(root / variant)),
        *("--target", constants.DEFAULT_TARGET_COLUMN, "--test-size", str(constants.DEFAULT_TEST_SIZE)),
        *("--random-state", str(constants.DEFAULT_RANDOM_STATE)),
        *("--n-estimators", str(FOREST.n_estimators), "--max-depth", str(FOREST.max_depth)),
        *("--n-jobs", str(FOREST.n_jobs)),
    ]


# -- what each variant reports beside its wall time and peak RSS ----------------------------------
def read_plain(size: Size, rep: int, root: Path, env: dict) -> dict:
    result = json.loads((root / "plain" / "result.json").read_text())
    size.plain_metrics[rep] = plain_metrics = result["metrics"]
    return {"phases_s": result["phases"], "metrics": {k: plain_metrics[k] for k in ("accuracy", "f1", "test_rows")}}


def read_prefect(size: Size, rep: int, root: Path, env: dict) -> dict:
    result = json.loads((root / "prefect" / "result.json").read_text())
    return {
        "phases_s": result["phases"],
        "same_metrics_as_plain": same_metrics(size.plain_metrics[rep], result["metrics"]),
        # The temporary API server is a process of its own: os.wait4's figure is the larger
        # of the two (the flow process's), not their sum; its own peak is kept beside it.
        "api_server_max_rss_mb": result["api_server_max_rss_mb"],
        "flow_process_max_rss_mb": result["flow_process_max_rss_mb"],
    }


def read_platform(size: Size, rep: int, root: Path, env: dict, last_run_only: bool = False) -> dict:
    runs = run_events(Path(env["DAGSTER_HOME"]))
    store = Path(env["ML_PLATFORM_MODEL_STORE_DIR"])
    return {
        "runs": runs[-1:] if last_run_only else runs,
        "same_metrics_as_plain": same_metrics(size.plain_metrics[rep], production_metrics(store)),
    }


def read_api(size: Size, rep: int, root: Path, env: dict) -> dict:
    return {**read_platform(size, rep, root, env), "phases_s": json.loads((root / "api.json").read_text())["phases"]}


READERS = {
    "plain": read_plain,
    "cli": read_platform,
    "daily": lambda size, rep, root, env: read_platform(size, rep, root, env, last_run_only=True),
    "api": read_api,
    "floor": lambda size, rep, root, env: {},
    "prefect": read_prefect,
}


def measure_reruns(size: Size, rep: int, commands: list[list[str]], env: dict, logfile: Path, daily_s: float) -> None:
    """The same command again on unchanged data (the schedule's retry, the landing sensor's
    retrain after a late file that changed nothing): trained_model reuses the stored version of
    the same recipe instead of fitting; production must stay where it was. Then once more: now
    model_metrics' inputs (the model, the test split, the production version) are unchanged too,
    so its stored score is reused as well."""
    store = Path(env["ML_PLATFORM_MODEL_STORE_DIR"])
    before = production_version(store)
    for name in RERUNS:
        again = {"rep": rep, **run_measured(commands, env, logfile)}
        again["same_version"] = before is not None and before == production_version(store)
        again["runs"] = run_events(Path(env["DAGSTER_HOME"]))[-1:]
        again["same_metrics_as_plain"] = same_metrics(size.plain_metrics[rep], production_metrics(store))
        size.reruns[name].append(again)
        log(
            f"pipeline {size.label} rep {rep}/{size.reps} {name.replace('_', ' ')}: {again['wall_s']:6.2f} s"
            f" ({again['wall_s'] / daily_s:.2f}x the daily run), same version:"
            f" {again['same_version']}"
        )


def log_variant(size: Size, variant: str, rep: int, record: dict) -> None:
    text = (
        f"pipeline {size.label} rep {rep}/{size.reps} {variant:>7}: {record['wall_s']:6.2f} s,"
        f" peak RSS {record['max_rss_mb']:6.0f} MB"
    )
    if variant not in ("plain", "floor"):
        text += f", same metrics as plain: {record['same_metrics_as_plain']}"
    if variant == "prefect":
        text += f" (its temporary API server: {record['api_server_max_rss_mb'] or 0:.0f} MB)"
    log(text)


# -- medians --------------------------------------------------------------------------------------
def summarize_pipeline(runs: dict[str, list[dict]]) -> dict:
    summary = {variant: summarize_variant(variant, records) for variant, records in runs.items()}
    if runs.get("prefect"):
        flows = runs["prefect"]
        summary["prefect"]["same_metrics_as_plain"] = all(r["same_metrics_as_plain"] for r in flows)
        summary["prefect"]["api_server_max_rss_mb"] = median([r["api_server_max_rss_mb"] for r in flows])
    for again in RERUNS:
        if runs.get(again):
            summary[again]["same_version"] = all(r["same_version"] for r in runs[again])
            summary[again]["of_daily"] = summary[again]["wall_s"] / summary["daily"]["wall_s"]
    add_ratios(summary)
    return summary


def summarize_variant(variant: str, records: list[dict]) -> dict:
    item = medians(records, ("wall_s", "max_rss_mb", "cpu_s"))
    if "phases_s" in records[0]:
        item["phases_s"] = {k: median([r["phases_s"].get(k) for r in records]) for k in records[0]["phases_s"]}
    if "runs" in records[0]:
        item["same_metrics_as_plain"] = all(r["same_metrics_as_plain"] for r in records)
        # Per run (ingest, train): the process, the run inside it, the steps inside the run.
        item["per_run"] = [summarize_run(variant, records, index) for index in range(len(records[0]["runs"]))]
    return item


def summarize_run(variant: str, records: list[dict], index: int) -> dict:
    runs = [r["runs"][index] for r in records]
    item = {"run_s": median([run["run_s"] for run in runs])}
    if variant in ("cli", "daily"):
        item.update(command_timeline(records, index))
    steps = runs[0]["steps_s"]
    item["steps_s"] = {k: median([run["steps_s"].get(k) for run in runs]) for k in steps}
    item["step_phases_s"] = {
        k: {phase: median([run["step_phases_s"].get(k, {}).get(phase) for run in runs]) for phase in PHASES}
        for k in steps
    }
    return item


def command_timeline(records: list[dict], index: int) -> dict:
    """The command's timeline: start -> run created (interpreter, imports, CLI, code location) ->
    run started (planning events, launch) -> run ended -> exit."""
    procs = [r["processes"][index] for r in records]
    runs = [r["runs"][index] for r in records]
    return {
        "process_s": median([p["wall_s"] for p in procs]),
        "process_max_rss_mb": median([p["max_rss_mb"] for p in procs]),
        "load_s": median([run["created_at"] - proc["started_at"] for run, proc in zip(runs, procs)]),
        "setup_s": median([run["start_at"] - run["created_at"] for run in runs]),
        "exit_s": median([proc["ended_at"] - run["end_at"] for run, proc in zip(runs, procs)]),
    }


def add_ratios(summary: dict) -> None:
    plain = summary["plain"]
    for variant in ("cli", "daily", "rerun", "rerun_again", "api", "floor", "prefect"):
        if variant in summary:
            summary[variant]["ratio"] = summary[variant]["wall_s"] / plain["wall_s"]
            summary[variant]["memory_ratio"] = summary[variant]["max_rss_mb"] / plain["max_rss_mb"]
    if "floor" in summary:
        # No pipeline doing the plain script's work through this command can take less than
        # Dagster's floor (imports included) + the plain script's work (its time minus its imports).
        work = plain["wall_s"] - plain["phases_s"]["imports"]
        bound = summary["floor"]["wall_s"] + work
        summary["lower_bound"] = {"wall_s": bound, "ratio": bound / plain["wall_s"], "plain_work_s": work}
    if "prefect" in summary:
        # The memory target: the daily run's peak RSS against the same work's as a Prefect flow.
        summary["daily_memory_vs_prefect"] = summary["daily"]["max_rss_mb"] / summary["prefect"]["max_rss_mb"]


# -- the table ------------------------------------------------------------------------------------
def table_rows(pipeline: dict) -> list[Row]:
    """Per size measured, its rows; then "not run" rows for the sizes with a target (10k, 1M)."""
    rows = [row for label, data in pipeline.items() for row in size_rows(label, data["summary"])]
    for label in ("10k", "1M"):
        if label not in pipeline:
            rows += not_run_rows(label)
    return rows


def size_rows(label: str, s: dict) -> list[Row]:
    plain, cli, daily, api = s["plain"], s["cli"], s["daily"], s["api"]
    ratio_key = {"10k": "cli_ratio_10k", "1M": "cli_ratio_1m"}.get(label)
    rows: list[Row] = [
        (
            f"pipeline {label} rows: plain scikit-learn script",
            f"{plain['wall_s']:.2f} s, {plain['max_rss_mb']:.0f} MB",
            "",
            "",
        ),
        (
            f"pipeline {label} rows: dagster asset materialize, fresh project, 2 commands (x plain)",
            f"{cli['wall_s']:.2f} s = {cli['ratio']:.2f}x",
            *verdict_if(ratio_key is not None, ratio_key, cli["ratio"]),
        ),
        (
            f"pipeline {label} rows: dagster asset materialize, daily run, 1 command (x plain)",
            f"{daily['wall_s']:.2f} s = {daily['ratio']:.2f}x",
            *verdict_if(ratio_key is not None, ratio_key, daily["ratio"]),
        ),
        *rerun_rows(label, s),
        (
            f"pipeline {label} rows: dagster asset materialize peak RSS",
            f"{cli['max_rss_mb']:.0f} MB = {cli['memory_ratio']:.2f}x",
            *verdict_if(label == "1M", "cli_memory_ratio_1m", cli["memory_ratio"]),
        ),
        *floor_rows(label, s, ratio_key),
        (
            f"pipeline {label} rows: dg.materialize (x plain)",
            f"{api['wall_s']:.2f} s = {api['ratio']:.2f}x, {api['max_rss_mb']:.0f} MB = {api['memory_ratio']:.2f}x",
            "-",
            "",
        ),
    ]
    if not (cli["same_metrics_as_plain"] and daily["same_metrics_as_plain"] and api["same_metrics_as_plain"]):
        rows.append((f"pipeline {label} rows: platform metrics == plain metrics", "NO", "equal", "NO"))
    return rows + prefect_rows(label, s)


def rerun_rows(label: str, s: dict) -> list[Row]:
    rows: list[Row] = []
    rerun, third = s.get("rerun"), s.get("rerun_again")
    if rerun:
        target, met = verdict_if(label == "1M", "rerun_ratio_1m", rerun["of_daily"])
        rows.append(
            (
                f"pipeline {label} rows: the daily run again, unchanged data (x the daily run)",
                f"{rerun['wall_s']:.2f} s = {rerun['of_daily']:.2f}x",
                target,
                met if rerun["same_version"] else "NO (production moved)",
            )
        )
    if third:
        rows.append(
            (
                f"pipeline {label} rows: and once more (the score reused too) (x the daily run)",
                f"{third['wall_s']:.2f} s = {third['of_daily']:.2f}x",
                "-",
                "" if third["same_version"] else "NO (production moved)",
            )
        )
    return rows


def floor_rows(label: str, s: dict, ratio_key: str | None) -> list[Row]:
    floor, bound = s.get("floor"), s.get("lower_bound")
    if not (floor and bound):
        return []
    return [
        (
            f"pipeline {label} rows: Dagster's floor, same command, 5 no-op assets (x plain)",
            f"{floor['wall_s']:.2f} s = {floor['ratio']:.2f}x",
            "-",
            "",
        ),
        (
            f"pipeline {label} rows: lower bound = floor + plain work {bound['plain_work_s']:.2f} s (x plain)",
            f"{bound['wall_s']:.2f} s = {bound['ratio']:.2f}x",
            *verdict_if(ratio_key is not None, ratio_key, bound["ratio"]),
        ),
    ]


def prefect_rows(label: str, s: dict) -> list[Row]:
    prefect, daily, floor = s.get("prefect"), s["daily"], s.get("floor")
    memory_key = "daily_memory_vs_prefect_1m"
    if not prefect:
        if label == "1M":
            what = "pipeline 1M rows: daily run peak RSS vs Prefect 3 flow's (daily / Prefect)"
            return [(what, "not run (--skip prefect)", *verdict(memory_key, None))]
        return [(f"pipeline {label} rows: Prefect 3 flow", "not run (--skip prefect)", "-", "")]
    server = prefect.get("api_server_max_rss_mb")
    rows: list[Row] = [
        (
            f"pipeline {label} rows: Prefect 3 flow, same work as tasks (x plain)",
            f"{prefect['wall_s']:.2f} s = {prefect['ratio']:.2f}x,"
            f" {prefect['max_rss_mb']:.0f} MB = {prefect['memory_ratio']:.2f}x"
            + (f" (its temporary API server, another process: {server:.0f} MB)" if server else ""),
            "-",
            "",
        )
    ]
    if not prefect["same_metrics_as_plain"]:
        rows.append((f"pipeline {label} rows: Prefect flow metrics == plain metrics", "NO", "equal", "NO"))
    ratio = s["daily_memory_vs_prefect"]
    rows.append(
        (
            f"pipeline {label} rows: daily run peak RSS vs Prefect 3 flow's (daily / Prefect)",
            f"{daily['max_rss_mb']:.0f} MB / {prefect['max_rss_mb']:.0f} MB = {ratio:.2f}x"
            + (f"; Dagster's floor {floor['max_rss_mb']:.0f} MB" if floor else ""),
            *verdict_if(label == "1M", memory_key, ratio),
        )
    )
    return rows


def not_run_rows(label: str) -> list[Row]:
    if label == "10k":
        return [("pipeline 10k rows: dagster asset materialize (x plain)", "not run", *verdict("cli_ratio_10k", None))]
    return [
        (
            "pipeline 1M rows: dagster asset materialize (x plain)",
            "not run (--sizes 10000,100000,1000000)",
            *verdict("cli_ratio_1m", None),
        ),
        ("pipeline 1M rows: dagster asset materialize peak RSS", "not run", *verdict("cli_memory_ratio_1m", None)),
        (
            "pipeline 1M rows: daily run peak RSS vs Prefect 3 flow's (daily / Prefect)",
            "not run",
            *verdict("daily_memory_vs_prefect_1m", None),
        ),
    ]


# -- where the time goes ----------------------------------------------------------------------------
def time_lines(pipeline: dict) -> list[str]:
    lines = []
    for label, data in pipeline.items():
        s = data["summary"]
        plain = s["plain"]["phases_s"]
        lines.append(
            f"pipeline {label}, plain script {s['plain']['wall_s']:.2f} s: "
            + ", ".join(f"{k} {v:.2f}" for k, v in plain.items())
        )
        commands = [*zip(("ingest", "train"), s["cli"]["per_run"]), ("daily", s["daily"]["per_run"][0])]
        lines += [command_line(label, name, run) for name, run in commands]
        api = s["api"]["phases_s"]
        lines.append(
            f"pipeline {label}, dg.materialize process {s['api']['wall_s']:.2f} s: "
            + ", ".join(f"{k} {v:.2f}" for k, v in api.items())
            + f", interpreter start + exit {s['api']['wall_s'] - sum(api.values()):.2f}"
        )
        if "prefect" in s:
            lines.append(prefect_line(label, s["prefect"]))
    return lines


def command_line(label: str, name: str, run: dict) -> str:
    steps = ", ".join(f"{k} {v:.2f} ({phase_text(run['step_phases_s'][k])})" for k, v in run["steps_s"].items())
    in_steps = sum(run["steps_s"].values())
    return (
        f"pipeline {label}, CLI {name} command {run['process_s']:.2f} s"
        f" (peak {run['process_max_rss_mb']:.0f} MB)"
        f" = start to run created {run['load_s']:.2f} (interpreter, imports, CLI, code location)"
        f" + run setup {run['setup_s']:.2f} + run {run['run_s']:.2f} + exit {run['exit_s']:.2f};"
        f" in the run: steps {in_steps:.2f} [{steps}], between steps {run['run_s'] - in_steps:.2f}"
    )


def prefect_line(label: str, prefect: dict) -> str:
    flow = prefect["phases_s"]
    return (
        f"pipeline {label}, Prefect flow process {prefect['wall_s']:.2f} s: "
        + ", ".join(f"{k} {v:.2f}" for k, v in flow.items())
        + " (the tasks as the plain script's phases; flow_other: the temporary server's"
        " start, the flow run and its states), interpreter start + exit (stopping"
        f" the server) {prefect['wall_s'] - sum(flow.values()):.2f}"
    )
