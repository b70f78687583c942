"""The bench's data and projects, shared by its sections: the synthetic landing days, a fresh
project per measured run (a copy of one migrated DAGSTER_HOME, empty asset and model-store
folders), the `dagster asset materialize` commands, and what a run left behind (the production
version and its metrics in the model store, the runs and step timings in the instance)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

from scaffold import BENCH, BIN, ROOT

from ml_platform import constants
from ml_platform.estimators import RandomForestParams

DAGSTER = str(BIN / "dagster")
MODULE = "ml_platform.definitions"
END_DAY = "2026-01-07"  # a fixed day inside the daily partitions: results do not depend on today
WINDOW = constants.DEFAULT_WINDOW_DAYS
SEED = 0
PHASES = ("inputs", "compute", "outputs")

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


def materialize(select: str, *partition: str, defs: tuple[str, ...] = ("-m", MODULE)) -> list[str]:
    """`dagster asset materialize` of ``select`` (``partition``: ``--partition DAY`` or
    ``--partition-range FIRST...LAST``) on ml_platform's definitions, or on ``defs``."""
    return [DAGSTER, "asset", "materialize", *defs, "--select", select, *partition]


FLOOR_DEFS = ("-f", str(BENCH / "floor_defs.py"))


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


def dispose(path: Path, keep: bool) -> None:
    """Remove a project or landing folder once measured, unless ``--keep``."""
    if not keep:
        shutil.rmtree(path, ignore_errors=True)


# -- what a run left behind ------------------------------------------------------------------------
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


def storage_time(text: str) -> float:
    """A timestamp of the run storage (naive UTC text) as seconds since the epoch."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def run_events(home: Path) -> list[dict]:
    """Per run, from the instance's SQLite files: when it was created, started and ended, and per
    step its time and three phases read off the event log: inputs (start -> last input loaded),
    compute (-> first output) and outputs (-> success: IO manager writes, materialization events,
    and the rest of a step that yields several outputs)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(home / "history" / "runs.db")) as db:
        rows = db.execute(
            "select run_id, status, create_timestamp, start_time, end_time from runs order by id"
        ).fetchall()
    runs = []
    for run_id, status, created, start, end in rows:
        steps, phases = step_times(home, run_id)
        runs.append(
            {
                "run_id": run_id,
                "status": status,
                "created_at": storage_time(created),
                "start_at": start,
                "end_at": end,
                "run_s": (end - start) if start and end else None,
                "steps_s": steps,
                "step_phases_s": phases,
            }
        )
    return runs


def step_times(home: Path, run_id: str) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(step -> seconds, step -> its phases) of one run, from its event log."""
    import sqlite3

    marks: dict[str, dict[str, float]] = {}
    with contextlib.closing(sqlite3.connect(home / "history" / "runs" / f"{run_id}.db")) as db:
        events = db.execute(
            "select dagster_event_type, timestamp, step_key from event_logs where dagster_event_type in"
            " ('STEP_START', 'STEP_INPUT', 'STEP_OUTPUT', 'STEP_SUCCESS') order by id"
        ).fetchall()
    for kind, when, step in events:
        step_marks = marks.setdefault(step, {})
        if kind == "STEP_OUTPUT":
            step_marks.setdefault(kind, storage_time(when))  # the first output
        else:
            step_marks[kind] = storage_time(when)  # the last input
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
    return steps, phases


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


def phase_text(phases: dict) -> str:
    return f"in {phases['inputs']:.2f} / compute {phases['compute']:.2f} / out {phases['outputs']:.2f}"
