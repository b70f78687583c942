"""The floor of bench/monitoring.py: what a hand-written job does with a day of the prediction log
and its outcomes, in plain pandas and scikit-learn — read the day's parts, count requests and
latency quantiles per version, read the outcome file, join it to the predictions by id and score
accuracy — with no checks, no drift, no intervals and no Dagster.

    python bench/monitoring_plain.py MODEL_STORE_DIR LANDING_DIR RESULT.json
"""

import json
import sys
from pathlib import Path

import pandas as pd
from sklearn.metrics import accuracy_score


def main(store: str, landing: str, out: str) -> None:
    parts = sorted((Path(store) / "bench_model" / "prediction_log" / "2026-01-08").glob("*.parquet"))
    log = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    if "answered" in log.columns:  # a shadow candidate's rows are not answers
        log = log[log["answered"]]
    summary = {
        "requests": int(log["request_id"].nunique()),
        "latency_ms": log["latency_ms"].quantile([0.5, 0.95, 0.99]).tolist(),
        "versions": log["version"].value_counts().to_dict(),
    }
    outcomes = pd.read_parquet(Path(landing) / "bench_outcomes" / "2026-01-09.parquet")
    joined = log.merge(outcomes, left_on="request_id", right_on="order_id")
    summary["labelled"] = len(joined)
    summary["accuracy"] = float(accuracy_score(joined["target"], joined["prediction"]))
    Path(out).write_text(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:4])
