"""The whole graph on a temp instance and temp folders: what a user of `make demo` gets."""

import json

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline as SklearnPipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml_platform.asset_records import DeployedRecord
from ml_platform.errors import ModelIntegrityError
from ml_platform.serving import load_production_model
from ml_platform_tests.support.constants import DAYS, END_DAY, MODEL_NAME, TARGET
from ml_platform_tests.support.results import check_results, materialized


def test_full_graph_deploys_a_verified_model_that_predicts_raw_rows(seeded, demo_frame):
    for result in seeded.ingest():
        assert result.success
        # The seven data-contract rules and the drift check (no production model yet: nothing drifts).
        assert all(check_results(result).values()) and len(check_results(result)) == 8

    result = seeded.train()
    assert result.success
    assert materialized(result) == {
        "training_data",
        "train_split",
        "test_split",
        "trained_model",
        "model_metrics",
        "deployed_model",
    }
    assert check_results(result) == {"accuracy_above_threshold": True, "signature_matches_production": True}

    store = seeded.store
    pointer = json.loads((seeded.store_dir / MODEL_NAME / "production.json").read_text())
    version_dir = seeded.store_dir / MODEL_NAME / pointer["version"]
    assert (version_dir / "model.joblib").is_file()
    metadata = json.loads((version_dir / "metadata.json").read_text())
    for key in ("metrics", "params", "data_fingerprint", "platform_version", "sha256", "created_at"):
        assert metadata[key], key
    assert metadata["data_as_of"] == END_DAY
    assert metadata["training_rows"] + metadata["metrics"]["test_rows"] == len(demo_frame)
    assert metadata["metrics"]["accuracy"] >= 0.9

    model, version = load_production_model(MODEL_NAME, store_dir=str(seeded.store_dir))
    assert version.version == pointer["version"] == store.production(MODEL_NAME).version
    raw_rows = pd.read_parquet(seeded.landing / f"{DAYS[0]}.parquet").drop(columns=[TARGET])
    predictions = model.predict(raw_rows)
    assert len(predictions) == len(raw_rows)
    assert set(predictions) <= {0, 1}

    # The deployed_model asset records what it did.
    deploy_meta = result.asset_materializations_for_node("demo__deployed_model")[0].metadata
    assert deploy_meta["Version"].value == pointer["version"]
    assert deploy_meta["sha256"].value == metadata["sha256"]
    # Every key the deploy notifications read back is written, and reads back as what happened.
    assert set(DeployedRecord.keys()) <= set(deploy_meta)
    deployed = DeployedRecord.from_metadata(deploy_meta)
    assert (deployed.version, deployed.promoted, deployed.gate_metric) == (pointer["version"], True, "accuracy")
    assert deployed.gate_score == pytest.approx(metadata["metrics"]["accuracy"])


def test_rerun_on_unchanged_data_is_idempotent(seeded):
    seeded.ingest()
    first = seeded.train()
    second = seeded.train()
    assert first.success and second.success
    versions = seeded.store.list_versions(MODEL_NAME)
    assert len(versions) == 1
    outcome = second.asset_materializations_for_node("demo__deployed_model")[0].metadata["Outcome"].value
    assert outcome == "already in production"


def _trained_meta(result) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node("demo__trained_model")[0].metadata.items()}


def _logs(platform, result) -> str:
    """The run's log lines (context.log), as the UI shows them."""
    return "\n".join(e.user_message for e in platform.instance.all_logs(result.run_id))


def test_an_unchanged_rerun_reuses_the_stored_model_instead_of_fitting(seeded):
    seeded.ingest()
    first = seeded.train()
    assert first.success
    production = seeded.store.production(MODEL_NAME)
    assert "Reused" not in _trained_meta(first)

    second = seeded.train()
    assert second.success
    meta = _trained_meta(second)
    assert meta["Reused"] == f"{production.version} (same recipe)"
    assert "fitting " not in _logs(seeded, second) and f"reused {production.version}" in _logs(seeded, second)
    # The same version, gated and deployed as a fresh fit would be: already in production.
    assert check_results(second) == {"accuracy_above_threshold": True, "signature_matches_production": True}
    outcome = second.asset_materializations_for_node("demo__deployed_model")[0].metadata["Outcome"].value
    assert outcome == "already in production"
    assert [v.version for v in seeded.store.list_versions(MODEL_NAME)] == [production.version]
    assert meta["Training rows"] == production.metadata["training_rows"]
    # model_metrics does not score the same model twice: the challenger is the champion.
    metrics = second.asset_materializations_for_node("demo__model_metrics")[0].metadata
    assert f"the challenger is production {production.version} itself: scored once, for both" in _logs(seeded, second)
    assert metrics["Champion version"].value == production.version
    assert metrics["Champion Accuracy"].value == metrics["Challenger Accuracy (same rows)"].value
    first_metrics = first.asset_materializations_for_node("demo__model_metrics")[0].metadata
    assert metrics["Accuracy"].value == first_metrics["Accuracy"].value
    # Dagster's data version of trained_model is the recipe: unchanged, so nothing downstream is stale.
    for result in (first, second):
        materialization = result.asset_materializations_for_node("demo__trained_model")[0]
        assert materialization.tags["dagster/data_version"] == production.metadata["identity"]

    # Once more: now model_metrics' inputs are unchanged too (the same model, test split and
    # production version), so its stored score is reused instead of scoring again.
    third = seeded.train()
    assert third.success
    reused = third.asset_materializations_for_node("demo__model_metrics")[0]
    assert reused.metadata["Reused"].value == f"stored {END_DAY} (same model, test split and production version)"
    lines = _logs(seeded, third).splitlines()
    assert any(line.endswith("no scoring") for line in lines)
    assert not [line for line in lines if line.startswith("accuracy ") or "itself: scored once" in line]
    assert (
        reused.tags["dagster/data_version"]
        == second.asset_materializations_for_node("demo__model_metrics")[0].tags["dagster/data_version"]
    )
    for name in ("Accuracy", "Champion Accuracy", "Champion version", "Rows compared", "Signature vs production"):
        assert reused.metadata[name].value == metrics[name].value, name
    assert check_results(third) == check_results(second)
    outcome = third.asset_materializations_for_node("demo__deployed_model")[0].metadata["Outcome"].value
    assert outcome == "already in production"
    # A damaged stored score is not reused: the run says so and scores again.
    (stored,) = (seeded.assets_dir / "demo" / "model_metrics").glob(f"{END_DAY}.*")
    stored.write_bytes(b"not a joblib file")
    fourth = seeded.train()
    assert fourth.success
    lines = _logs(seeded, fourth).splitlines()
    assert any(line.startswith(f"the stored model_metrics of {END_DAY} cannot be read") for line in lines), lines
    assert any(line.startswith("accuracy ") for line in lines)
    assert "Reused" not in fourth.asset_materializations_for_node("demo__model_metrics")[0].metadata


def test_a_forced_refit_fits_again_and_says_so(seeded):
    seeded.ingest()
    assert seeded.train().success
    production = seeded.store.production(MODEL_NAME)
    refit = seeded.train(run_config={"ops": {"demo__trained_model": {"config": {"refit": True}}}})
    assert refit.success
    meta = _trained_meta(refit)
    assert "Reused" not in meta
    assert meta["Refit"] == f"forced by run config ({production.version} has the same recipe)"
    assert "fitting RandomForestClassifier" in _logs(seeded, refit)
    # Same recipe, same model: deploy keeps the version (a forest with a fixed seed fits the same trees).
    assert seeded.store.production(MODEL_NAME).version == production.version


def test_a_changed_param_is_a_new_recipe(seeded):
    seeded.ingest()
    assert seeded.train().success
    changed = seeded.train(run_config={"ops": {"demo__trained_model": {"config": {"n_estimators": 20}}}})
    assert changed.success
    assert "Reused" not in _trained_meta(changed) and "fitting " in _logs(seeded, changed)


def test_tampered_artifact_is_refused(seeded):
    seeded.ingest()
    assert seeded.train().success
    version = seeded.store.production(MODEL_NAME).version
    artifact = seeded.store_dir / MODEL_NAME / version / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    try:
        load_production_model(MODEL_NAME, store_dir=str(seeded.store_dir))
    except ModelIntegrityError as exc:
        assert "sha256" in str(exc) and version in str(exc)
    else:
        raise AssertionError("a changed artifact was loaded")


def _plain_model() -> SklearnPipeline:
    numeric = SklearnPipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = SklearnPipeline(
        [("impute", SimpleImputer(strategy="most_frequent")), ("encode", OneHotEncoder(handle_unknown="ignore"))]
    )
    return SklearnPipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numeric", numeric, make_column_selector(dtype_include="number")),
                        ("categorical", categorical, make_column_selector(dtype_exclude="number")),
                    ]
                ),
            ),
            ("model", RandomForestClassifier(n_estimators=50, max_depth=6, random_state=7, n_jobs=1)),
        ]
    )


def test_metrics_equal_a_plain_scikit_learn_run(seeded):
    """The platform adds orchestration, not different numbers."""
    seeded.seed(synthetic_rows=300)  # includes a categorical column, to exercise one-hot encoding
    seeded.ingest()
    run_config = {
        "ops": {
            "demo__splits": {"config": {"test_size": 0.3, "random_state": 11}},
            "demo__trained_model": {"config": {"n_estimators": 50, "max_depth": 6, "random_state": 7}},
        }
    }
    result = seeded.train(run_config=run_config)
    assert result.success
    platform_metrics = seeded.store.production(MODEL_NAME).metadata["metrics"]

    # The same work by hand: the landing files in day order, the same split and parameters.
    frame = pd.concat([pd.read_parquet(seeded.landing / f"{day}.parquet") for day in DAYS], ignore_index=True)
    train, test = train_test_split(frame, test_size=0.3, random_state=11, stratify=frame[TARGET])
    model = _plain_model().fit(train.drop(columns=[TARGET]), train[TARGET])
    actual, predicted = test[TARGET], model.predict(test.drop(columns=[TARGET]))
    positive = model.predict_proba(test.drop(columns=[TARGET]))[:, 1]  # of model.classes_[1], here 1
    expected = {
        "accuracy": accuracy_score(actual, predicted),
        "balanced_accuracy": balanced_accuracy_score(actual, predicted),
        **{
            f"{name}{suffix}": score(actual, predicted, average=average)
            for name, score in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score))
            for average, suffix in (("weighted", ""), ("macro", "_macro"))
        },
        "roc_auc": roc_auc_score(actual, positive),
        "average_precision": average_precision_score(actual, positive),
        "log_loss": log_loss(actual, positive),
        "brier_score_loss": brier_score_loss(actual, positive),
        "test_rows": len(test),
    }
    assert list(model.classes_) == [0, 1]
    assert platform_metrics == pytest.approx(expected, rel=1e-12)
