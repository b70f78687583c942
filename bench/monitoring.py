"""Monitoring benchmark: a day of logged requests (default 1,000,000, one row each) through the loop
back, each step a `dagster asset materialize` of its own, timed with its peak RSS:

- served[day]: read the day's parquet parts, summarise (requests, latency quantiles, versions),
  the signature share and the skew of the served rows against the training profile;
- outcomes[day]: an outcome file labelling 60 % of them (arriving the day after), checked against
  the ids of the log (only the log's id columns are read);
- live_metrics[day]: the day's rows joined with the outcomes, scored per version with the
  bootstrap interval of the gate metric;
- rollout[day] (issue 34): the day's whole log (production's answers and the shadow candidate's
  rows) joined with the outcomes: per version its rows, refusals, p99, the gate metric with its
  bootstrap interval and the label-free estimate of its accuracy (from the calibration the pipeline
  stored with it), and for the pair the disagreement and the paired bootstrap of the difference.

Beside them, the floor a hand-written job would have: a plain pandas script (bench/
monitoring_plain.py) that reads the same parts and the outcome file, counts, joins and scores
accuracy, with no checks and no Dagster.

The pipeline (a 50-tree forest over 20 synthetic features and a categorical one, `rollout:
{strategy: shadow}`) trains twice, untimed: on the first day its first version, promoted directly;
on the next day a second version, gated against it, which becomes the shadow candidate. The log is
written as a server with that rollout writes it (``prediction_log.Entry`` and ``part_bytes``, 100
parts): each request twice, production's answer (``answered``) and the candidate's prediction off the
request path, each with its own predictions and class probabilities. The served rows, the training
days and the outcomes come from one synthetic data set (the same problem).

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

FIRST, TRAINED, SERVED, ARRIVED = "2026-01-06", "2026-01-07", "2026-01-08", "2026-01-09"
TRAIN_ROWS = 20_000  # rows of each training day
PARTS = 100
LABELLED = 0.6
PIPELINES = """pipelines:
  - name: bench
    landing: bench
    model_name: bench_model
    window_days: 1
    partitions: {start: "2026-01-01"}
    model: {estimator: random_forest, params: {n_estimators: 50, max_depth: 10}}
    gate: {min_accuracy: 0.6, max_regression: 0.05}
    monitoring: {}
    feedback: {landing: bench_outcomes, id: order_id}
    rollout: {strategy: shadow}
"""
STEPS = (
    ("served", "key:bench/served", SERVED),
    ("outcomes", "key:bench/outcomes", ARRIVED),
    ("live_metrics", "key:bench/live_metrics", SERVED),
    ("rollout", "key:bench/rollout", SERVED),
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


def train_versions(env: dict[str, str], frame: pd.DataFrame) -> dict[str, str]:
    """The pipeline trained on FIRST (its first version: production) and on TRAINED (gated against
    it: the shadow candidate), TRAIN_ROWS rows of ``frame`` each; returns {role: version}."""
    from ml_platform.backends.local import LocalModelStore

    folder = Path(env["ML_PLATFORM_LANDING_DIR"]) / "bench"
    folder.mkdir(parents=True)
    for number, day in enumerate((FIRST, TRAINED)):
        part = frame.iloc[number * TRAIN_ROWS : (number + 1) * TRAIN_ROWS]
        part.to_parquet(folder / f"{day}.parquet", index=False)
        log(f"training on {day} (untimed)")
        done = subprocess.run(
            materialize("key:bench/raw_data+", "--partition", day),
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode:
            raise RuntimeError(f"training on {day} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    store = LocalModelStore(root=env["ML_PLATFORM_MODEL_STORE_DIR"])
    production, candidate = store.pointer("bench_model"), store.candidate("bench_model")
    if production is None or candidate is None:
        raise RuntimeError(f"expected production and a shadow candidate, found {production} and {candidate}")
    return {"production": production.version, "candidate": candidate.version}


def predicted(env: dict[str, str], version: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """What ``version`` makes of ``frame``, as the server does: the rows after its signature check,
    its predictions and class probabilities."""
    from ml_platform.serving import load_production_model

    model, _ = load_production_model("bench_model", store_dir=env["ML_PLATFORM_MODEL_STORE_DIR"], version=version)
    checked, _ = model.check(frame)
    predictions, probabilities = model.predict_checked(checked, proba=True)
    return checked.reset_index(drop=True), predictions, probabilities.reset_index(drop=True)


def write_log(env: dict[str, str], frame: pd.DataFrame, versions: dict[str, str]) -> None:
    """Every row of ``frame`` a single-row request of SERVED, logged as a server with a shadow
    rollout logs it: production's answer, then the candidate's prediction (not answered), each an
    ``Entry`` with its own predictions, probabilities and latency; PARTS parts by ``part_bytes``."""
    from ml_platform.serving.prediction_log import Entry, part_bytes

    rows = len(frame)
    made = {role: predicted(env, version, frame) for role, version in versions.items()}
    rng = np.random.default_rng(1)
    start = pd.Timestamp(f"{SERVED}T00:00:00", tz="UTC")
    logged_at = (start + pd.to_timedelta(np.sort(rng.uniform(0, 86_399, rows)), unit="s")).to_pydatetime()
    latency = {role: rng.gamma(2.0, 2.0, rows) for role in versions}
    folder = Path(env["ML_PLATFORM_MODEL_STORE_DIR"]) / "bench_model" / "prediction_log" / SERVED
    folder.mkdir(parents=True)
    checked = made["production"][0]  # the same signature: the candidate's check reads the rows alike
    for number, part in enumerate(np.array_split(np.arange(rows), PARTS)):
        entries = []
        for i in part:
            one = checked.iloc[i : i + 1]
            for role, (_, predictions, probabilities) in made.items():
                entry = Entry(
                    "bench_model",
                    versions[role],
                    f"o{i:07d}",
                    logged_at[i],
                    float(latency[role][i]),
                    one,
                    predictions[i : i + 1],
                    probabilities.iloc[i : i + 1],
                    role=role,
                    answered=role == "production",
                )
                entries.append(entry)
        name = f"{SERVED.replace('-', '')}T{number:06d}000000Z-1-{number:06d}.parquet"
        (folder / name).write_bytes(part_bytes(entries))


def rollout_evidence(env: dict[str, str]) -> dict:
    """What rollout[SERVED] recorded (its ``Evidence`` metadata): per version and per pair."""
    import dagster as dg

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["bench", "rollout"]))
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    found = metadata.get("Evidence")
    return found.value if found is not None else {}


def bench_monitoring(workdir: Path, rows: int = 1_000_000) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    env = project(workdir / "project")
    from ml_platform.demo import synthetic_frame

    frame = synthetic_frame(2 * TRAIN_ROWS + rows, 0, "target")
    versions = train_versions(env, frame.iloc[: 2 * TRAIN_ROWS])
    served = frame.iloc[2 * TRAIN_ROWS :].reset_index(drop=True)
    truth = pd.DataFrame({"order_id": [f"o{i:07d}" for i in range(rows)], "target": served.pop("target")})
    log(f"writing a day of {rows:,} requests logged twice (production, shadow candidate; {PARTS} parts; untimed,")
    log("  through the server's own Entry and part_bytes: about 2 s per 10,000 requests on 2 cores)")
    write_log(env, served, versions)
    log(f"the outcomes of {LABELLED:.0%}")
    outcomes = truth.sample(frac=LABELLED, random_state=2)
    landing = Path(env["ML_PLATFORM_LANDING_DIR"])
    (landing / "bench_outcomes").mkdir()
    outcomes.to_parquet(landing / "bench_outcomes" / f"{ARRIVED}.parquet", index=False)
    results = {"rows": rows, "log_rows": 2 * rows, "outcomes": len(outcomes), "versions": versions, "steps": {}}
    for name, selection, partition in STEPS:
        measured = run_measured([materialize(selection, "--partition", partition)], env, workdir / f"{name}.log")
        results["steps"][name] = {"wall_s": measured["wall_s"], "max_rss_mb": measured["max_rss_mb"]}
        log(f"{name}[{partition}]: {measured['wall_s']:.1f} s, peak RSS {measured['max_rss_mb']:.0f} MB")
    results["evidence"] = rollout_evidence(env)
    plain = [PYTHON, str(BENCH / "monitoring_plain.py"), env["ML_PLATFORM_MODEL_STORE_DIR"], str(landing)]
    measured = run_measured([[*plain, str(workdir / "plain.json")]], env, workdir / "plain.log")
    results["plain"] = {"wall_s": measured["wall_s"], "max_rss_mb": measured["max_rss_mb"]}
    results["plain"].update(json.loads((workdir / "plain.json").read_text()))
    log(f"plain pandas: {measured['wall_s']:.1f} s, peak RSS {measured['max_rss_mb']:.0f} MB")
    return results


def table_rows(results: dict | None) -> list[Row]:
    if not results:
        return [
            ("monitoring: served, outcomes, live_metrics and rollout of a day of logged requests", "not run", "", "")
        ]
    steps, plain = results["steps"], results["plain"]
    label = (
        f"{results['rows']:,} requests logged twice (production, shadow candidate: {results['log_rows']:,} rows),"
        f" {results['outcomes']:,} outcomes"
    )
    rows = [
        (
            f"monitoring: {name}[day] of {label} (dagster asset materialize): time, peak RSS",
            f"{step['wall_s']:.1f} s, {step['max_rss_mb']:.0f} MB",
            "printed",
            "-",
        )
        for name, step in steps.items()
    ]
    loop = {k: v for k, v in steps.items() if k != "rollout"}
    total = sum(s["wall_s"] for s in loop.values())
    rows.append(
        (
            f"monitoring: served, outcomes, live_metrics vs a plain pandas script (read, count, join, accuracy)"
            f" of {label}",
            f"{total:.1f} s vs {plain['wall_s']:.1f} s = {total / plain['wall_s']:.1f}x;"
            f" peak {max(s['max_rss_mb'] for s in loop.values()):.0f} vs {plain['max_rss_mb']:.0f} MB",
            "printed",
            "-",
        )
    )
    if "rollout" in steps and "live_metrics" in steps:
        rows.append(rollout_row(steps["rollout"], steps["live_metrics"], results.get("evidence") or {}))
    return rows


def rollout_row(rollout: dict, live: dict, evidence: dict) -> Row:
    """rollout[day] beside live_metrics[day], and what it found (scores, estimates, the pair)."""
    found = []
    for v in evidence.get("versions", []):
        score = f"{v['score']:.3f}" if v.get("score") is not None else "-"
        error = f"±{v['estimate_error']:.3f}" if v.get("estimate_error") is not None else ""
        estimate = f"{v['estimate']:.3f}{error}" if v.get("estimate") is not None else "none"
        found.append(f"{v['role']} {score} (est. {estimate})")
    for pair in evidence.get("pairs", []):
        difference, se, disagreement = pair.get("difference"), pair.get("difference_se"), pair.get("disagreement")
        shown = "-" if difference is None else f"{difference:+.4f}" + (f"±{1.96 * se:.4f}" if se is not None else "")
        disagree = "-" if disagreement is None else f"{disagreement:.3f}"
        found.append(f"disagree {disagree}, candidate - production {shown} on {pair['labelled']:,} labelled")
    return (
        "monitoring: rollout[day] beside live_metrics[day] of the same day: time, peak RSS; what it found",
        f"{rollout['wall_s']:.1f} s = {rollout['wall_s'] / live['wall_s']:.2f}x, {rollout['max_rss_mb']:.0f} MB ="
        f" {rollout['max_rss_mb'] / live['max_rss_mb']:.2f}x; " + "; ".join(found),
        "printed",
        "-",
    )


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
