"""`make bench`: ml_platform against the plain scikit-learn script, on this machine, in one run.

Measures (see bench/README.md):

- the pipeline (ingest the 7 window days, then train / evaluate / gate / deploy for the last day)
  on synthetic data (make_classification, 20 features + a categorical column, fixed seed) at each
  size of --sizes (rows per run, spread over 7 days), several ways, interleaved per repetition:
  the plain script, `dagster asset materialize` (two commands), and `dg.materialize` (a fresh
  process), and the plain script's work as a Prefect 3 flow (its own venv, bench/.prefect-venv);
  whole-process wall time and peak RSS of every process (os.wait4);
- a 30-day backfill of raw_data: one single-run range vs one run per day, on 2 CPUs and pinned
  to 1 CPU, plus a plain 2-process pool doing the same per-day work, as a reference;
- raw_data of the 7 window days (1M rows) with a 21-rule data contract declared, against the
  same range run without one (time, memory);
- one tick of the landing sensor over 1,000 files (time, memory);
- `dagster dev`: time to the first page and to a loaded code location;
- with --queued-backfill: a backfill of the whole training job in `dagster dev`, one run
  per day, 1 vs 2 runs at a time under the queued run coordinator.

Prints a table (measure, figure, target, met?) and writes every raw timing to
bench/results/<timestamp>.json. Never part of `make test`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

try:  # run with the project's interpreter (make bench does); re-exec into .venv otherwise
    import dagster  # noqa: F401

    import ml_platform  # noqa: F401
except ImportError:
    venv_python = ROOT / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.executable) != venv_python:
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.exit("bench: dagster / ml_platform are not installed: run `make bench` (installs the project)")

from ml_platform import constants  # noqa: E402
from ml_platform.estimators import RandomForestParams  # noqa: E402

PYTHON = sys.executable
BIN = Path(sys.executable).parent
DAGSTER = str(BIN / "dagster")
MODULE = "ml_platform.definitions"
END_DAY = "2026-01-07"  # a fixed day inside the daily partitions: results do not depend on today
WINDOW = constants.DEFAULT_WINDOW_DAYS
SEED = 0
SENSOR_PARTITIONS_START = "2020-01-01"  # so that 1,000 consecutive days are all partitions
# The Prefect variant's own venv (made once, kept; never a dependency of the project): Prefect 3
# with the project's versions of the packages that do the work, so that only the orchestrator differs.
PREFECT_VENV = BENCH / ".prefect-venv"
PREFECT_REQUIREMENT = "prefect>=3,<4"
PREFECT_PINNED = ("pandas", "pyarrow", "numpy", "scikit-learn", "scipy", "joblib")
# Prefect as a user gets it (the temporary local API server), without telemetry and with quiet
# console logs (the flow's logs still go to its API, as by default); PREFECT_HOME is set per project.
PREFECT_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
}

# The plain script's forest: random_forest's defaults (ml_platform.estimators), written once there.
FOREST = RandomForestParams()

BENCH_PIPELINES = f"""pipelines:
  - name: demo
    landing: .
    model_name: demo_classifier
    model:
      estimator: random_forest
      params: {{n_estimators: {FOREST.n_estimators}, max_depth: {FOREST.max_depth}}}
    gate: {{min_accuracy: {constants.DEFAULT_MIN_ACCURACY}}}
"""
# The same entry scored per slice (a category and a number) and gated on them: the evaluation
# measure's "with" run.
BENCH_PIPELINES_SLICED = BENCH_PIPELINES.replace(
    "    gate: {",
    "    evaluation: {slices: [segment, feature_00]}\n    gate: {slices: {min_support: 100, max_regression: 0.05}, ",
)

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

# The 21 rules of the contract section: 3 pipeline-wide (null share, rows a day, labels) + min and
# max of 8 features + the segment's allowed values + one column's own null share.
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


# -- small helpers ---------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def rows_label(rows: int) -> str:
    if rows >= 1_000_000 and rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows >= 1000 and rows % 1000 == 0:
        return f"{rows // 1000}k"
    return str(rows)


def days_ending(end_day: str, days: int) -> list[str]:
    end = dt.date.fromisoformat(end_day)
    return [(end - dt.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def clean_env() -> dict[str, str]:
    """The caller's environment without anything that would point the platform elsewhere."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ML_PLATFORM_", "DAGSTER_", "AWS_", "PREFECT_")) and k != "PYTHONPATH"
    }


class RunFailed(RuntimeError):
    pass


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


# -- data and projects -----------------------------------------------------------------------------
def write_landing(folder: Path, rows: int, days: list[str]) -> list[str]:
    """`rows` synthetic rows (ml_platform.demo.synthetic_frame: make_classification, 20 numeric
    features + a categorical column, seed SEED) spread evenly over `days`, one parquet per day."""
    import numpy as np

    from ml_platform.demo import synthetic_frame

    folder.mkdir(parents=True, exist_ok=True)
    whole = synthetic_frame(rows, SEED, constants.DEFAULT_TARGET_COLUMN)
    bounds = np.linspace(0, len(whole), len(days) + 1).round().astype(int)
    for day, start, stop in zip(days, bounds[:-1], bounds[1:]):
        whole.iloc[start:stop].reset_index(drop=True).to_parquet(folder / f"{day}.parquet", index=False)
    return days


class Workspace:
    """The temp folder of this run: a migrated template DAGSTER_HOME, landing folders, projects."""

    def __init__(self, root: Path):
        self.root = root
        self.template_home = root / "template_home"
        self.template_home.mkdir(parents=True)
        cores = os.cpu_count() or 2
        text = (ROOT / "deploy" / "dagster.local.yaml").read_text()
        (self.template_home / "dagster.yaml").write_text(text.replace("@MAX_CONCURRENT_RUNS@", str(cores)))
        # Migrated once, untimed; every project gets a copy (as `make instance` does once per home).
        subprocess.run(
            [DAGSTER, "instance", "migrate"],
            env={**clean_env(), "DAGSTER_HOME": str(self.template_home)},
            check=True,
            capture_output=True,
            timeout=300,
        )
        self.count = 0
        # One pipeline, the plain script's work: the demo entry of pipelines.yaml on the bench's data.
        self.pipelines = root / "pipelines.yaml"
        self.pipelines.write_text(BENCH_PIPELINES)
        self.pipelines_sliced = root / "pipelines-sliced.yaml"
        self.pipelines_sliced.write_text(BENCH_PIPELINES_SLICED)

    def project(self, name: str, landing: Path, **extra: str) -> tuple[Path, dict[str, str]]:
        self.count += 1
        root = self.root / f"{self.count:03d}-{name}"
        shutil.copytree(self.template_home, root / "dagster_home")
        env = {
            **clean_env(),
            "ML_PLATFORM_PIPELINES": str(self.pipelines),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "ML_PLATFORM_LANDING_DIR": str(landing),
            "ML_PLATFORM_MODEL_STORE_DIR": str(root / "model_store"),
            "ML_PLATFORM_ASSET_STORAGE_DIR": str(root / "assets"),
            **extra,
        }
        return root, env

    def prefect_env(self, root: Path, env: dict[str, str], python: Path) -> dict[str, str]:
        """The project's environment with a PREFECT_HOME of its own: a copy of a template in which
        one no-op flow ran once, untimed (its temporary server migrated the SQLite database and
        registered Prefect's block types), as on a machine where Prefect has run before; the
        Dagster template is migrated once the same way."""
        template = self.root / "template_prefect_home"
        if not template.exists():
            warm_up = "from prefect import flow\n\n@flow\ndef warm_up():\n    pass\n\nwarm_up()\n"
            done = subprocess.run(
                [str(python), "-c", warm_up],
                env={**clean_env(), **PREFECT_SETTINGS, "PREFECT_HOME": str(template)},
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode:
                output = (done.stdout + done.stderr)[-3000:]
                raise RunFailed(f"a first Prefect flow (untimed, to set up PREFECT_HOME) failed:\n{output}")
        shutil.copytree(template, root / "prefect_home")
        return {**env, **PREFECT_SETTINGS, "PREFECT_HOME": str(root / "prefect_home")}


def prefect_python() -> Path:
    """Prefect 3 in its own venv (made once, kept in bench/.prefect-venv; made again if broken or
    if the project's versions of the work's packages changed)."""
    from importlib.metadata import version

    pins = {name: version(name) for name in PREFECT_PINNED}
    python = PREFECT_VENV / "bin" / "python"
    probe = (
        "import json, prefect, pandas, pyarrow, numpy, sklearn, scipy, joblib\n"
        "from importlib.metadata import version\n"
        f"print(json.dumps({{n: version(n) for n in {list(PREFECT_PINNED)!r} + ['prefect']}}))"
    )
    if python.exists():
        check = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=300)
        try:
            found = json.loads(check.stdout) if check.returncode == 0 else {}
        except ValueError:
            found = {}
        if found and found["prefect"].startswith("3.") and all(found[n] == v for n, v in pins.items()):
            return python
    if PREFECT_VENV.is_symlink() or PREFECT_VENV.is_file():
        PREFECT_VENV.unlink()
    elif PREFECT_VENV.exists():
        shutil.rmtree(PREFECT_VENV)
    log(f"installing {PREFECT_REQUIREMENT} in {PREFECT_VENV} (its own venv; about a minute, once)")
    done = subprocess.run([sys.executable, "-m", "venv", str(PREFECT_VENV)], capture_output=True, text=True)
    if not done.returncode:
        done = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                PREFECT_REQUIREMENT,
                *(f"{name}=={v}" for name, v in pins.items()),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if done.returncode:
        raise RunFailed(f"installing {PREFECT_REQUIREMENT} in {PREFECT_VENV} failed:\n{done.stderr[-3000:]}")
    return python


def prefect_version(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import prefect; print(prefect.__version__)"], capture_output=True, text=True, timeout=300
    ).stdout.strip()


def run_events(home: Path) -> list[dict]:
    """Per run, from the instance's SQLite files: when it was created, started and ended, and per
    step its time and three phases read off the event log: inputs (start -> last input loaded),
    compute (-> first output) and outputs (-> success: IO manager writes, materialization events,
    and the rest of a step that yields several outputs)."""
    import sqlite3

    def stamp(text: str) -> float:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()

    runs = []
    with contextlib.closing(sqlite3.connect(home / "history" / "runs.db")) as db:
        rows = db.execute(
            "select run_id, status, create_timestamp, start_time, end_time from runs order by id"
        ).fetchall()
    for run_id, status, created, start, end in rows:
        marks: dict[str, dict[str, float]] = {}
        with contextlib.closing(sqlite3.connect(home / "history" / "runs" / f"{run_id}.db")) as db:
            events = db.execute(
                "select dagster_event_type, timestamp, step_key from event_logs where dagster_event_type in"
                " ('STEP_START', 'STEP_INPUT', 'STEP_OUTPUT', 'STEP_SUCCESS') order by id"
            ).fetchall()
        for kind, when, step in events:
            step_marks = marks.setdefault(step, {})
            if kind == "STEP_OUTPUT":
                step_marks.setdefault(kind, stamp(when))  # the first output
            else:
                step_marks[kind] = stamp(when)  # the last input
        steps, phases = {}, {}
        for step, m in marks.items():
            if "STEP_START" not in m or "STEP_SUCCESS" not in m:
                continue
            steps[step] = m["STEP_SUCCESS"] - m["STEP_START"]
            inputs_done = m.get("STEP_INPUT", m["STEP_START"])
            first_output = m.get("STEP_OUTPUT", m["STEP_SUCCESS"])
            phases[step] = {
                "inputs": inputs_done - m["STEP_START"],
                "compute": first_output - inputs_done,
                "outputs": m["STEP_SUCCESS"] - first_output,
            }
        runs.append(
            {
                "run_id": run_id,
                "status": status,
                "created_at": stamp(created),
                "start_at": start,
                "end_at": end,
                "run_s": (end - start) if start and end else None,
                "steps_s": steps,
                "step_phases_s": phases,
            }
        )
    return runs


def events_total(runs: list[dict]) -> dict:
    """Totals over several runs: run setup (created -> started), run time, step phases per step."""
    phases: dict[str, dict[str, float]] = {}
    for run in runs:
        for step, values in run["step_phases_s"].items():
            for phase, value in values.items():
                phases.setdefault(step, {}).setdefault(phase, 0.0)
                phases[step][phase] += value
    return {
        "runs": len(runs),
        "setup_s": sum(r["start_at"] - r["created_at"] for r in runs),
        "run_s": sum(r["run_s"] for r in runs),
        "step_phases_s": phases,
    }


def production_metrics(store: Path) -> dict | None:
    pointer = store / constants.DEFAULT_MODEL_NAME / constants.PRODUCTION_POINTER
    if not pointer.exists():
        return None
    version = json.loads(pointer.read_text())["version"]
    metadata = json.loads((store / constants.DEFAULT_MODEL_NAME / version / constants.METADATA_FILENAME).read_text())
    return metadata["metrics"]


def production_version(store: Path) -> str | None:
    pointer = store / "demo_classifier" / "production.json"
    return json.loads(pointer.read_text())["version"] if pointer.is_file() else None


def same_metrics(plain: dict, platform_metrics: dict | None) -> bool:
    if platform_metrics is None:
        return False
    keys = ("accuracy", "precision", "recall", "f1", "test_rows")
    return all(plain[k] == platform_metrics[k] for k in keys)


# -- the pipeline ----------------------------------------------------------------------------------
def bench_pipeline(ws: Workspace, rows: int, reps: int, keep: bool, prefect: Path | None = None) -> dict:
    """The pipeline's variants at one size, interleaved per repetition; ``prefect``: the Prefect
    venv's interpreter, or None to leave the Prefect variant out."""
    label = rows_label(rows)
    days = days_ending(END_DAY, WINDOW)
    landing = ws.root / f"landing-{label}"
    log(f"pipeline {label}: writing {rows} rows over {len(days)} days to {landing}")
    write_landing(landing, rows, days)
    runs: dict[str, list[dict]] = {
        "plain": [],
        "cli": [],
        "daily": [],
        "rerun": [],
        "rerun_again": [],
        "api": [],
        "floor": [],
    }
    if prefect:
        runs["prefect"] = []
    for rep in range(1, reps + 1):
        plain_metrics = None
        for variant in runs:  # interleaved: plain, CLI, daily, API, floor, Prefect, plain, CLI, ...
            if variant in ("rerun", "rerun_again"):
                continue  # measured right after "daily", on its project
            root, env = ws.project(f"{label}-{variant}-{rep}", landing)
            root.mkdir(exist_ok=True)
            logfile = root / "output.log"
            if variant in ("plain", "prefect"):
                # The same arguments: bench/prefect_pipeline.py runs plain_pipeline.py's functions
                # as the tasks of a Prefect flow, in Prefect's venv, with a PREFECT_HOME of its own.
                python, script = (
                    (PYTHON, "plain_pipeline.py") if variant == "plain" else (str(prefect), "prefect_pipeline.py")
                )
                if variant == "prefect":
                    env = ws.prefect_env(root, env, prefect)
                commands = [
                    [
                        python,
                        str(BENCH / script),
                        "--landing",
                        str(landing),
                        "--days",
                        ",".join(days),
                        "--out",
                        str(root / variant),
                        "--target",
                        constants.DEFAULT_TARGET_COLUMN,
                        "--test-size",
                        str(constants.DEFAULT_TEST_SIZE),
                        "--random-state",
                        str(constants.DEFAULT_RANDOM_STATE),
                        "--n-estimators",
                        str(FOREST.n_estimators),
                        "--max-depth",
                        str(FOREST.max_depth),
                        "--n-jobs",
                        str(FOREST.n_jobs),
                    ]
                ]
            elif variant == "cli":
                commands = [
                    [
                        DAGSTER,
                        "asset",
                        "materialize",
                        "-m",
                        MODULE,
                        "--select",
                        "key:demo/raw_data",
                        "--partition-range",
                        f"{days[0]}...{days[-1]}",
                    ],
                    [
                        DAGSTER,
                        "asset",
                        "materialize",
                        "-m",
                        MODULE,
                        "--select",
                        "key:demo/training_data+",
                        "--partition",
                        days[-1],
                    ],
                ]
            elif variant == "daily":
                # The daily run (what the schedule starts): the earlier days were ingested by
                # earlier runs (untimed here); one command ingests the last day and retrains.
                prep = [
                    DAGSTER,
                    "asset",
                    "materialize",
                    "-m",
                    MODULE,
                    "--select",
                    "key:demo/raw_data",
                    "--partition-range",
                    f"{days[0]}...{days[-2]}",
                ]
                with open(logfile, "ab") as out:
                    subprocess.run(
                        prep, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=3600
                    )
                commands = [[DAGSTER, "asset", "materialize", "-m", MODULE, "--select", "*", "--partition", days[-1]]]
            elif variant == "api":
                commands = [
                    [
                        PYTHON,
                        str(BENCH / "api_pipeline.py"),
                        "--first",
                        days[0],
                        "--last",
                        days[-1],
                        "--out",
                        str(root / "api.json"),
                    ]
                ]
            else:
                # Dagster's own floor: the same command as the daily run on the same instance, over
                # five assets that do nothing (bench/floor_defs.py, the plain script's imports).
                commands = [
                    [
                        DAGSTER,
                        "asset",
                        "materialize",
                        "-f",
                        str(BENCH / "floor_defs.py"),
                        "--select",
                        "*",
                        "--partition",
                        days[-1],
                    ]
                ]
            measured = run_measured(commands, env, logfile)
            record = {"rep": rep, **measured}
            if variant == "plain":
                result = json.loads((root / "plain" / "result.json").read_text())
                plain_metrics = result["metrics"]
                record["phases_s"] = result["phases"]
                record["metrics"] = {k: plain_metrics[k] for k in ("accuracy", "f1", "test_rows")}
            elif variant == "prefect":
                result = json.loads((root / "prefect" / "result.json").read_text())
                record["phases_s"] = result["phases"]
                record["same_metrics_as_plain"] = same_metrics(plain_metrics, result["metrics"])
                # The temporary API server is a process of its own: os.wait4's figure is the larger
                # of the two (the flow process's), not their sum; its own peak is kept beside it.
                record["api_server_max_rss_mb"] = result["api_server_max_rss_mb"]
                record["flow_process_max_rss_mb"] = result["flow_process_max_rss_mb"]
            elif variant != "floor":
                home = Path(env["DAGSTER_HOME"])
                record["runs"] = run_events(home)[-1:] if variant == "daily" else run_events(home)
                record["same_metrics_as_plain"] = same_metrics(
                    plain_metrics, production_metrics(Path(env["ML_PLATFORM_MODEL_STORE_DIR"]))
                )
                if variant == "api":
                    record["phases_s"] = json.loads((root / "api.json").read_text())["phases"]
            if variant == "daily":
                # The same command again on unchanged data (the schedule's retry, the landing sensor's
                # retrain after a late file that changed nothing): trained_model reuses the stored
                # version of the same recipe instead of fitting; production must stay where it was.
                # Then once more: now model_metrics' inputs (the model, the test split, the production
                # version) are unchanged too, so its stored score is reused as well.
                store = Path(env["ML_PLATFORM_MODEL_STORE_DIR"])
                before = production_version(store)
                for name in ("rerun", "rerun_again"):
                    again = {"rep": rep, **run_measured(commands, env, logfile)}
                    again["same_version"] = before is not None and before == production_version(store)
                    again["runs"] = run_events(Path(env["DAGSTER_HOME"]))[-1:]
                    again["same_metrics_as_plain"] = same_metrics(plain_metrics, production_metrics(store))
                    runs[name].append(again)
                    log(
                        f"pipeline {label} rep {rep}/{reps} {name.replace('_', ' ')}: {again['wall_s']:6.2f} s"
                        f" ({again['wall_s'] / record['wall_s']:.2f}x the daily run), same version:"
                        f" {again['same_version']}"
                    )
            runs[variant].append(record)
            log(
                f"pipeline {label} rep {rep}/{reps} {variant:>7}: {record['wall_s']:6.2f} s,"
                f" peak RSS {record['max_rss_mb']:6.0f} MB"
                + (
                    ""
                    if variant in ("plain", "floor")
                    else f", same metrics as plain: {record['same_metrics_as_plain']}"
                )
                + (
                    f" (its temporary API server: {record['api_server_max_rss_mb'] or 0:.0f} MB)"
                    if variant == "prefect"
                    else ""
                )
            )
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
    if not keep:
        shutil.rmtree(landing, ignore_errors=True)
    return {"rows": rows, "days": days, "runs": runs, "summary": summarize_pipeline(runs)}


def summarize_pipeline(runs: dict[str, list[dict]]) -> dict:
    summary = {}
    for variant, records in runs.items():
        summary[variant] = {
            "wall_s": median([r["wall_s"] for r in records]),
            "max_rss_mb": median([r["max_rss_mb"] for r in records]),
            "cpu_s": median([r["cpu_s"] for r in records]),
        }
        if "phases_s" in records[0]:
            summary[variant]["phases_s"] = {
                k: median([r["phases_s"].get(k) for r in records]) for k in records[0]["phases_s"]
            }
        if "runs" in records[0]:
            summary[variant]["same_metrics_as_plain"] = all(r["same_metrics_as_plain"] for r in records)
            # Per run (ingest, train): the process, the run inside it, the steps inside the run.
            per_run = []
            for index in range(len(records[0]["runs"])):
                item = {"run_s": median([r["runs"][index]["run_s"] for r in records])}
                if variant in ("cli", "daily"):
                    # The command's timeline: start -> run created (interpreter, imports, CLI, code
                    # location) -> run started (planning events, launch) -> run ended -> exit.
                    procs = [r["processes"][index] for r in records]
                    item["process_s"] = median([p["wall_s"] for p in procs])
                    item["process_max_rss_mb"] = median([p["max_rss_mb"] for p in procs])
                    item["load_s"] = median(
                        [r["runs"][index]["created_at"] - proc["started_at"] for r, proc in zip(records, procs)]
                    )
                    item["setup_s"] = median(
                        [r["runs"][index]["start_at"] - r["runs"][index]["created_at"] for r in records]
                    )
                    item["exit_s"] = median(
                        [r["processes"][index]["ended_at"] - r["runs"][index]["end_at"] for r in records]
                    )
                steps = records[0]["runs"][index]["steps_s"]
                item["steps_s"] = {k: median([r["runs"][index]["steps_s"].get(k) for r in records]) for k in steps}
                item["step_phases_s"] = {
                    k: {
                        phase: median([r["runs"][index]["step_phases_s"].get(k, {}).get(phase) for r in records])
                        for phase in ("inputs", "compute", "outputs")
                    }
                    for k in steps
                }
                per_run.append(item)
            summary[variant]["per_run"] = per_run
    if runs.get("prefect"):
        flows = runs["prefect"]
        summary["prefect"]["same_metrics_as_plain"] = all(r["same_metrics_as_plain"] for r in flows)
        summary["prefect"]["api_server_max_rss_mb"] = median([r["api_server_max_rss_mb"] for r in flows])
    for again in ("rerun", "rerun_again"):
        if runs.get(again):
            summary[again]["same_version"] = all(r["same_version"] for r in runs[again])
            summary[again]["of_daily"] = summary[again]["wall_s"] / summary["daily"]["wall_s"]
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
    return summary


# -- the 30-day backfill ---------------------------------------------------------------------------
def bench_backfill(ws: Workspace, days_count: int, rows_per_day: int, reps: int, keep: bool) -> dict:
    days = days_ending(END_DAY, days_count)
    landing = ws.root / "landing-backfill"
    log(f"backfill: writing {days_count} days x {rows_per_day} rows to {landing}")
    write_landing(landing, days_count * rows_per_day, days)
    cpu0 = {min(os.sched_getaffinity(0))}
    variants = [  # (name, mode, cpus)
        ("single_runs", "single", None),
        ("range_run", "range", None),
        ("range_run_1cpu", "range", cpu0),
        ("plain_loop", "plain-seq", None),
        ("plain_pool2", "plain-pool", None),
        ("floor_range", "floor", None),  # Dagster's own cost of a 30-day range run with no work
    ]
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    for rep in range(1, reps + 1):
        for name, mode, cpus in variants:
            root, env = ws.project(f"backfill-{name}-{rep}", landing)
            root.mkdir(exist_ok=True)
            result_file = root / "result.json"
            command = [
                PYTHON,
                str(BENCH / "backfill_work.py"),
                mode,
                "--landing",
                str(landing),
                "--days",
                ",".join(days),
                "--out",
                str(root / "plain_out"),
                "--result",
                str(result_file),
            ]
            measured = run_measured([command], env, root / "output.log", cpus=cpus)
            record = {"rep": rep, **measured, **json.loads(result_file.read_text())}
            if not mode.startswith("plain"):
                if record.get("materialized_days") != days_count:
                    done = record.get("materialized_days")
                    raise RunFailed(f"backfill {name}: {done} of {days_count} days materialized")
                if mode != "floor":
                    record["events"] = events_total(run_events(Path(env["DAGSTER_HOME"])))
            runs[name].append(record)
            log(
                f"backfill rep {rep}/{reps} {name:>15}: work {record['work_s']:6.2f} s"
                f" (process {record['wall_s']:6.2f} s, peak RSS {record['max_rss_mb']:5.0f} MB)"
            )
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
    if not keep:
        shutil.rmtree(landing, ignore_errors=True)
    summary = {
        name: {
            "work_s": median([r["work_s"] for r in records]),
            "wall_s": median([r["wall_s"] for r in records]),
            "max_rss_mb": median([r["max_rss_mb"] for r in records]),
        }
        for name, records in runs.items()
    }
    for name, records in runs.items():
        if "events" in records[0]:
            first = records[0]["events"]
            summary[name]["events"] = {
                "runs": first["runs"],
                "setup_s": median([r["events"]["setup_s"] for r in records]),
                "run_s": median([r["events"]["run_s"] for r in records]),
                "step_phases_s": {
                    step: {
                        phase: median([r["events"]["step_phases_s"][step][phase] for r in records]) for phase in phases
                    }
                    for step, phases in first["step_phases_s"].items()
                },
            }
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
    return {"days": days_count, "rows_per_day": rows_per_day, "runs": runs, "summary": summary}


# -- the data contract -----------------------------------------------------------------------------
def bench_contract(ws: Workspace, rows: int, reps: int, keep: bool) -> dict:
    """raw_data of the 7 window days (one range run: ingest + the checks step) with the 21-rule
    contract of CONTRACT_PIPELINES declared, and the same run without it, interleaved per repetition."""
    days = days_ending(END_DAY, WINDOW)
    landing = ws.root / f"landing-contract-{rows}"
    write_landing(landing, rows, days)
    declared = ws.root / "pipelines-contract.yaml"
    declared.write_text(CONTRACT_PIPELINES)
    command = [
        DAGSTER,
        "asset",
        "materialize",
        "-m",
        MODULE,
        "--select",
        "key:demo/raw_data",
        "--partition-range",
        f"{days[0]}...{days[-1]}",
    ]
    runs: dict[str, list[dict]] = {"without": [], "with": []}
    for rep in range(1, reps + 1):
        for name in runs:
            extra = {"ML_PLATFORM_PIPELINES": str(declared)} if name == "with" else {}
            root, env = ws.project(f"contract-{name}-{rep}", landing, **extra)
            measured = run_measured([command], env, root / "output.log")
            runs[name].append({"rep": rep, **measured})
            log(
                f"contract {rows_label(rows)} rep {rep}/{reps} {name:>7} the contract: {measured['wall_s']:6.2f} s,"
                f" peak RSS {measured['max_rss_mb']:5.0f} MB"
            )
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
    if not keep:
        shutil.rmtree(landing, ignore_errors=True)
    summary = {
        name: {
            "wall_s": median([r["wall_s"] for r in records]),
            "max_rss_mb": median([r["max_rss_mb"] for r in records]),
        }
        for name, records in runs.items()
    }
    summary["time_ratio"] = summary["with"]["wall_s"] / summary["without"]["wall_s"]
    summary["memory_ratio"] = summary["with"]["max_rss_mb"] / summary["without"]["max_rss_mb"]
    summary["per_rep_time_ratios"] = [w["wall_s"] / o["wall_s"] for w, o in zip(runs["with"], runs["without"])]
    return {"rows": rows, "rules": 21, "runs": runs, "summary": summary}


# -- the evaluation's extras ------------------------------------------------------------------------
def bench_evaluation(ws: Workspace, rows: int, reps: int, keep: bool) -> dict:
    """The daily run of `rows` window rows with a champion in production (bench/evaluation_run.py),
    with the do-nothing baseline, the bootstrap intervals, the paired bootstrap and slices (two
    declared, gated, and the worst slices), and the same run without them (switched off in that
    process, no slices declared), interleaved per repetition."""
    days = days_ending(END_DAY, WINDOW + 1)  # the champion's window, and the daily run's a day later
    landing = ws.root / f"landing-evaluation-{rows}"
    write_landing(landing, rows * (WINDOW + 1) // WINDOW, days)
    runs: dict[str, list[dict]] = {"without": [], "with": []}
    for rep in range(1, reps + 1):
        for name in runs:
            sliced = {"ML_PLATFORM_PIPELINES": str(ws.pipelines_sliced)} if name == "with" else {}
            root, env = ws.project(f"evaluation-{name}-{rep}", landing, **sliced)
            out = root / "phases.json"
            command = [PYTHON, str(BENCH / "evaluation_run.py"), "--first", days[0], "--champion-day", days[-2]]
            command += ["--day", days[-1], "--out", str(out)] + (["--plain"] if name == "without" else [])
            measured = run_measured([command], env, root / "output.log")
            phases = json.loads(out.read_text())
            runs[name].append({"rep": rep, **measured, **phases})
            log(
                f"evaluation {rows_label(rows)} rep {rep}/{reps} {name:>7} the extras: daily run"
                f" {phases['phases']['daily_run']:6.2f} s, peak RSS {measured['max_rss_mb']:5.0f} MB"
            )
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
    if not keep:
        shutil.rmtree(landing, ignore_errors=True)
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


# -- the landing sensor ----------------------------------------------------------------------------
def bench_sensor(ws: Workspace, files: int, reps: int, keep: bool) -> dict:
    import pandas as pd

    landing = ws.root / "landing-sensor"
    landing.mkdir()
    tiny = pd.DataFrame(
        {
            "feature_00": [0.1, 0.2, 0.3],
            "segment": ["north", "south", "east"],
            constants.DEFAULT_TARGET_COLUMN: [0, 1, 0],
        }
    )
    tiny.to_parquet(landing / "tiny.parquet", index=False)
    data = (landing / "tiny.parquet").read_bytes()
    (landing / "tiny.parquet").unlink()
    start = dt.date.fromisoformat(SENSOR_PARTITIONS_START)
    for n in range(files):
        (landing / f"{(start + dt.timedelta(days=n)).isoformat()}.parquet").write_bytes(data)
    runs = []
    for rep in range(1, reps + 1):
        root, env = ws.project(f"sensor-{rep}", landing, ML_PLATFORM_PARTITIONS_START=SENSOR_PARTITIONS_START)
        root.mkdir(exist_ok=True)
        command = [
            PYTHON,
            str(BENCH / "sensor_tick.py"),
            "--landing",
            str(landing),
            "--result",
            str(root / "result.json"),
        ]
        measured = run_measured([command], env, root / "output.log")
        record = {"rep": rep, **measured, **json.loads((root / "result.json").read_text())}
        first = record["ticks"][0]
        if first["ingest_requests"] != files:
            raise RunFailed(f"sensor tick 1: {first['ingest_requests']} ingest requests for {files} files")
        runs.append(record)
        log(
            f"sensor rep {rep}/{reps}: tick 1 {first['seconds']:.3f} s, +{first['delta_mb']:.1f} MB"
            f" ({first['run_requests']} run requests); tick 2 {record['ticks'][1]['seconds']:.3f} s;"
            f" process peak RSS {record['max_rss_mb']:.0f} MB"
        )
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    if not keep:
        shutil.rmtree(landing, ignore_errors=True)
    summary = {
        f"tick{n}_{k}": median([r["ticks"][n - 1][k] for r in runs])
        for n in (1, 2)
        for k in ("seconds", "delta_mb", "peak_mb")
    }
    summary["process_max_rss_mb"] = median([r["max_rss_mb"] for r in runs])
    summary["rss_before_ticks_mb"] = median([r["rss_before_ticks_mb"] for r in runs])
    summary["peak_exact"] = all(t["peak_exact"] for r in runs for t in r["ticks"])
    return {"files": files, "runs": runs, "summary": summary}


# -- dagster dev -----------------------------------------------------------------------------------
WORKSPACE_STATUS = (
    "{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus"
    " locationOrLoadError { __typename } } } } }"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, body: bytes | None = None, timeout: float = 5) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def _group_rss_mb(pgid: int) -> float:
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


@contextlib.contextmanager
def dev_server(root: Path, env: dict[str, str]):
    """`dagster dev` on a free port of 127.0.0.1, in its own process group; yields the record of
    its start (time to the first page, to a loaded code location) and its URL; stopped by
    SIGTERM to the group (SIGKILL after 30 s)."""
    port = _free_port()
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
        deadline = started + 240
        while "first_page_s" not in record or "location_loaded_s" not in record:
            if proc.poll() is not None:
                raise RunFailed(f"dagster dev exited: {(root / 'dagster_dev.log').read_text()[-3000:]}")
            if time.perf_counter() > deadline:
                raise RunFailed("dagster dev did not serve a loaded code location within 240 s")
            try:
                if "first_page_s" not in record:
                    status, _ = _get(url + "/")
                    if status == 200:
                        record["first_page_s"] = time.perf_counter() - started
                        continue
                else:
                    entries = graphql(url, WORKSPACE_STATUS)["workspaceOrError"].get("locationEntries") or []
                    if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                        kinds = {e["locationOrLoadError"]["__typename"] for e in entries}
                        if kinds != {"RepositoryLocation"}:
                            raise RunFailed(f"the code location failed to load: {kinds}")
                        record["location_loaded_s"] = time.perf_counter() - started
                        record["process_group_rss_mb"] = _group_rss_mb(proc.pid)
                        record["location_name"] = entries[0]["name"]
                        continue
            except (urllib.error.URLError, ConnectionError, OSError, KeyError, ValueError):
                pass
            time.sleep(0.05)
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


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    payload = json.dumps({"query": query, "variables": variables or {}}).encode()
    _, body = _get(url + "/graphql", payload, timeout=120)
    answer = json.loads(body)
    if answer.get("errors"):
        raise RunFailed(f"GraphQL error: {answer['errors']}")
    return answer["data"]


def bench_dev(ws: Workspace, landing: Path, reps: int, keep: bool) -> dict:
    runs = []
    for rep in range(1, reps + 1):
        root, env = ws.project(f"dev-{rep}", landing)
        root.mkdir(exist_ok=True)
        with dev_server(root, env) as record:
            pass
        record = {"rep": rep, **record}
        runs.append(record)
        log(
            f"dagster dev rep {rep}/{reps}: first page {record['first_page_s']:.2f} s, code location loaded"
            f" {record['location_loaded_s']:.2f} s, {record['process_group_rss_mb']:.0f} MB in its processes"
        )
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    summary = {
        k: median([r[k] for r in runs]) for k in ("first_page_s", "location_loaded_s", "process_group_rss_mb", "stop_s")
    }
    return {"runs": runs, "summary": summary}


# -- the queued backfill (opt-in) ------------------------------------------------------------------
LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""
_DONE = ("SUCCESS", "FAILURE", "CANCELED")


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

    def stamp(text: str) -> float:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()

    return [(status, stamp(created), start, end) for status, created, start, end in rows]


def bench_queued(ws: Workspace, days_count: int, rows_per_day: int, reps: int, keep: bool) -> dict:
    """A backfill of the whole training job (one run per day: ingest the day, train on its
    window, evaluate, gate, deploy), launched in `dagster dev` as the UI does; the queued run
    coordinator runs max_concurrent_runs of them at once, each in its own process."""
    days = days_ending(END_DAY, days_count)
    landing = ws.root / "landing-queued"
    log(f"queued backfill: writing {days_count} days x {rows_per_day} rows to {landing}")
    write_landing(landing, days_count * rows_per_day, days)
    runs: dict[str, list[dict]] = {"concurrent_1": [], "concurrent_2": []}
    for rep in range(1, reps + 1):
        for concurrency in (1, 2):
            name = f"concurrent_{concurrency}"
            root, env = ws.project(f"queued-{name}-{rep}", landing)
            config = (ROOT / "deploy" / "dagster.local.yaml").read_text()
            (root / "dagster_home" / "dagster.yaml").write_text(
                config.replace("@MAX_CONCURRENT_RUNS@", str(concurrency))
            )
            home = root / "dagster_home"
            with dev_server(root, env) as server:
                repository = {"repositoryLocationName": server["location_name"], "repositoryName": "__repository__"}
                params = {
                    "selector": {"partitionSetName": "demo_training_partition_set", "repositorySelector": repository},
                    "partitionNames": days,
                }
                launched_at = time.time()
                answer = graphql(server["url"], LAUNCH_BACKFILL, {"params": params})
                answer = answer["launchPartitionBackfill"]
                if answer["__typename"] != "LaunchBackfillSuccess":
                    raise RunFailed(f"launching the backfill failed: {answer}")
                deadline = time.perf_counter() + 60 * days_count
                while True:
                    rows = backfill_runs(home, answer["backfillId"])
                    if len(rows) == days_count and all(row[0] in _DONE for row in rows):
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
            # From the first run created (queued) to the last run ended: queueing, a process per run
            # (interpreter, imports, code location), the runs. Launch to done adds the backfill
            # daemon's pickup and the polling.
            first_created = min(row[1] for row in rows)
            last_end = max(row[3] for row in rows)
            record = {
                "rep": rep,
                "concurrency": concurrency,
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
            runs[name].append(record)
            log(
                f"queued backfill rep {rep}/{reps}, {concurrency} at a time: {record['runs']} runs,"
                f" first created to last end {record['created_to_last_end_s']:.1f} s,"
                f" launch to done {record['launch_to_done_s']:.1f} s"
            )
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
    if not keep:
        shutil.rmtree(landing, ignore_errors=True)
    summary = {
        name: {
            k: median([r[k] for r in records])
            for k in ("launch_to_done_s", "created_to_last_end_s", "first_start_to_last_end_s", "run_s_mean")
        }
        for name, records in runs.items()
    }
    summary["speedup_2_vs_1"] = (
        summary["concurrent_1"]["created_to_last_end_s"] / summary["concurrent_2"]["created_to_last_end_s"]
    )
    return {"days": days_count, "rows_per_day": rows_per_day, "runs": runs, "summary": summary}


# -- imports ---------------------------------------------------------------------------------------
def bench_imports(ws: Workspace, reps: int) -> dict:
    runs = []
    for rep in range(1, reps + 1):
        root, env = ws.project(f"imports-{rep}", ws.root / "no-landing")
        root.mkdir(exist_ok=True)
        out = root / "imports.json"
        with open(out, "wb") as handle:
            started = time.perf_counter()
            subprocess.run([PYTHON, str(BENCH / "import_cost.py")], env=env, cwd=ROOT, stdout=handle, check=True)
            wall = time.perf_counter() - started
        runs.append({"rep": rep, "process_wall_s": wall, **json.loads(out.read_text())})
        shutil.rmtree(root, ignore_errors=True)
    summary = {k: median([r[k] for r in runs]) for k in runs[0] if k != "rep"}
    log("imports: " + ", ".join(f"{k} {v:.2f} s" for k, v in summary.items()))
    return {"runs": runs, "summary": summary}


# -- the table -------------------------------------------------------------------------------------
def verdict(key: str, figure: float | None) -> tuple[str, str]:
    kind, limit = TARGETS[key]
    unit = "x" if "ratio" in key or "speedup" in key or "_vs_" in key else (" s" if "seconds" in key else " MB")
    target = f"{'<=' if kind == 'max' else '>='} {limit:g}{unit}"
    if figure is None:
        return target, "not measured"
    ok = figure <= limit if kind == "max" else figure >= limit
    return target, "yes" if ok else "NO"


def build_table(results: dict) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    pipeline = results.get("pipeline", {})
    for label, data in pipeline.items():
        s = data["summary"]
        plain, cli, daily, api = s["plain"], s["cli"], s["daily"], s["api"]
        rows.append(
            (
                f"pipeline {label} rows: plain scikit-learn script",
                f"{plain['wall_s']:.2f} s, {plain['max_rss_mb']:.0f} MB",
                "",
                "",
            )
        )
        ratio_key = {"10k": "cli_ratio_10k", "1M": "cli_ratio_1m"}.get(label)
        target, met = verdict(ratio_key, cli["ratio"]) if ratio_key else ("-", "")
        rows.append(
            (
                f"pipeline {label} rows: dagster asset materialize, fresh project, 2 commands (x plain)",
                f"{cli['wall_s']:.2f} s = {cli['ratio']:.2f}x",
                target,
                met,
            )
        )
        target, met = verdict(ratio_key, daily["ratio"]) if ratio_key else ("-", "")
        rows.append(
            (
                f"pipeline {label} rows: dagster asset materialize, daily run, 1 command (x plain)",
                f"{daily['wall_s']:.2f} s = {daily['ratio']:.2f}x",
                target,
                met,
            )
        )
        rerun = s.get("rerun")
        if rerun:
            target, met = verdict("rerun_ratio_1m", rerun["of_daily"]) if label == "1M" else ("-", "")
            if not rerun["same_version"]:
                met = "NO (production moved)"
            rows.append(
                (
                    f"pipeline {label} rows: the daily run again, unchanged data (x the daily run)",
                    f"{rerun['wall_s']:.2f} s = {rerun['of_daily']:.2f}x",
                    target,
                    met,
                )
            )
        third = s.get("rerun_again")
        if third:
            rows.append(
                (
                    f"pipeline {label} rows: and once more (the score reused too) (x the daily run)",
                    f"{third['wall_s']:.2f} s = {third['of_daily']:.2f}x",
                    "-",
                    "" if third["same_version"] else "NO (production moved)",
                )
            )
        if label == "1M":
            target, met = verdict("cli_memory_ratio_1m", cli["memory_ratio"])
        else:
            target, met = "-", ""
        rows.append(
            (
                f"pipeline {label} rows: dagster asset materialize peak RSS",
                f"{cli['max_rss_mb']:.0f} MB = {cli['memory_ratio']:.2f}x",
                target,
                met,
            )
        )
        floor, bound = s.get("floor"), s.get("lower_bound")
        if floor and bound:
            rows.append(
                (
                    f"pipeline {label} rows: Dagster's floor, same command, 5 no-op assets (x plain)",
                    f"{floor['wall_s']:.2f} s = {floor['ratio']:.2f}x",
                    "-",
                    "",
                )
            )
            rows.append(
                (
                    f"pipeline {label} rows: lower bound = floor + plain work {bound['plain_work_s']:.2f} s (x plain)",
                    f"{bound['wall_s']:.2f} s = {bound['ratio']:.2f}x",
                    *(verdict(ratio_key, bound["ratio"]) if ratio_key else ("-", "")),
                )
            )
        rows.append(
            (
                f"pipeline {label} rows: dg.materialize (x plain)",
                f"{api['wall_s']:.2f} s = {api['ratio']:.2f}x, {api['max_rss_mb']:.0f} MB = {api['memory_ratio']:.2f}x",
                "-",
                "",
            )
        )
        if not (cli["same_metrics_as_plain"] and daily["same_metrics_as_plain"] and api["same_metrics_as_plain"]):
            rows.append((f"pipeline {label} rows: platform metrics == plain metrics", "NO", "equal", "NO"))
        prefect = s.get("prefect")
        memory_key = "daily_memory_vs_prefect_1m"
        if prefect:
            server = prefect.get("api_server_max_rss_mb")
            rows.append(
                (
                    f"pipeline {label} rows: Prefect 3 flow, same work as tasks (x plain)",
                    f"{prefect['wall_s']:.2f} s = {prefect['ratio']:.2f}x,"
                    f" {prefect['max_rss_mb']:.0f} MB = {prefect['memory_ratio']:.2f}x"
                    + (f" (its temporary API server, another process: {server:.0f} MB)" if server else ""),
                    "-",
                    "",
                )
            )
            if not prefect["same_metrics_as_plain"]:
                rows.append((f"pipeline {label} rows: Prefect flow metrics == plain metrics", "NO", "equal", "NO"))
            ratio = s["daily_memory_vs_prefect"]
            target, met = verdict(memory_key, ratio) if label == "1M" else ("-", "")
            rows.append(
                (
                    f"pipeline {label} rows: daily run peak RSS vs Prefect 3 flow's (daily / Prefect)",
                    f"{daily['max_rss_mb']:.0f} MB / {prefect['max_rss_mb']:.0f} MB = {ratio:.2f}x"
                    + (f"; Dagster's floor {floor['max_rss_mb']:.0f} MB" if floor else ""),
                    target,
                    met,
                )
            )
        elif label == "1M":
            rows.append(
                (
                    "pipeline 1M rows: daily run peak RSS vs Prefect 3 flow's (daily / Prefect)",
                    "not run (--skip prefect)",
                    *verdict(memory_key, None),
                )
            )
        else:
            rows.append((f"pipeline {label} rows: Prefect 3 flow", "not run (--skip prefect)", "-", ""))
    for label in ("10k", "1M"):
        if label not in pipeline:
            hint = "" if label == "10k" else " (--sizes 10000,100000,1000000)"
            rows.append(
                (
                    f"pipeline {label} rows: dagster asset materialize (x plain)",
                    "not run" + hint,
                    *verdict("cli_ratio_10k" if label == "10k" else "cli_ratio_1m", None),
                )
            )
            if label == "1M":
                rows.append(
                    (
                        "pipeline 1M rows: dagster asset materialize peak RSS",
                        "not run",
                        *verdict("cli_memory_ratio_1m", None),
                    )
                )
                rows.append(
                    (
                        "pipeline 1M rows: daily run peak RSS vs Prefect 3 flow's (daily / Prefect)",
                        "not run",
                        *verdict("daily_memory_vs_prefect_1m", None),
                    )
                )
    backfill = results.get("backfill")
    if backfill:
        s = backfill["summary"]
        n, per_day = backfill["days"], rows_label(backfill["rows_per_day"])
        rows.append(
            (
                f"backfill {n} days x {per_day} rows: {n} single-day runs in sequence",
                f"{s['single_runs']['work_s']:.2f} s",
                "",
                "",
            )
        )
        rows.append(
            (
                f"backfill {n} days x {per_day} rows: one range run (--partition-range)",
                f"{s['range_run']['work_s']:.2f} s",
                "",
                "",
            )
        )
        rows.append(
            (
                "backfill speedup: range run vs single-day runs",
                f"{s['speedup_range_vs_single_runs']:.2f}x",
                *verdict("backfill_speedup", s["speedup_range_vs_single_runs"]),
            )
        )
        rows.append(
            (
                "backfill speedup from the 2nd core (range run, 1 vs 2 CPUs)",
                f"{s['speedup_range_2cpu_vs_1cpu']:.2f}x",
                *verdict("backfill_speedup", s["speedup_range_2cpu_vs_1cpu"]),
            )
        )
        # The same bar for the plain reference: what 2 cores can give this per-day work at all.
        rows.append(
            (
                "backfill reference: plain per-day work, 2-process pool vs loop",
                f"{s['speedup_plain_pool2_vs_loop']:.2f}x",
                *verdict("backfill_speedup", s["speedup_plain_pool2_vs_loop"]),
            )
        )
        rows.append(
            (
                "backfill range run vs plain 2-process pool (same per-day work)",
                f"{s['range_vs_plain_pool2']:.2f}x",
                *verdict("backfill_vs_pool", s["range_vs_plain_pool2"]),
            )
        )
        rows.append(
            (
                f"backfill Dagster's floor: range run of {n} days doing no work",
                f"{s['floor_range']['work_s']:.2f} s",
                "-",
                "",
            )
        )
        rows.append(
            (
                "backfill lower bound = floor + plain pool work (x plain pool)",
                f"{s['lower_bound_vs_plain_pool2']:.2f}x",
                *verdict("backfill_vs_pool", s["lower_bound_vs_plain_pool2"]),
            )
        )
        rows.append(
            (
                f"backfill range run vs that lower bound (floor + pool), {s.get('cores', '?')} cores",
                f"{s['range_run']['work_s']:.2f} s / {s['floor_range']['work_s'] + s['plain_pool2']['work_s']:.2f} s"
                f" = {s['range_vs_floor_plus_pool2']:.2f}x",
                *verdict("backfill_vs_floor_plus_pool", s["range_vs_floor_plus_pool2"]),
            )
        )
    else:
        rows.append(("backfill speedup", "not run", *verdict("backfill_speedup", None)))
    queued = results.get("queued")
    if queued:
        s = queued["summary"]
        n = queued["days"]
        for k in (1, 2):
            rows.append(
                (
                    f"queued backfill: {n} training runs, {k} at a time",
                    f"{s[f'concurrent_{k}']['created_to_last_end_s']:.1f} s",
                    "",
                    "",
                )
            )
        rows.append(
            (
                "queued backfill speedup, 2 runs at a time vs 1",
                f"{s['speedup_2_vs_1']:.2f}x",
                *verdict("backfill_speedup", s["speedup_2_vs_1"]),
            )
        )
    contract = results.get("contract")
    if contract:
        s, label = contract["summary"], rows_label(contract["rows"])
        keys = ("contract_ratio_1m", "contract_memory_ratio_1m") if label == "1M" else (None, None)
        rows.append(
            (
                f"raw_data {label} rows, 7 days, one range run: no contract declared",
                f"{s['without']['wall_s']:.2f} s, {s['without']['max_rss_mb']:.0f} MB",
                "",
                "",
            )
        )
        rows.append(
            (
                f"raw_data {label} rows with a {contract['rules']}-rule contract: time (x without)",
                f"{s['with']['wall_s']:.2f} s = {s['time_ratio']:.2f}x",
                *(verdict(keys[0], s["time_ratio"]) if keys[0] else ("-", "")),
            )
        )
        rows.append(
            (
                f"raw_data {label} rows with a {contract['rules']}-rule contract: peak RSS (x without)",
                f"{s['with']['max_rss_mb']:.0f} MB = {s['memory_ratio']:.2f}x",
                *(verdict(keys[1], s["memory_ratio"]) if keys[1] else ("-", "")),
            )
        )
    else:
        rows.append(
            ("raw_data 1M rows with a 21-rule contract (x without)", "not run", *verdict("contract_ratio_1m", None))
        )
    rows += _evaluation_rows(results.get("evaluation"))
    sensor = results.get("sensor")
    if sensor:
        s = sensor["summary"]
        n = sensor["files"]
        rows.append(
            (
                f"landing sensor tick over {n:,} new files: time",
                f"{s['tick1_seconds']:.3f} s",
                *verdict("sensor_seconds", s["tick1_seconds"]),
            )
        )
        rows.append(
            (
                f"landing sensor tick over {n:,} new files: memory of the tick",
                f"+{s['tick1_delta_mb']:.1f} MB",
                *verdict("sensor_mb", s["tick1_delta_mb"]),
            )
        )
        rows.append(
            (
                "landing sensor: process peak RSS (code location loaded + ticks)",
                f"{s['process_max_rss_mb']:.0f} MB",
                "-",
                "",
            )
        )
        rows.append((f"landing sensor tick over {n:,} unchanged files: time", f"{s['tick2_seconds']:.3f} s", "-", ""))
    else:
        rows.append(("landing sensor tick", "not run", *verdict("sensor_seconds", None)))
    if results.get("serving"):
        from serving import table_rows as serving_rows

        rows += serving_rows(results["serving"])
    else:
        rows.append(("serving: ml-platform serve vs in-process, MLflow and --no-log", "not run", "", ""))
    if results.get("monitoring"):
        from monitoring import table_rows as monitoring_rows

        rows += monitoring_rows(results["monitoring"])
    else:
        rows.append(("monitoring: served, outcomes and live_metrics of a day of logged requests", "not run", "", ""))
    dev = results.get("dev")
    if dev:
        s = dev["summary"]
        rows.append(("dagster dev: time to first page (GET / = 200)", f"{s['first_page_s']:.2f} s", "-", ""))
        rows.append(("dagster dev: time to code location loaded", f"{s['location_loaded_s']:.2f} s", "-", ""))
    return rows


def _evaluation_rows(evaluation: dict | None) -> list[tuple[str, str, str, str]]:
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
            *(verdict("evaluation_ratio_1m", s["time_ratio"]) if label == "1M" else ("-", "")),
        ),
    ]


def format_table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("measure", "figure", "target", "met?")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def where_time_goes(results: dict) -> str:
    """Measured breakdown: imports, the runs, their steps; the plain script's phases."""
    lines = []
    imports = results.get("imports", {}).get("summary")
    if imports:
        lines.append(
            "imports in a fresh process (median): pandas+pyarrow+sklearn"
            f" {imports['pandas_pyarrow_sklearn']:.2f} s; + dagster {imports['dagster']:.2f} s;"
            f" + rest of ml_platform.definitions {imports['ml_platform_definitions_rest']:.2f} s;"
            f" (prod mode only: + dagster_aws.s3 {imports['dagster_aws_s3']:.2f} s); whole process"
            f" {imports['process_wall_s']:.2f} s, of which"
            f" interpreter start + exit {imports['process_wall_s'] - imports['total_in_process']:.2f} s"
        )
    for label, data in results.get("pipeline", {}).items():
        s = data["summary"]
        plain = s["plain"]["phases_s"]
        lines.append(
            f"pipeline {label}, plain script {s['plain']['wall_s']:.2f} s: "
            + ", ".join(f"{k} {v:.2f}" for k, v in plain.items())
        )
        cli = s["cli"]
        for name, run in [*zip(("ingest", "train"), cli["per_run"]), ("daily", s["daily"]["per_run"][0])]:
            steps = ", ".join(f"{k} {v:.2f} ({phase_text(run['step_phases_s'][k])})" for k, v in run["steps_s"].items())
            in_steps = sum(run["steps_s"].values())
            lines.append(
                f"pipeline {label}, CLI {name} command {run['process_s']:.2f} s"
                f" (peak {run['process_max_rss_mb']:.0f} MB)"
                f" = start to run created {run['load_s']:.2f} (interpreter, imports, CLI, code location)"
                f" + run setup {run['setup_s']:.2f} + run {run['run_s']:.2f} + exit {run['exit_s']:.2f};"
                f" in the run: steps {in_steps:.2f} [{steps}], between steps {run['run_s'] - in_steps:.2f}"
            )
        api = s["api"]["phases_s"]
        lines.append(
            f"pipeline {label}, dg.materialize process {s['api']['wall_s']:.2f} s: "
            + ", ".join(f"{k} {v:.2f}" for k, v in api.items())
            + f", interpreter start + exit {s['api']['wall_s'] - sum(api.values()):.2f}"
        )
        if "prefect" in s:
            flow = s["prefect"]["phases_s"]
            lines.append(
                f"pipeline {label}, Prefect flow process {s['prefect']['wall_s']:.2f} s: "
                + ", ".join(f"{k} {v:.2f}" for k, v in flow.items())
                + " (the tasks as the plain script's phases; flow_other: the temporary server's"
                " start, the flow run and its states), interpreter start + exit (stopping"
                f" the server) {s['prefect']['wall_s'] - sum(flow.values()):.2f}"
            )
    backfill = results.get("backfill")
    if backfill:
        s = backfill["summary"]
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
    queued = results.get("queued")
    if queued:
        s = queued["summary"]
        for k in (1, 2):
            q = s[f"concurrent_{k}"]
            lines.append(
                f"queued backfill, {k} at a time: launch to done {q['launch_to_done_s']:.1f},"
                f" first run created to last run ended {q['created_to_last_end_s']:.1f},"
                f" first run started to last run ended {q['first_start_to_last_end_s']:.1f},"
                f" mean run (start to end, inside its process) {q['run_s_mean']:.2f}"
            )
    return "\n".join(lines)


def phase_text(phases: dict) -> str:
    return f"in {phases['inputs']:.2f} / compute {phases['compute']:.2f} / out {phases['outputs']:.2f}"


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = next(
            line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")
        )
        meminfo = Path("/proc/meminfo").read_text()
        info["memory_gb"] = round(int(meminfo.split("MemTotal:")[1].split()[0]) / 1024 / 1024, 1)
    except (OSError, StopIteration, IndexError):
        pass
    from importlib.metadata import version

    info["packages"] = {p: version(p) for p in ("dagster", "pandas", "numpy", "scikit-learn", "pyarrow")}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        info["git"] = commit + ("-dirty" if dirty else "")
    except OSError:
        pass
    return info


# -- main ------------------------------------------------------------------------------------------
# "prefect" is the pipeline's Prefect 3 variant (and its venv), not a section of its own.
SECTIONS = (
    "pipeline",
    "backfill",
    "contract",
    "evaluation",
    "sensor",
    "dev",
    "imports",
    "queued",
    "serving",
    "monitoring",
    "prefect",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__.split("\n\n")[0],
        epilog="Examples: make bench; make bench BENCH_ARGS='--sizes 10000,100000,1000000';"
        " python bench/run.py --quick",
    )
    parser.add_argument(
        "--sizes", default="10000,100000", help="rows per pipeline run, comma-separated (default 10000,100000)"
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every measure (default 3)")
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke test: 10k rows, 1 repetition, no dagster dev, no backfill"
    )
    parser.add_argument(
        "--skip",
        default="",
        help=f"sections to leave out, comma-separated: {', '.join(SECTIONS)}"
        " (prefect: the pipeline's Prefect 3 variant, and installing its venv)",
    )
    parser.add_argument("--backfill-days", type=int, default=30)
    parser.add_argument("--backfill-rows-per-day", type=int, default=50_000)
    parser.add_argument(
        "--queued-backfill",
        action="store_true",
        help="also backfill the whole training job in `dagster dev`, 1 vs 2 runs at"
        " a time (queued run coordinator; about 8 minutes per repetition)",
    )
    parser.add_argument("--queued-days", type=int, default=30)
    parser.add_argument("--queued-rows-per-day", type=int, default=1000)
    parser.add_argument("--queued-reps", type=int, default=1)
    parser.add_argument(
        "--contract-rows",
        type=int,
        default=1_000_000,
        help="rows of the window the data-contract measure ingests (default 1000000)",
    )
    parser.add_argument(
        "--evaluation-rows",
        type=int,
        default=1_000_000,
        help="window rows of the evaluation measure's daily run (default 1000000)",
    )
    parser.add_argument("--sensor-files", type=int, default=1000)
    parser.add_argument(
        "--serving-seconds", type=float, default=10.0, help="length of each serving load measure (default 10)"
    )
    parser.add_argument(
        "--monitoring-rows", type=int, default=1_000_000, help="logged requests of the monitoring day (default 1M)"
    )
    parser.add_argument("--results-dir", default=str(BENCH / "results"))
    parser.add_argument("--workdir", default=None, help="where temp projects go (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp projects and logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.reps, args.contract_rows, args.evaluation_rows = "10000", 1, 10_000, 10_000
        args.monitoring_rows = 10_000
        args.skip = ",".join(filter(None, [args.skip, "dev", "backfill", "serving"]))
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if not args.queued_backfill:
        args.skip.add("queued")
    unknown = args.skip - set(SECTIONS)
    if unknown:
        parser.error(f"--skip: unknown section(s) {', '.join(sorted(unknown))}")
    if args.reps < 1 or any(s < 100 for s in args.sizes):
        parser.error("--reps must be >= 1 and every size >= 100 rows")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ml_platform_bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(
        f"work folder {workdir}; sizes {args.sizes}; {args.reps} repetition(s);"
        f" skipping {', '.join(sorted(args.skip)) or 'nothing'}"
    )
    results: dict = {
        "started": started.isoformat(),
        "machine": machine(),
        "targets": TARGETS,
        "args": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()},
        "method": {
            "wall": "whole-process wall time (perf_counter around posix_spawn..wait4), imports included",
            "memory": "peak RSS of each process (ru_maxrss from os.wait4 of that process); for"
            " two CLI commands the larger of the two",
            "median_of": args.reps,
        },
    }
    exit_code = 0
    try:
        ws = Workspace(workdir / "projects")
        if "imports" not in args.skip:
            results["imports"] = bench_imports(ws, args.reps)
        if "pipeline" not in args.skip:
            prefect = None
            if "prefect" not in args.skip:
                prefect = prefect_python()
                results["machine"]["packages"]["prefect"] = prefect_version(prefect)
            results["pipeline"] = {}
            for rows in args.sizes:
                results["pipeline"][rows_label(rows)] = bench_pipeline(ws, rows, args.reps, args.keep, prefect)
        if "backfill" not in args.skip:
            results["backfill"] = bench_backfill(
                ws, args.backfill_days, args.backfill_rows_per_day, args.reps, args.keep
            )
        if "contract" not in args.skip:
            results["contract"] = bench_contract(ws, args.contract_rows, args.reps, args.keep)
        if "evaluation" not in args.skip:
            results["evaluation"] = bench_evaluation(ws, args.evaluation_rows, args.reps, args.keep)
        if "queued" not in args.skip:
            results["queued"] = bench_queued(
                ws, args.queued_days, args.queued_rows_per_day, args.queued_reps, args.keep
            )
        if "sensor" not in args.skip:
            results["sensor"] = bench_sensor(ws, args.sensor_files, args.reps, args.keep)
        if "dev" not in args.skip:
            landing = workdir / "landing-dev"
            write_landing(landing, 10_000, days_ending(END_DAY, WINDOW))
            results["dev"] = bench_dev(ws, landing, args.reps, args.keep)
        if "serving" not in args.skip:
            from serving import bench_serving  # bench/serving.py (MLflow in its own venv, wrk)

            results["serving"] = bench_serving(workdir / "serving", args.serving_seconds)
        if "monitoring" not in args.skip:
            from monitoring import bench_monitoring  # bench/monitoring.py

            results["monitoring"] = bench_monitoring(workdir / "monitoring", args.monitoring_rows)
    except RunFailed as exc:
        log(f"FAILED: {exc}")
        results["error"] = str(exc)
        exit_code = 1
    finally:
        results["finished"] = dt.datetime.now(dt.UTC).isoformat()
        table = build_table(results)
        results["table"] = [dict(zip(("measure", "figure", "target", "met"), row)) for row in table]
        out_dir = Path(args.results_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        out_file = out_dir / f"{started:%Y%m%dT%H%M%SZ}.json"
        out_file.write_text(json.dumps(results, indent=2, default=str))
        if args.keep or exit_code:
            log(f"kept {workdir} (projects, instances and logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    m = results["machine"]
    took = (dt.datetime.fromisoformat(results["finished"]) - started).total_seconds()
    print()
    print(
        f"ml_platform bench: medians of {args.reps} run(s), interleaved; {m.get('cpu_model', '?')},"
        f" {m['cpus']} CPUs, {m.get('memory_gb', '?')} GB; Python {m['python']},"
        f" dagster {m['packages']['dagster']}, scikit-learn {m['packages']['scikit-learn']}"
        + (f", prefect {m['packages']['prefect']}" if "prefect" in m["packages"] else "")
        + ";"
        f" took {took:.0f} s"
    )
    print()
    print(format_table(table))
    print()
    print(
        "Pipeline: whole processes (imports included), the CLI is two `dagster asset materialize`\n"
        "commands; peak RSS is per process (the larger CLI command). Backfill: the work inside one\n"
        "process (imports excluded: the same in every variant); the range-vs-single-runs speedup\n"
        "comes from running fewer runs, the 2nd-core row isolates parallelism. Sensor: the tick alone,\n"
        "in a process that has loaded the code location; memory = peak RSS during the tick - RSS before.\n"
        "Prefect: the plain script's functions as the tasks of one flow (bench/.prefect-venv), with\n"
        "the temporary local API server Prefect starts by default; its peak RSS is os.wait4's like\n"
        "every variant's: the larger of its two processes, not their sum; the server's is beside it."
    )
    breakdown = where_time_goes(results)
    if breakdown:
        print()
        print("Where the time goes (medians, seconds):")
        print(breakdown)
    print()
    print(f"raw timings: {out_file.relative_to(ROOT) if out_file.is_relative_to(ROOT) else out_file}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
