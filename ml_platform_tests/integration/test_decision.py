"""A binary classifier's decision threshold, chosen on a part of the train split to maximize the F1
of the rare class, through `dagster asset materialize`: it lets a per-class recall gate pass that
the 0.5 cut-off fails, it is stored with the model, and `ml-platform predict`, `ml-platform serve`
and batch scoring (predictions[day]) all decide at it — the same predictions, on the same rows,
as the stored threshold applied to the stored probabilities."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_platform_tests.support.constants import BIN, ROOT
from ml_platform_tests.support.materialize_cli import checks_of, materialize, model_metrics_tables
from ml_platform_tests.support.platform import production_json, project_env
from ml_platform_tests.support.realistic import days_of, rare_churn_day, write_days
from ml_platform_tests.support.serve_process import TOKEN, start_server

pytestmark = pytest.mark.cli

PIPELINES = """\
pipelines:
  - name: rare
    target: churned
    features: [tenure, support_calls, plan, city]
    window_days: 7
    partitions: {start: "2026-01-01"}
    model: {estimator: random_forest, params: {n_estimators: 60, max_depth: 10}}
    decision: {maximize: f1}
    gate: {min_roc_auc: 0.85, min_recall: {"yes": 0.5}}
    scoring: {landing: rare_scoring, id: customer_id}
"""
DAYS = days_of("2026-01-01", 7)
LAST = DAYS[-1]


def test_the_decision_threshold_is_used_by_predict_serve_and_batch_scoring(tmp_path: Path):
    env = project_env(tmp_path)
    (tmp_path / "pipelines.yaml").write_text(PIPELINES)
    env["ML_PLATFORM_PIPELINES"] = str(tmp_path / "pipelines.yaml")
    landing = Path(env["ML_PLATFORM_LANDING_DIR"])
    write_days(landing / "rare", DAYS, rare_churn_day, rows=900)
    materialize(env, "--select", "key:rare/raw_data", "--partition-range", f"{DAYS[0]}...{LAST}")
    materialize(env, "--select", "key:rare/training_data+", "--partition", LAST)

    # Chosen on a quarter of the train split, well below 0.5 for about 3 % churners; the churners'
    # recall at it passes the gate's 0.5.
    deployed = production_json(env, "rare")
    decision = deployed["decision_threshold"]
    assert decision["positive_class"] == "yes" and decision["chosen"] is True
    threshold = decision["threshold"]
    assert 0.0 < threshold < 0.5, decision
    passed, said = checks_of(env, "rare")["recall_of_yes_above_threshold"]
    assert passed and said.startswith("recall of yes "), said
    tables = model_metrics_tables(env, "rare")
    assert tables["Per class"], "the per-class table is shown"

    # The same unlabelled rows through the three ways a model predicts.
    rows = rare_churn_day("2026-01-08", 3000, 99).drop(columns=["churned"])  # customer_id: not a feature
    (landing / "rare_scoring").mkdir(parents=True)
    rows.to_parquet(landing / "rare_scoring" / f"{LAST}.parquet", index=False)
    materialize(env, "--select", "key:rare/scoring_data+", "--partition", LAST)
    batch = pd.read_parquet(Path(env["ML_PLATFORM_ASSET_STORAGE_DIR"]) / "rare" / "predictions" / f"{LAST}.parquet")

    rows.to_csv(tmp_path / "rows.csv", index=False)
    command = [str(BIN / "ml-platform"), "predict", "--model", "rare", "--input", str(tmp_path / "rows.csv")]
    command += ["--output", str(tmp_path / "predicted.csv"), "--proba"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    cli = pd.read_csv(tmp_path / "predicted.csv")

    server = start_server({**env, "ML_PLATFORM_SERVE_TOKEN": TOKEN}, tmp_path / "serve.log", "--model", "rare")
    try:
        _, info, _ = server.request("GET", "/v1/models/rare")
        status, answer, _ = server.predict(
            json.loads(rows.to_json(orient="records")), model="rare", query="?proba=true"
        )
    finally:
        server.stop()
    assert status == 200, answer
    assert info["decision_threshold"] == decision  # what the server says it decides at

    probability = np.asarray(answer["probabilities"])[:, answer["classes"].index("yes")]
    decided = np.where(probability >= threshold, "yes", "no")
    assert answer["predictions"] == decided.tolist()
    assert cli["prediction"].tolist() == decided.tolist()
    assert batch["prediction"].tolist() == decided.tolist()
    assert batch["request_id"].tolist() == rows["customer_id"].tolist()  # scoring.id names each row
    assert np.allclose(cli["proba_yes"], probability) and np.allclose(batch["proba_yes"], probability)
    # Not what the 0.5 cut-off says: the threshold changed some answers, and only towards "yes".
    at_half = np.where(probability >= 0.5, "yes", "no")
    changed = decided != at_half
    assert changed.sum() > 0 and set(decided[changed]) == {"yes"}
