"""The deployment gate: a weak model never replaces production, and neither does a backfill."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform.demo import demo_days
from ml_platform_tests.support.constants import (
    DAYS,
    END_DAY,
    MODEL_NAME,
    TARGET,
    WINDOW,
)
from ml_platform_tests.support.good_platform import deployed  # noqa: F401
from ml_platform_tests.support.results import check_results, materialized, step_errors

GATE = "accuracy_above_threshold"
GATE_OP = "demo__model_metrics_accuracy_above_threshold"
SIGNATURE = "signature_matches_production"
DEFAULT_MIN_ACCURACY = 0.8
# A window that ends the day before DAYS starts, so both windows can be ingested in one run.
OLD_END = "2025-12-31"
OLD_DAYS = demo_days(OLD_END, WINDOW)


def ingest_range(platform, days: list[str]) -> dg.ExecuteInProcessResult:
    result = platform.ingest_range(days)
    assert result.success, step_errors(result)
    assert all(check_results(result).values())
    return result


def add_label_noise(platform, days: list[str], seed: int = 0) -> None:
    """Shuffle the target of every landing day: the features no longer predict it."""
    rng = np.random.default_rng(seed)
    for day in days:
        path = platform.landing / f"{day}.parquet"
        frame = pd.read_parquet(path)
        frame[TARGET] = rng.permutation(frame[TARGET].to_numpy())
        frame.to_parquet(path, index=False)


def gate_evaluation(result: dg.ExecuteInProcessResult):
    return next(
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.check_name == GATE
    )


def production_snapshot(platform, rows: pd.DataFrame) -> tuple[str, bytes, list]:
    """Production version, the pointer's bytes, and what the production model predicts."""
    model, version = platform.store.load(MODEL_NAME)
    pointer = (platform.store_dir / MODEL_NAME / "production.json").read_bytes()
    return version.version, pointer, model.predict(rows).tolist()


def deploy_metadata(result: dg.ExecuteInProcessResult) -> dict:
    metadata = result.asset_materializations_for_node("demo__deployed_model")[0].metadata
    return {key: value.value for key, value in metadata.items()}


@pytest.fixture
def rows(demo_frame) -> pd.DataFrame:
    return demo_frame.drop(columns=[TARGET])


def test_gate_blocks_a_noisy_model_and_production_stays(platform, rows):
    platform.seed()
    ingest_range(platform, DAYS)
    good = platform.train()
    assert good.success, step_errors(good)
    before = production_snapshot(platform, rows)
    good_accuracy = platform.store.production(MODEL_NAME).metadata["metrics"]["accuracy"]
    assert good_accuracy >= DEFAULT_MIN_ACCURACY

    add_label_noise(platform, DAYS)
    ingest_range(platform, DAYS)  # shuffled labels are valid data: every raw_data check passes
    noisy = platform.train()

    assert not noisy.success
    assert check_results(noisy) == {GATE: False, SIGNATURE: True}
    evaluation = gate_evaluation(noisy)
    accuracy = evaluation.metadata["Accuracy"].value
    assert evaluation.metadata["Threshold"].value == DEFAULT_MIN_ACCURACY
    assert 0.3 < accuracy < DEFAULT_MIN_ACCURACY  # about chance level
    assert f"{accuracy:.4f}" in evaluation.description and "threshold 0.8" in evaluation.description
    assert GATE in step_errors(noisy)
    assert "model_metrics" in materialized(noisy)  # the weak score is recorded ...
    assert "deployed_model" not in materialized(noisy)  # ... but nothing is deployed
    assert production_snapshot(platform, rows) == before
    assert len(platform.store.list_versions(MODEL_NAME)) == 1


def _logs(platform, result) -> str:
    return "\n".join(e.user_message for e in platform.instance.all_logs(result.run_id))


def test_a_model_the_gate_stopped_is_reused_from_its_stored_output_and_stopped_again(platform):
    platform.seed()
    add_label_noise(platform, DAYS)
    ingest_range(platform, DAYS)
    stopped = platform.train()
    assert not stopped.success and check_results(stopped)[GATE] is False
    assert platform.store.list_versions(MODEL_NAME) == []  # never deployed, so not in the model store

    # Unchanged inputs: the partition's stored trained_model is the same recipe (Dagster's data
    # version says so, the loaded model's identity agrees), so it is not fitted again.
    again = platform.train()
    trained = again.asset_materializations_for_node("demo__trained_model")[0]
    assert trained.metadata["Reused"].value == f"stored {END_DAY} (same recipe)"
    assert "fitting " not in _logs(platform, again)
    assert (
        trained.tags["dagster/data_version"]
        == stopped.asset_materializations_for_node("demo__trained_model")[0].tags["dagster/data_version"]
    )
    # ... and the gate judges it as it judged the fresh fit: the same score, stopped again.
    assert not again.success and check_results(again)[GATE] is False
    assert gate_evaluation(again).metadata["Accuracy"].value == gate_evaluation(stopped).metadata["Accuracy"].value

    # A damaged stored model is not reused: the run says so and fits again.
    (stored,) = (platform.assets_dir / "demo" / "trained_model").glob(f"{END_DAY}.*")
    stored.write_bytes(stored.read_bytes()[:100])
    damaged = platform.train()
    logs = _logs(platform, damaged)
    assert f"the stored model of {END_DAY} has this recipe but cannot be reused: it cannot be read" in logs
    assert "fitting RandomForestClassifier" in logs
    assert "Reused" not in damaged.asset_materializations_for_node("demo__trained_model")[0].metadata
    assert check_results(damaged)[GATE] is False

    # refit: true fits even so, and records why it was forced.
    refit = platform.train(run_config={"ops": {"demo__trained_model": {"config": {"refit": True}}}})
    meta = refit.asset_materializations_for_node("demo__trained_model")[0].metadata
    assert meta["Refit"].value == f"forced by run config (the stored {END_DAY} has the same recipe)"
    assert "fitting RandomForestClassifier" in _logs(platform, refit)


def test_min_accuracy_zero_without_the_baseline_lets_the_noisy_model_deploy(platform):
    platform.seed()
    add_label_noise(platform, DAYS)
    ingest_range(platform, DAYS)

    default = platform.train()
    assert not default.success and check_results(default) == {GATE: False, SIGNATURE: True}
    assert platform.store.production(MODEL_NAME) is None

    # No threshold left, but the noisy model does not beat "always the majority class".
    any_accuracy = platform.train(run_config={"ops": {GATE_OP: {"config": {"min_accuracy": 0.0}}}})
    assert not any_accuracy.success
    assert "does not beat the baseline DummyClassifier() (" in gate_evaluation(any_accuracy).description
    assert platform.store.production(MODEL_NAME) is None

    # beat_baseline: false judges by the threshold alone, as before the baseline.
    config = {"min_accuracy": 0.0, "beat_baseline": False}
    result = platform.train(run_config={"ops": {GATE_OP: {"config": config}}})

    assert result.success, step_errors(result)
    evaluation = gate_evaluation(result)
    assert evaluation.passed
    assert evaluation.metadata["Threshold"].value == 0.0
    assert evaluation.metadata["Accuracy"].value == gate_evaluation(default).metadata["Accuracy"].value
    deployed = deploy_metadata(result)
    assert deployed["Promoted"] is True
    production = platform.store.production(MODEL_NAME)
    assert production.version == deployed["Version"]
    assert production.metadata["metrics"]["accuracy"] < DEFAULT_MIN_ACCURACY


def test_backfill_of_an_older_day_does_not_replace_a_newer_production_model(platform, rows):
    platform.seed()  # DAYS, ending END_DAY
    platform.seed(end_day=OLD_END, seed=1)  # the week before, with different rows
    ingest_range(platform, OLD_DAYS + DAYS)

    newer = platform.train(END_DAY)
    assert newer.success, step_errors(newer)
    assert deploy_metadata(newer)["Promoted"] is True
    before = production_snapshot(platform, rows)
    newer_version = before[0]

    backfill = platform.train(OLD_END)

    assert backfill.success, step_errors(backfill)
    assert check_results(backfill) == {GATE: True, SIGNATURE: True}  # a good model: only its age keeps it out
    deployed = deploy_metadata(backfill)
    assert deployed["Promoted"] is False
    assert deployed["Production version"] == newer_version
    assert deployed["Version"] != newer_version
    assert "newer data" in deployed["Outcome"] and END_DAY in deployed["Outcome"]
    assert production_snapshot(platform, rows) == before
    assert platform.store.production(MODEL_NAME).metadata["data_as_of"] == END_DAY
    # The backfilled model is kept as a version, for the record, but does not serve.
    stored = {v.version: v.metadata["data_as_of"] for v in platform.store.list_versions(MODEL_NAME)}
    assert stored == {newer_version: END_DAY, deployed["Version"]: OLD_END}
