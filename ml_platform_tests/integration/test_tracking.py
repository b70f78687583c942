"""MLflow tracking (ml_platform.tracking) against a real `mlflow server` (support/mlflow_server.py):
what the tracker records is read back with MLflow's own client, the model is loaded back from the
server and predicts; and a tracker that is down (a closed port on 127.0.0.1) costs seconds, returns
None/False and warns with a sentence naming its URI instead of raising.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import joblib
import mlflow  # the client (mlflow-skinny) comes with the dev extra: a missing one fails
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml_platform.tracking import MAX_PARAM_VALUE_CHARS, MlflowTracker, tracking_uri_from
from ml_platform_tests.support.mlflow_server import mlflow_server  # noqa: F401 (fixture, used by name)
from ml_platform_tests.support.servers import counting_proxy, free_port


def frame(rows: int = 60) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(7)
    x = pd.DataFrame({"age": rng.normal(40, 10, rows), "income": rng.normal(50, 15, rows)})
    return x, (x["age"] + rng.normal(0, 5, rows) > 40).astype(int)


def experiment_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def load_model(uri: str, tracking_uri: str, monkeypatch: pytest.MonkeyPatch):
    import mlflow.sklearn

    # models:/ URIs resolve through the process-wide tracking URI.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    return mlflow.sklearn.load_model(uri)


def test_a_run_is_recorded_and_its_model_loads_back(
    mlflow_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.tracking import MlflowClient

    x, y = frame()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    model_file = tmp_path / "model.joblib"
    joblib.dump(model, model_file)
    signature = {
        "features": [{"name": "age", "kind": "numeric"}, {"name": "income", "kind": "numeric"}],
        "target": {"name": "label", "classes": [0, 1]},
    }
    warnings: list[str] = []
    experiment = experiment_name()
    tracker = MlflowTracker(mlflow_server, experiment, warnings.append)

    run_id = tracker.start_run(
        "demo_classifier 2026-01-01",
        params={"model.C": 1.0, "model.penalty": "l2", "features": ["age", "income"], "long": "x" * 7000},
        tags={"ml_platform.pipeline": "demo_classifier", "ml_platform.partition": "2026-01-01"},
    )
    assert run_id is not None, warnings
    assert tracker.log_metrics(run_id, {"accuracy": 0.9, "f1": 0.85, "training_rows": 60})
    assert tracker.set_tags(run_id, {"ml_platform.version": "3"})
    assert tracker.log_dict(run_id, signature, "signature.json")
    model_uri = tracker.log_model(run_id, model_file)
    assert model_uri is not None and model_uri.startswith("models:/"), warnings
    assert tracker.end_run(run_id)
    assert warnings == []

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "demo_classifier 2026-01-01"
    assert client.get_experiment(run.info.experiment_id).name == experiment
    params = run.data.params
    assert params["model.C"] == "1.0" and params["model.penalty"] == "l2"
    assert params["features"] == '["age", "income"]'
    assert params["long"] == "x" * MAX_PARAM_VALUE_CHARS  # truncated to MLflow's limit
    assert run.data.metrics == {"accuracy": 0.9, "f1": 0.85, "training_rows": 60.0}
    tags = run.data.tags
    assert tags["ml_platform.pipeline"] == "demo_classifier" and tags["ml_platform.version"] == "3"
    assert "signature.json" in [a.path for a in client.list_artifacts(run_id)]
    stored = client.download_artifacts(run_id, "signature.json", dst_path=str(tmp_path / "download"))
    assert json.loads(Path(stored).read_text()) == signature

    # MLflow 3: the model is a logged model, the run's output (its files are under the model).
    model_id = model_uri.removeprefix("models:/")
    assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == run_id
    files = {f.path for f in client.list_logged_model_artifacts(model_id)}
    assert {"MLmodel", "model.pkl", "requirements.txt"} <= files
    loaded = load_model(model_uri, mlflow_server, monkeypatch)
    row = x.head(1)
    assert loaded.predict(row).tolist() == model.predict(row).tolist()

    url = tracker.run_url(run_id)
    assert url == f"{mlflow_server}/#/experiments/{run.info.experiment_id}/runs/{run_id}"
    # A tracker that did not create the run finds its experiment for the link.
    assert MlflowTracker(mlflow_server, experiment, warnings.append).run_url(run_id) == url


def test_a_lightgbm_model_object_is_logged_with_its_requirements(
    mlflow_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lightgbm  # a dev dependency: installed with the project's tests, never skipped
    from mlflow.tracking import MlflowClient

    x, y = frame()
    model = make_pipeline(StandardScaler(), lightgbm.LGBMClassifier(n_estimators=5, verbose=-1)).fit(x, y)
    warnings: list[str] = []
    tracker = MlflowTracker(mlflow_server, experiment_name(), warnings.append)
    run_id = tracker.start_run("lgbm", params={}, tags={})
    model_uri = tracker.log_model(run_id, model)
    assert model_uri is not None, warnings
    assert tracker.end_run(run_id) and warnings == []

    client = MlflowClient(tracking_uri=mlflow_server)
    model_id = model_uri.removeprefix("models:/")
    local = mlflow.artifacts.download_artifacts(
        f"{client.get_logged_model(model_id).artifact_location}/requirements.txt", tracking_uri=mlflow_server
    )
    requirements = Path(local).read_text().split()
    assert f"lightgbm=={lightgbm.__version__}" in requirements
    assert any(r.startswith("scikit-learn==") for r in requirements)
    loaded = load_model(model_uri, mlflow_server, monkeypatch)
    assert loaded.predict(x.head(3)).tolist() == model.predict(x.head(3)).tolist()


def test_a_refused_call_is_not_retried_and_does_not_stop_tracking(mlflow_server: str) -> None:
    warnings: list[str] = []
    with counting_proxy(mlflow_server) as (url, requests):
        tracker = MlflowTracker(url, experiment_name(), warnings.append)
        assert tracker.log_metrics("0" * 32, {"accuracy": 0.5}) is False  # no such run: 404
        # Tried once: a refusal is an answer, not a fault to retry (the tracker retries twice by default).
        assert [r for r in requests if "log-batch" in r] == ["POST /api/2.0/mlflow/runs/log-batch"]
        assert len(warnings) == 1 and "refused the call" in warnings[0] and url in warnings[0]
        # The tracker is not taken for down: the next call goes through.
        assert tracker.start_run("after a refusal", params={}, tags={}) is not None
        assert any("runs/create" in r for r in requests)
    assert len(warnings) == 1


def test_a_tracker_that_is_down_warns_once_and_records_nothing() -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    warnings: list[str] = []
    tracker = MlflowTracker(uri, experiment_name(), warnings.append)
    started = time.monotonic()
    run_id = tracker.start_run("demo_classifier 2026-01-01", params={"model.C": 1.0}, tags={"a": "b"})
    ok_metrics = tracker.log_metrics(run_id, {"accuracy": 0.9})
    model_uri = tracker.log_model(run_id, LogisticRegression())
    ok_end = tracker.end_run(run_id)
    seconds = time.monotonic() - started
    print(f"dead tracker, start_run..end_run: {seconds:.2f}s")
    assert (run_id, ok_metrics, model_uri, ok_end) == (None, False, None, False)
    # The run was never created: the later calls have nothing to record and say nothing more.
    assert len(warnings) == 1, warnings
    assert uri in warnings[0] and "did not answer" in warnings[0] and "was not created" in warnings[0]
    assert "connection refused" in warnings[0]


def test_a_tracker_that_goes_down_during_a_run_is_skipped_after_the_first_failure() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    warnings: list[str] = []
    tracker = MlflowTracker(uri, experiment_name(), warnings.append, retries=2, timeout_s=2.0)
    run_id = "0123456789abcdef0123456789abcdef"  # a run created before the tracker went down
    names = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    http_settings = {name: os.environ.get(name) for name in names}
    started = time.monotonic()
    results = (
        tracker.log_metrics(run_id, {"accuracy": 0.9}),
        tracker.log_model(run_id, LogisticRegression()),
        tracker.end_run(run_id, status="FAILED"),
    )
    seconds = time.monotonic() - started
    print(f"tracker down mid-run, log_metrics..end_run: {seconds:.2f}s")
    assert results == (False, None, False)
    assert len(warnings) == 3, warnings
    assert all(uri in w for w in warnings)
    assert "did not answer after 3 tries" in warnings[0] and "metrics" in warnings[0]
    assert "skipped" in warnings[1] and "model" in warnings[1]
    assert "skipped" in warnings[2] and "FAILED" in warnings[2]
    # MLflow's HTTP settings are ours only during the calls.
    assert {k: os.environ.get(k) for k in http_settings} == http_settings


def test_the_tracking_uri_is_the_pipelines_else_mlflows_variable() -> None:
    env = {"MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"}
    assert tracking_uri_from("http://pipeline:5000", env) == "http://pipeline:5000"
    assert tracking_uri_from(None, env) == "http://mlflow.internal:5000"
    assert tracking_uri_from("  ", env) == "http://mlflow.internal:5000"
    assert tracking_uri_from(None, {}) is None
    assert tracking_uri_from(None, {"MLFLOW_TRACKING_URI": ""}) is None


# -- a pipeline that names the tracker (mlflow: in pipelines.yaml) ---------------------------------

TRACKED = """
    pipelines:
      - name: churn
        landing: churn
        version: "2.1"
        model:
          estimator: random_forest
          params: {{n_estimators: 30, max_depth: 8}}
          variants: [{{max_depth: 1, n_estimators: 1}}, {{max_depth: 8}}]
        gate: {{min_accuracy: 0.8, min_recall: {{"1": 0.5}}}}
        evaluation: {{slices: [mean radius]}}
        mlflow: {{tracking_uri: "{uri}", experiment: {experiment}}}
        demo_data: breast_cancer
"""


def _train_variants_and_deploy(platform, built):
    """Ingest, split, each variant in its own run, then choose, gate and deploy (as the daemon does)."""
    import dagster as dg

    from ml_platform.jobs import retrain_keys
    from ml_platform_tests.support.constants import DAYS, END_DAY
    from ml_platform_tests.support.pipelines import seed
    from ml_platform_tests.support.results import step_errors

    seed(platform, "churn", "breast_cancer", "target")
    common = {"instance": platform.instance, "resources": platform.resources, "raise_on_error": False}
    runs = [
        dg.materialize(
            built.definitions,
            selection=[dg.AssetKey(["churn", "raw_data"])],
            **common,
            tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
        )
    ]
    runs.append(
        dg.materialize(built.definitions, selection=retrain_keys(built.pipeline), partition_key=END_DAY, **common)
    )
    for variant in built.pipeline.variants:
        runs.append(
            dg.materialize(
                built.definitions,
                selection=[dg.AssetKey(["churn", "variant_model"])],
                partition_key=str(built.pipeline.variant_key(END_DAY, variant)),
                **common,
            )
        )
    runs.append(
        dg.materialize(
            built.definitions,
            partition_key=END_DAY,
            **common,
            selection=[dg.AssetKey(["churn", n]) for n in ("trained_model", "model_metrics", "deployed_model")],
        )
    )
    for run in runs:
        assert run.success, step_errors(run)
    return runs


def test_each_variant_becomes_an_mlflow_run_and_the_challenger_carries_metrics_verdict_and_deploy(
    mlflow_server: str,
    platform,
    tmp_path: Path,
) -> None:
    from mlflow.tracking import MlflowClient

    from ml_platform_tests.support.constants import END_DAY
    from ml_platform_tests.support.pipelines import built_from
    from ml_platform_tests.support.variants import STRONG, WEAK

    experiment = experiment_name()
    built = built_from(TRACKED.format(uri=mlflow_server, experiment=experiment))
    deploy = _train_variants_and_deploy(platform, built)[-1]

    client = MlflowClient(tracking_uri=mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    by_variant = {r.data.tags["variant"]: r for r in runs}
    assert set(by_variant) == {WEAK, STRONG} and len(runs) == 2
    for variant, run in by_variant.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["dagster.asset_key"] == "churn/variant_model"
        assert run.data.tags["dagster.partition"] == f"{END_DAY}|{variant}"
        assert run.data.tags["pipeline_version"] == "2.1"
        assert 0 < run.data.metrics["cv_accuracy"] <= 1
        assert run.data.params["max_depth"] == ("1" if variant == WEAK else "8")
        assert "signature.json" in [a.path for a in client.list_artifacts(run.info.run_id)]
        assert run.outputs.model_outputs  # the fitted model, logged with mlflow.sklearn
    # The challenger (the better variant) has the test scores, the gate's verdict and the deploy.
    chosen = client.get_run(by_variant[STRONG].info.run_id)
    production = platform.store.production("churn")
    assert chosen.data.tags["challenger"] == "true"
    assert chosen.data.metrics["test_accuracy"] == production.metadata["metrics"]["accuracy"]
    # Each check of the gate has its tags; with two, the deploy says that both passed, with the values.
    assert chosen.data.tags["gate.accuracy_above_threshold"] == "passed"
    assert chosen.data.tags["gate.recall_of_1_above_threshold"] == "passed"
    assert chosen.data.tags["gate.recall_of_1_above_threshold.description"].startswith("recall of 1 0.")
    assert chosen.data.tags["gate"] == "passed" and "accuracy" in chosen.data.tags["gate.description"]
    assert "recall of 1 " in chosen.data.tags["gate.description"]
    assert 0.5 <= chosen.data.metrics["test_recall_of_1"] <= 1  # the gated class's own recall
    assert chosen.data.metrics["baseline_roc_auc"] == 0.5  # DummyClassifier(), beside the model's scores
    low, high = chosen.data.metrics["test_accuracy_low"], chosen.data.metrics["test_accuracy_high"]
    assert low <= chosen.data.metrics["test_accuracy"] <= high and low < high  # its bootstrap 95 % interval
    assert chosen.data.metrics["baseline_accuracy"] < chosen.data.metrics["test_accuracy"]
    # Every score of each slice (quartiles of mean radius) as the artifact slices.json.
    stored = client.download_artifacts(chosen.info.run_id, "slices.json", dst_path=str(tmp_path / "slices"))
    slices = json.loads(Path(stored).read_text())["slices"]
    assert [s["column"] for s in slices] == ["mean radius"] * 4
    assert sum(s["rows"] for s in slices) == production.metadata["metrics"]["test_rows"]
    assert all(0 <= s["scores"]["accuracy"] <= 1 for s in slices)
    assert chosen.data.tags["model_store.version"] == production.version
    assert chosen.data.tags["model_store.promoted"] == "true"
    assert chosen.data.tags["dagster.run_id"] != deploy.run_id  # the variant's own run trained it
    assert production.metadata["mlflow_run_id"] == chosen.info.run_id
    assert "test_accuracy" not in client.get_run(by_variant[WEAK].info.run_id).data.metrics
    # The asset metadata links to the MLflow run.
    link = deploy.asset_materializations_for_node("churn__model_metrics")[0].metadata["MLflow run"].value
    assert link == f"{mlflow_server}/#/experiments/{chosen.info.experiment_id}/runs/{chosen.info.run_id}"

    # Unchanged inputs again: each variant is reused, not fitted, so MLflow gets no new run, and the
    # reused model's metadata links to the run that fitted it.
    import dagster as dg

    def url(run) -> str:
        return f"{mlflow_server}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"

    for variant in built.pipeline.variants:
        again = dg.materialize(
            built.definitions,
            selection=[dg.AssetKey(["churn", "variant_model"])],
            partition_key=str(built.pipeline.variant_key(END_DAY, variant)),
            instance=platform.instance,
            resources=platform.resources,
        )
        metadata = again.asset_materializations_for_node("churn__variant_model")[0].metadata
        assert "Reused" in metadata and metadata["MLflow run"].value == url(by_variant[variant])
    assert len(client.search_runs([chosen.info.experiment_id])) == 2


def test_a_tracker_that_is_down_does_not_stop_the_pipeline_or_the_deploy(platform) -> None:
    import logging

    from ml_platform_tests.support.pipelines import built_from

    down = f"http://127.0.0.1:{free_port()}"
    built = built_from(TRACKED.format(uri=down, experiment="churn"))
    runs = _train_variants_and_deploy(platform, built)

    production = platform.store.production("churn")
    assert production is not None and production.metadata["mlflow_run_id"] is None
    for variant_run in runs[2:4]:  # each variant's run: warned, naming the tracker, and succeeded
        warned = [
            e.user_message
            for e in platform.instance.all_logs(variant_run.run_id)
            if e.level >= logging.WARNING and "MLflow tracking at" in e.user_message
        ]
        assert warned and all(down in message for message in warned), warned
