"""Monitoring benchmark: a day of logged requests (default 1,000,000, one row each) through the loop
back, each step a `dagster asset materialize` of its own, timed with its peak RSS:

- served[day]: read the day's parquet parts, summarise (requests, latency quantiles, versions),
  the signature share and the skew of the served rows against the training profile;
- outcomes[day]: an outcome file labelling 60 % of them (arriving the day after), checked against
  the ids of the log (only the log's id columns are read);
- live_metrics[day]: the day's rows joined with the outcomes, scored per version with the
  bootstrap interval of the gate metric.

Beside them, the floor a hand-written job would have: a plain pandas script (bench/
monitoring_plain.py) that reads the same parts and the outcome file, counts, joins and scores
accuracy, with no checks and no Dagster.

The log is written as a server writes it (the columns of ml_platform.serving.prediction_log, 100
parts) from the predictions of a real production model (a 50-tree forest over 20 synthetic
features and a categorical one, trained by the pipeline, untimed).

Run alone: `.venv/bin/python bench/monitoring.py [--rows N] [--keep]`; `make bench` runs it as the
section "monitoring".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from projects import DAGSTER, clean_env, materialize
from scaffold import BENCH, PYTHON, ROOT, Row, logger, run_section
from timing import run_measured

TRAINED, SERVED, ARRIVED = "2026-01-07", "2026-01-08", "2026-01-09"
PARTS = 100
LABELLED = 0.6
PIPELINES = """pipelines:
  - name: bench
    landing: bench
    model_name: bench_model
    window_days: 1
    partitions: {start: "2026-01-01"}
    model: {estimator: random_forest, params: {n_estimators: 50, max_depth: 10}}
    gate: {min_accuracy: 0.6}
    monitoring: {}
    feedback: {landing: bench_outcomes, id: order_id}
"""
STEPS = (
    ("served", "key:bench/served", SERVED),
    ("outcomes", "key:bench/outcomes", ARRIVED),
    ("live_metrics", "key:bench/live_metrics", SERVED),
)


log = logger("bench monitoring", sys.stdout)


def project(root: Path) -> dict[str, str]:
    """A project on folders under ``root``: its pipelines file, landing, store, asset storage and a
    migrated DAGSTER_HOME."""
    (root / "dagster_home").mkdir(parents=True)
    (root / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (root / "pipelines.yaml").write_text(PIPELINES)
    env = {
        **clean_env(),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "ML_PLATFORM_PIPELINES": str(root / "pipelines.yaml"),
        "ML_PLATFORM_LANDING_DIR": str(root / "landing"),
        "ML_PLATFORM_MODEL_STORE_DIR": str(root / "model_store"),
        "ML_PLATFORM_ASSET_STORAGE_DIR": str(root / "assets"),
    }
    subprocess.run([DAGSTER, "instance", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def write_log(env: dict[str, str], rows: int) -> tuple[int, pd.DataFrame]:
    """``rows`` single-row requests of SERVED, predicted by the production model, written as
    PARTS parquet parts in the store's log folder; returns (rows, the true labels by order id)."""
    from ml_platform.demo import synthetic_frame
    from ml_platform.serving import load_production_model

    model, version = load_production_model("bench_model", store_dir=env["ML_PLATFORM_MODEL_STORE_DIR"])
    frame = synthetic_frame(rows, 1, "target")
    truth = frame.pop("target")
    checked, _ = model.check(frame)
    predictions, probabilities = model.predict_checked(checked, proba=True)
    rng = np.random.default_rng(1)
    ids = np.array([f"o{i:07d}" for i in range(rows)], dtype=object)
    start = pd.Timestamp(f"{SERVED}T00:00:00", tz="UTC")
    own = pd.DataFrame(
        {
            "request_id": ids,
            "row": np.zeros(rows, dtype="int64"),
            "logged_at": (start + pd.to_timedelta(np.sort(rng.uniform(0, 86_399, rows)), unit="s")).astype(
                "datetime64[us, UTC]"
            ),
            "model": "bench_model",
            "version": version.version,
            "latency_ms": rng.gamma(2.0, 2.0, rows),
            "prediction": predictions,
            "refused": pd.Series(pd.NA, index=range(rows), dtype="string"),
        }
    )
    proba = probabilities.set_axis([f"proba_{c}" for c in probabilities.columns], axis=1).reset_index(drop=True)
    logged = pd.concat([own, checked.reset_index(drop=True), proba], axis=1)
    folder = Path(env["ML_PLATFORM_MODEL_STORE_DIR"]) / "bench_model" / "prediction_log" / SERVED
    folder.mkdir(parents=True)
    for number, part in enumerate(np.array_split(np.arange(rows), PARTS)):
        logged.iloc[part].to_parquet(folder / f"{SERVED.replace('-', '')}T{number:06d}000000Z-1-{number:06d}.parquet")
    return rows, pd.DataFrame({"order_id": ids, "target": truth.to_numpy()})


def bench_monitoring(workdir: Path, rows: int = 1_000_000) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    env = project(workdir / "project")
    from ml_platform.demo import synthetic_frame

    landing = Path(env["ML_PLATFORM_LANDING_DIR"])
    (landing / "bench").mkdir(parents=True)
    synthetic_frame(20_000, 0, "target").to_parquet(landing / "bench" / f"{TRAINED}.parquet", index=False)
    log("training the production model (untimed)")
    train = materialize("key:bench/raw_data+", "--partition", TRAINED)
    subprocess.run(train, env=env, cwd=ROOT, check=True, capture_output=True, timeout=1800)
    log(f"writing a day of {rows:,} logged requests ({PARTS} parts) and the outcomes of {LABELLED:.0%}")
    written, truth = write_log(env, rows)
    outcomes = truth.sample(frac=LABELLED, random_state=2)
    (landing / "bench_outcomes").mkdir()
    outcomes.to_parquet(landing / "bench_outcomes" / f"{ARRIVED}.parquet", index=False)
    results = {"rows": written, "outcomes": len(outcomes), "steps": {}}
    for name, selection, partition in STEPS:
        measured = run_measured([materialize(selection, "--partition", partition)], env, workdir / f"{name}.log")
        results["steps"][name] = {"wall_s": measured["wall_s"], "max_rss_mb": measured["max_rss_mb"]}
        log(f"{name}[{partition}]: {measured['wall_s']:.1f} s, peak RSS {measured['max_rss_mb']:.0f} MB")
    plain = [PYTHON, str(BENCH / "monitoring_plain.py"), env["ML_PLATFORM_MODEL_STORE_DIR"], str(landing)]
    measured = run_measured([[*plain, str(workdir / "plain.json")]], env, workdir / "plain.log")
    results["plain"] = {"wall_s": measured["wall_s"], "max_rss_mb": measured["max_rss_mb"]}
    results["plain"].update(json.loads((workdir / "plain.json").read_text()))
    log(f"plain pandas: {measured['wall_s']:.1f} s, peak RSS {measured['max_rss_mb']:.0f} MB")
    return results


def table_rows(results: dict | None) -> list[Row]:
    if not results:
        return [("monitoring: served, outcomes and live_metrics of a day of logged requests", "not run", "", "")]
    rows = []
    steps, plain = results["steps"], results["plain"]
    label = f"{results['rows']:,} logged requests, {results['outcomes']:,} outcomes"
    for name, step in steps.items():
        rows.append(
            (
                f"monitoring: {name}[day] of {label} (dagster asset materialize): time, peak RSS",
                f"{step['wall_s']:.1f} s, {step['max_rss_mb']:.0f} MB",
                "printed",
                "-",
            )
        )
    total = sum(s["wall_s"] for s in steps.values())
    rows.append(
        (
            f"monitoring: the three steps vs a plain pandas script (read, count, join, accuracy) of {label}",
            f"{total:.1f} s vs {plain['wall_s']:.1f} s = {total / plain['wall_s']:.1f}x;"
            f" peak {max(s['max_rss_mb'] for s in steps.values()):.0f} vs {plain['max_rss_mb']:.0f} MB",
            "printed",
            "-",
        )
    )
    return rows


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000, help="logged requests of the day (default 1M)")


def main(argv: list[str] | None = None) -> int:
    return run_section(
        "monitoring",
        __doc__.split("\n\n")[0],
        add_flags,
        lambda workdir, args: bench_monitoring(workdir, args.rows),
        table_rows,
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
