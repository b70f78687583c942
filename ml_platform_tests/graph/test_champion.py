"""Champion / challenger: a new model is deployed only when it is at least as good as the production
model on the same, fresh test split (within gate.max_regression), and above the threshold."""

import io

import dagster as dg
import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score

from ml_platform.demo import seed_landing
from ml_platform.ml import row_hashes
from ml_platform_tests.support.constants import DAYS, END_DAY, MODEL_NAME
from ml_platform_tests.support.pipelines import DEMO, built_from, ingest_and_train
from ml_platform_tests.support.results import materialized, step_errors

GATE_OP = "demo__model_metrics_accuracy_above_threshold"
STUMP = {"demo__trained_model": {"config": {"n_estimators": 1, "max_depth": 1}}}


def gate(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.check_name.endswith("_threshold")
    ]
    return evaluation


def test_the_first_model_is_gated_by_the_threshold_alone(seeded):
    seeded.ingest_range()
    result = seeded.train()
    assert result.success, step_errors(result)
    evaluation = gate(result)
    assert evaluation.passed
    assert "no champion to compare with" in evaluation.description
    assert "Champion Accuracy" not in evaluation.metadata
    meta = result.asset_materializations_for_node("demo__model_metrics")[0].metadata
    assert meta["Champion version"].value == "none (first model)"


def test_a_weaker_challenger_is_not_deployed_and_the_check_shows_both_scores(seeded):
    seeded.ingest_range()
    assert seeded.train().success
    champion = seeded.store.production(MODEL_NAME)

    # A single stump: above the 0.8 threshold on this data, below the forest in production.
    result = seeded.train(run_config={"ops": STUMP})
    evaluation = gate(result)
    challenger, best = (evaluation.metadata[k].value for k in ("Challenger Accuracy", "Champion Accuracy"))
    assert challenger >= 0.8, "the stump must pass the threshold for this test to mean anything"
    assert challenger < best
    assert not evaluation.passed
    assert evaluation.metadata["Champion version"].value == champion.version
    assert f"challenger {challenger:.4f} vs champion {champion.version} {best:.4f}" in evaluation.description
    margin = DEMO.pipeline.spec.gate.max_regression  # 0.02 in pipelines.yaml
    assert evaluation.metadata["Max regression"].value == margin and challenger < best - margin
    assert f"worse by more than {margin:g}" in evaluation.description
    assert evaluation.metadata["Probability not worse"].value < 0.5  # the paired bootstrap agrees
    # Same day, same split: every test row is new to both models.
    test_rows = result.asset_materializations_for_node("demo__model_metrics")[0].metadata["Test rows"].value
    assert evaluation.metadata["Rows compared"].value == test_rows
    assert "deployed_model" not in materialized(result)
    assert seeded.store.production(MODEL_NAME).version == champion.version
    assert [v.version for v in seeded.store.list_versions(MODEL_NAME)] == [champion.version]


def test_max_regression_lets_a_slightly_weaker_challenger_through(seeded):
    seeded.ingest_range()
    assert seeded.train().success
    champion = seeded.store.production(MODEL_NAME)
    config = {**STUMP, GATE_OP: {"config": {"max_regression": 0.15}}}
    result = seeded.train(run_config={"ops": config})
    evaluation = gate(result)
    assert evaluation.metadata["Challenger Accuracy"].value < evaluation.metadata["Champion Accuracy"].value
    assert evaluation.passed, evaluation.description
    assert "kept within 0.15" in evaluation.description
    assert seeded.store.production(MODEL_NAME).version != champion.version


def test_a_better_challenger_replaces_the_champion(seeded):
    seeded.ingest_range()
    assert seeded.train(run_config={"ops": STUMP}).success  # a stump in production first
    stump = seeded.store.production(MODEL_NAME)
    # The default forest, on the same data; promoted only if the paired bootstrap is 95 % sure.
    result = seeded.train(run_config={"ops": {GATE_OP: {"config": {"confidence": 0.95}}}})
    evaluation = gate(result)
    assert evaluation.passed, evaluation.description
    assert evaluation.metadata["Challenger Accuracy"].value >= evaluation.metadata["Champion Accuracy"].value
    assert evaluation.metadata["Probability not worse"].value >= 0.95
    assert "of the paired resamples (at least the confidence 0.95)" in evaluation.description
    assert seeded.store.production(MODEL_NAME).version != stump.version


def test_both_are_scored_on_the_new_test_rows_the_champion_never_trained_on(seeded):
    """Windows overlap: part of today's test split was yesterday's training data. Both models are
    compared on the rest, so the champion gets no credit for rows it learnt."""
    seeded.ingest_range()
    assert seeded.train(DAYS[-2]).success
    champion = seeded.store.production(MODEL_NAME)
    result = seeded.train(END_DAY)  # a new day: a new window, a new test split
    evaluation = gate(result)
    assert evaluation.metadata["Champion version"].value == champion.version

    test = pd.read_parquet(seeded.assets_dir / "demo" / "test_split" / f"{END_DAY}.parquet")
    seen = np.load(io.BytesIO(seeded.store.read_extra(champion, "train_rows.npy")))
    fresh = test[~np.isin(row_hashes(test), seen)]
    assert 0 < len(fresh) < len(test)  # some of today's test rows were the champion's training rows
    assert evaluation.metadata["Rows compared"].value == len(fresh)
    model, _ = seeded.store.load(MODEL_NAME, version=champion.version)
    expected = accuracy_score(fresh["target"], model.predict(fresh.drop(columns=["target"])))
    assert evaluation.metadata["Champion Accuracy"].value == expected


def test_for_an_error_metric_lower_is_better(platform):
    built = built_from("""
        pipelines:
          - name: err
            task: regression
            target: y
            model: {estimator: hist_gradient_boosting, params: {max_iter: 100, learning_rate: 0.1}}
            gate: {max_rmse: 1000}
    """)
    seed_landing(str(platform.landing / "err"), end_day=END_DAY, days=len(DAYS), target="y", dataset="diabetes")
    assert ingest_and_train(platform, built).success
    champion = platform.store.production("err")
    # Two boosting iterations: a far larger RMSE than the champion's, under the lenient 1000.
    weak = {"ops": {"err__trained_model": {"config": {"max_iter": 2}}}}
    result = ingest_and_train(platform, built, weak)
    evaluation = gate(result)
    assert evaluation.check_name == "rmse_below_threshold"
    assert evaluation.metadata["Challenger RMSE"].value > evaluation.metadata["Champion RMSE"].value
    assert not evaluation.passed
    assert platform.store.production("err").version == champion.version
