"""Pipelines declared in YAML: a regression next to the classification demo, the estimators,
per-stage timeouts, retries and resources, and two pipelines side by side through the CLI."""

import re
import subprocess

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    median_absolute_error,
    r2_score,
    root_mean_squared_error,
)

from ml_platform.demo import demo_days
from ml_platform.settings import load_settings
from ml_platform.spec import parse_pipelines
from ml_platform_tests.support.constants import BIN, END_DAY, MODEL_NAME, ROOT
from ml_platform_tests.support.good_platform import deployed  # noqa: F401 (fixtures, used by name)
from ml_platform_tests.support.pipelines import (
    DIABETES,
    built_from,
    ingest_and_train,
    seed,
)
from ml_platform_tests.support.platform import Platform, production_json, project_env
from ml_platform_tests.support.results import check_descriptions, check_results, step_errors


def run(platform: Platform, built, selection: str, day: str | None = END_DAY, run_config=None, tags=None):
    return dg.materialize(
        built.definitions,
        selection=selection,
        partition_key=day,
        instance=platform.instance,
        resources=platform.resources,
        run_config=run_config or {},
        tags=tags,
        raise_on_error=False,
    )


# -- regression ------------------------------------------------------------------------------------
def test_the_regression_pipeline_trains_gates_on_r2_and_deploys(platform):
    seed(platform, "diabetes", "diabetes", "progression")
    result = ingest_and_train(platform, DIABETES)
    assert result.success, step_errors(result)
    assert check_results(result) == {"r2_above_threshold": True, "signature_matches_production": True}

    production = platform.store.production("diabetes")
    metrics = production.metadata["metrics"]
    assert set(metrics) == {"r2", "rmse", "mae", "mape", "median_absolute_error", "test_rows"}
    assert 0.2 <= metrics["r2"] <= 1 and metrics["rmse"] > 0 and metrics["mae"] > 0
    assert production.metadata["task"] == "regression"
    assert production.metadata["estimator"] == "hist_gradient_boosting"
    assert production.metadata["gate_metric"] == "r2"
    meta = result.asset_materializations_for_node("diabetes__model_metrics")[0].metadata
    assert {"R2", "RMSE", "MAE", "MAPE", "Median absolute error", "Predicted vs actual", "Report"} <= set(meta)
    assert len(meta["Predicted vs actual"].value.records) >= 5

    # The deployed model predicts numbers on raw rows (no target column needed) that explain the
    # day: scikit-learn's R2 on those rows is far above the 0 of predicting the mean.
    model, _ = platform.store.load("diabetes")
    day = pd.read_parquet(platform.landing / "diabetes" / f"{END_DAY}.parquet")
    predicted = model.predict(day.drop(columns=["progression"]))
    assert predicted.dtype.kind == "f"
    day_r2 = r2_score(day["progression"], predicted)
    assert day_r2 > 0.3, day_r2
    # The demo pipeline's model is untouched: each pipeline has its own model name.
    assert platform.store.production(MODEL_NAME) is None

    # Every recorded metric is scikit-learn's own function of the deployed model on the test rows.
    test = result.asset_value(dg.AssetKey(["diabetes", "test_split"]))
    actual, predicted = test["progression"], model.predict(test.drop(columns=["progression"]))
    assert metrics["test_rows"] == len(test)
    assert metrics == {
        "r2": r2_score(actual, predicted),
        "rmse": root_mean_squared_error(actual, predicted),
        "mae": mean_absolute_error(actual, predicted),
        "mape": mean_absolute_percentage_error(actual, predicted),
        "median_absolute_error": median_absolute_error(actual, predicted),
        "test_rows": len(test),
    }


def test_the_regression_gate_blocks_a_model_below_its_threshold(platform):
    seed(platform, "diabetes", "diabetes", "progression")
    gate_op = "diabetes__model_metrics_r2_above_threshold"
    result = ingest_and_train(platform, DIABETES, {"ops": {gate_op: {"config": {"min_r2": 0.99}}}})
    assert not result.success
    assert check_results(result) == {"r2_above_threshold": False, "signature_matches_production": True}
    assert platform.store.production("diabetes") is None
    assert platform.store.list_versions("diabetes") == []


MAPE_GATE = """
pipelines:
  - name: diabetes
    task: regression
    landing: diabetes
    target: progression
    model: {estimator: hist_gradient_boosting, params: {max_iter: 100, learning_rate: 0.05, max_depth: 3}}
    gate: {min_r2: 0.2, max_mape: 0.1, max_median_absolute_error: 200}
"""


def test_a_regression_gated_on_mape_too_is_held_back_by_the_mape_alone(platform):
    seed(platform, "diabetes", "diabetes", "progression")
    result = ingest_and_train(platform, built_from(MAPE_GATE))
    assert not result.success
    assert check_results(result) == {
        "r2_above_threshold": True,
        "mape_below_threshold": False,
        "median_absolute_error_below_threshold": True,
        "signature_matches_production": True,
    }
    mape = check_descriptions(result)["mape_below_threshold"]
    # The value with its bootstrap 95 % interval, the threshold, the do-nothing baseline.
    assert re.match(
        r"mape 0\.\d{4} \[0\.\d{4}, 0\.\d{4}\] > threshold 0\.1; beats the baseline DummyRegressor\(\)", mape
    )
    assert mape.endswith("; no champion to compare with")
    assert platform.store.production("diabetes") is None


def test_a_regression_target_that_is_text_fails_its_check(platform, demo_frame):
    frame = demo_frame.assign(target=np.where(demo_frame["target"] == 1, "yes", "no"))
    (platform.landing / "diabetes").mkdir(parents=True)
    frame.rename(columns={"target": "progression"}).to_parquet(
        platform.landing / "diabetes" / f"{END_DAY}.parquet", index=False
    )
    result = run(platform, DIABETES, "key:diabetes/raw_data")
    assert check_results(result)["target_is_numeric"] is False


# -- estimators ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("task", "estimator", "params", "gate"),
    [
        ("classification", "hist_gradient_boosting", "{max_iter: 30}", "{min_accuracy: 0.8}"),
        ("classification", "logistic_regression", "{C: 0.5}", "{min_f1: 0.8}"),
        ("classification", "random_forest", "{n_estimators: 20, max_depth: 4}", "{min_recall: 0.8}"),
        ("regression", "random_forest", "{n_estimators: 20, max_depth: 6}", "{max_rmse: 80}"),
        ("regression", "ridge", "{alpha: 0.1}", "{max_mae: 70}"),
    ],
)
def test_each_estimator_trains_and_deploys(platform, task, estimator, params, gate):
    dataset = "breast_cancer" if task == "classification" else "diabetes"
    built = built_from(f"""
        pipelines:
          - name: est
            task: {task}
            target: y
            model: {{estimator: {estimator}, params: {params}}}
            gate: {gate}
    """)
    seed(platform, "est", dataset, "y")
    result = ingest_and_train(platform, built)
    assert result.success, step_errors(result)
    production = platform.store.production("est")
    assert production.metadata["estimator"] == estimator
    metric = gate.strip("{}").split(":")[0].split("_", 1)[1]
    assert metric in production.metadata["metrics"]
    trained = result.asset_materializations_for_node("est__trained_model")[0].metadata
    assert trained["Estimator"].value == estimator
    if estimator != "hist_gradient_boosting":  # forests: impurity importances; linear: |coefficients|
        assert len(trained["Feature importances"].value.records) > 0


def test_run_config_overrides_the_yaml_params(platform):
    built = built_from("""
        pipelines:
          - name: est
            target: y
            model: {estimator: random_forest, params: {n_estimators: 15, max_depth: 3}}
    """)
    seed(platform, "est", "breast_cancer", "y")
    result = ingest_and_train(platform, built, {"ops": {"est__trained_model": {"config": {"max_depth": 5}}}})
    assert result.success, step_errors(result)
    assert platform.store.production("est").metadata["params"] == {
        "n_estimators": 15,
        "max_depth": 5,
        "min_samples_leaf": 1,
        "random_state": 42,
        "n_jobs": -1,
    }


def test_an_imported_estimator_gets_every_param_of_the_file_and_run_config_over_them(platform):
    """`model.estimator` as an import path: scalar params are run config fields, the others are
    passed as given."""
    built = built_from("""
        pipelines:
          - name: est
            target: y
            model:
              estimator: "sklearn.linear_model:LogisticRegression"
              params: {C: 0.5, max_iter: 2000, class_weight: {0: 1.0, 1: 2.0}}
    """)
    seed(platform, "est", "breast_cancer", "y")
    result = ingest_and_train(platform, built, {"ops": {"est__trained_model": {"config": {"C": 2.0}}}})
    assert result.success, step_errors(result)
    model, production = platform.store.load("est")
    assert production.metadata["estimator"] == "sklearn.linear_model:LogisticRegression"
    estimator = model.named_steps["model"]
    assert (estimator.C, estimator.max_iter, estimator.class_weight) == (2.0, 2000, {0: 1.0, 1: 2.0})
    assert production.metadata["requirements"] == []  # scikit-learn is the platform's own


# -- the split ------------------------------------------------------------------------------------
SEED_SPLIT = """
    pipelines:
      - name: seed
        target: y
        model: {estimator: random_forest, params: {n_estimators: 100, max_depth: 10, random_state: 42}}
        split: {test_size: 0.2, random_state: 42, stratify: false}
"""


def _seed_script_accuracy(frame: pd.DataFrame) -> tuple[float, int]:
    """What the pipelines this platform replaces do: train_test_split without stratify, a
    StandardScaler, the random forest; their accuracy on the test rows."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = frame.drop(columns=["y"]), frame["y"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    scaler = StandardScaler().fit(x_train)
    model = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=42)
    model.fit(scaler.transform(x_train), y_train)
    return accuracy_score(y_test, model.predict(scaler.transform(x_test))), len(x_test)


def test_the_split_of_pipelines_yaml_reproduces_the_seed_scripts_accuracy(platform):
    built = built_from(SEED_SPLIT)
    seed(platform, "seed", "breast_cancer", "y")
    result = ingest_and_train(platform, built)
    assert result.success, step_errors(result)

    split_meta = result.asset_materializations_for_node("seed__splits")[0].metadata
    assert split_meta["Stratified"].value is False and split_meta["Test size"].value == 0.2
    frame = pd.concat(
        [pd.read_parquet(platform.landing / "seed" / f"{day}.parquet") for day in demo_days(END_DAY, 7)],
        ignore_index=True,
    )
    accuracy, test_rows = _seed_script_accuracy(frame)
    metrics = platform.store.production("seed").metadata["metrics"]
    assert metrics["test_rows"] == test_rows
    assert metrics["accuracy"] == accuracy


def test_the_split_defaults_to_stratified_and_run_config_overrides_it(platform):
    # max_regression: the rerun's model need not beat the first one to be deployed.
    built = built_from(SEED_SPLIT.replace("stratify: false", "stratify: true") + "        gate: {max_regression: 1}\n")
    seed(platform, "seed", "breast_cancer", "y")
    result = ingest_and_train(platform, built)
    assert result.success, step_errors(result)
    assert result.asset_materializations_for_node("seed__splits")[0].metadata["Stratified"].value is True

    rerun = run(
        platform,
        built,
        "key:seed/training_data+",
        run_config={"ops": {"seed__splits": {"config": {"stratify": False, "test_size": 0.3}}}},
    )
    assert rerun.success, step_errors(rerun)
    meta = rerun.asset_materializations_for_node("seed__splits")[0].metadata
    assert meta["Stratified"].value is False and meta["Test size"].value == 0.3


# -- stages: timeouts, retries, resources ----------------------------------------------------------
def test_a_fit_longer_than_the_train_timeout_is_stopped_and_nothing_is_deployed(platform):
    built = built_from("""
        pipelines:
          - name: slow
            target: y
            model: {estimator: random_forest, params: {n_estimators: 5000, max_depth: null, n_jobs: 1}}
            stages: {train: {timeout_s: 3}}
    """)
    seed(platform, "slow", "breast_cancer", "y", synthetic_rows=3000)
    result = ingest_and_train(platform, built)
    assert not result.success
    errors = step_errors(result)
    assert "the model fit of pipeline 'slow' ran longer than its limit of 3 s" in errors, errors
    assert "stages.train.timeout_s" in errors
    assert result.asset_materializations_for_node("slow__trained_model") == []
    assert platform.store.list_versions("slow") == []


def test_a_fit_within_the_train_timeout_reports_progress_from_its_process(platform):
    built = built_from("""
        pipelines:
          - name: quick
            target: y
            model: {estimator: random_forest, params: {n_estimators: 20, max_depth: 4}}
            stages: {train: {timeout_s: 300}}
    """)
    seed(platform, "quick", "breast_cancer", "y")
    result = ingest_and_train(platform, built)
    assert result.success, step_errors(result)
    messages = [e.user_message for e in platform.instance.all_logs(result.run_id)]
    assert any("fitting in a child process, stopped after 300 s" in m for m in messages), messages
    progress = [m for m in messages if m.startswith("trees ")]
    assert progress[0].startswith("trees 2/20") and progress[-1].startswith("trees 20/20"), progress
    assert platform.store.production("quick") is not None


def test_a_stage_longer_than_its_timeout_fails_naming_the_stage(platform):
    built = built_from("""
        pipelines:
          - name: tight
            target: y
            stages: {ingest: {timeout_s: 0.001, retries: 0}}
    """)
    seed(platform, "tight", "breast_cancer", "y")
    result = run(platform, built, "key:tight/raw_data")
    assert not result.success
    errors = step_errors(result)
    assert "the ingest stage of pipeline 'tight' ran longer than its limit of 0.001 s" in errors, errors


def test_stage_retries_become_retry_policies():
    built = built_from("""
        pipelines:
          - name: r
            stages: {train: {retries: 2}, ingest: {retries: 0}}
    """)
    ops = {k.to_user_string(): a.op for a in built.assets for k in a.keys}
    assert ops["r/trained_model"].retry_policy.max_retries == 2
    assert ops["r/raw_data"].retry_policy is None
    assert ops["r/deployed_model"].retry_policy.max_retries >= 1  # the storage default


# -- side by side ----------------------------------------------------------------------------------
def test_two_pipelines_side_by_side_through_the_cli(tmp_path):
    """`make demo`'s commands on a fresh project: both pipelines of pipelines.yaml, one command each."""
    env = project_env(tmp_path)
    days = demo_days(END_DAY, 7)
    for args in (
        [str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY],
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "ml_platform.definitions",
            "--select",
            "key:*/raw_data",
            "--partition-range",
            f"{days[0]}...{days[-1]}",
        ],
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "ml_platform.definitions",
            "--select",
            "key:*/training_data+",
            "--partition",
            END_DAY,
        ],
    ):
        proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-4000:])
    for model, metric in (("demo_classifier", "accuracy"), ("diabetes", "r2")):
        assert production_json(env, model)["metrics"][metric] > 0.2
    assert (tmp_path / "landing" / "diabetes" / f"{END_DAY}.parquet").is_file()
    assert (tmp_path / "landing" / f"{END_DAY}.parquet").is_file()
    for name in ("demo", "diabetes"):
        assert (tmp_path / "assets" / name / "raw_data" / f"{END_DAY}.parquet").is_file()
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.is_success for r in runs)


# -- where each pipeline's files land --------------------------------------------------------------
def test_landing_locations_resolve_under_the_root_or_replace_it(tmp_path):
    from ml_platform.backends.local import LocalLandingZone
    from ml_platform.backends.s3 import S3LandingZone, s3_resource

    local = LocalLandingZone(root=str(tmp_path))
    assert local.at(".") is local
    assert local.at("churn").root == str(tmp_path / "churn")
    assert local.at("/data/elsewhere").root == "/data/elsewhere"
    settings = load_settings(environ={"ML_PLATFORM_ENV": "prod", "ML_PLATFORM_S3_BUCKET": "models"})
    s3 = S3LandingZone(s3=s3_resource(settings), bucket="models", prefix="ml_platform/landing")
    assert (s3.at("churn").bucket, s3.at("churn").prefix) == ("models", "ml_platform/landing/churn")
    assert (s3.at("s3://other/in/here/").bucket, s3.at("s3://other/in/here/").prefix) == ("other", "in/here")


@pytest.mark.parametrize(
    ("env", "landing", "says"),
    [
        ({}, "s3://bucket/x", "'s3://bucket/x' is on S3; S3 needs ML_PLATFORM_ENV=prod"),
        (
            {"ML_PLATFORM_ENV": "prod", "ML_PLATFORM_S3_BUCKET": "b"},
            "/srv/landing",
            "'/srv/landing' is a local folder; ML_PLATFORM_ENV=prod reads from S3",
        ),
        ({}, "../outside", "'../outside' must not climb out of the landing root with '..'"),
    ],
)
def test_a_landing_the_environment_cannot_read_fails_at_load(env, landing, says):
    from ml_platform.errors import ConfigError

    settings = load_settings(environ=env)
    with pytest.raises(ConfigError) as raised:
        parse_pipelines(f"pipelines:\n  - name: p\n    landing: {landing}\n", "p.yaml", settings)
    assert str(raised.value) == f"p.yaml: pipeline 'p': landing: {says}"
