"""Batch scoring: scoring_data[day] and predictions[day] of a pipeline that declares `scoring`,
through `dg.materialize`, through `dagster asset materialize`, and through the scoring sensor; the
rows_match_signature check; predictions equal to the model's own on the same rows; during a rollout,
the open candidate's predictions beside production's, and a candidate that cannot score never
failing the day."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import textwrap
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from sklearn.tree import DecisionTreeClassifier

from ml_platform.errors import ConfigError
from ml_platform.serving import load_production_model
from ml_platform.settings import load_settings
from ml_platform.signature import FeatureSpec
from ml_platform.spec import parse_pipelines
from ml_platform_tests.support.constants import (
    BIN,
    DAYS,
    END_DAY,
    MODEL_NAME,
    ROOT,
    TARGET,
)
from ml_platform_tests.support.pipelines import built_from
from ml_platform_tests.support.platform import Platform, project_env
from ml_platform_tests.support.results import (
    check_descriptions,
    check_results,
    materialized,
    step_errors,
)

SCORING_DAY = "2026-01-08"
YAML = f"""
pipelines:
  - name: demo
    landing: .
    model_name: {MODEL_NAME}
    model: {{estimator: random_forest, params: {{n_estimators: 20}}}}
    scoring: {{landing: scoring}}
    demo_data: breast_cancer
"""
BUILT = built_from(YAML)


def scoring_rows(platform: Platform, rows: int = 40) -> pd.DataFrame:
    return pd.read_parquet(platform.landing / f"{DAYS[0]}.parquet").drop(columns=[TARGET]).head(rows)


def write_scoring(platform: Platform, day: str, frame: pd.DataFrame) -> Path:
    folder = platform.landing / "scoring"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / f"{day}.parquet", index=False)
    return folder / f"{day}.parquet"


def run(platform: Platform, selection: str, day: str = END_DAY, tags=None):
    return dg.materialize(
        BUILT.definitions,
        selection=selection,
        partition_key=day,
        instance=platform.instance,
        resources=platform.resources,
        raise_on_error=False,
        tags=tags,
    )


@pytest.fixture
def trained(seeded: Platform) -> Platform:
    ingest = dg.materialize(
        BUILT.definitions,
        selection="key:demo/raw_data",
        instance=seeded.instance,
        resources=seeded.resources,
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
    )
    assert ingest.success, step_errors(ingest)
    result = run(seeded, "key:demo/training_data+")
    assert result.success, step_errors(result)
    return seeded


def test_predictions_are_the_production_models_on_the_same_rows(trained):
    rows = scoring_rows(trained)
    write_scoring(trained, SCORING_DAY, rows)
    result = run(trained, "key:demo/scoring_data+", SCORING_DAY)
    assert result.success, step_errors(result)
    assert materialized(result) == {"scoring_data", "predictions"}
    assert check_results(result) == {"rows_match_signature": True, "no_feature_drift": True}

    predictions = pd.read_parquet(trained.assets_dir / "demo" / "predictions" / f"{SCORING_DAY}.parquet")
    model, version = load_production_model(MODEL_NAME, store_dir=str(trained.store_dir))
    assert predictions["prediction"].tolist() == model.sklearn_model.predict(rows).tolist()
    assert predictions[["proba_0", "proba_1"]].sum(axis=1).round(9).eq(1.0).all()
    assert predictions.drop(columns=["request_id", "version", "prediction", "proba_0", "proba_1"]).equals(rows)
    # No scoring.id declared: each row is named by its day and position, for joining outcomes later.
    assert predictions["request_id"].tolist() == [f"{SCORING_DAY}-{i:06d}" for i in range(len(rows))]
    assert set(predictions["version"]) == {version.version}
    metadata = result.asset_materializations_for_node("demo__predictions")[0].metadata
    assert metadata["Model version"].value == version.version and metadata["sha256"].value == version.sha256
    assert {r.data["Class"] for r in metadata["Predicted classes"].value.records} <= {"0", "1"}


PRODUCTION_COLUMNS = ["request_id", "version", "prediction", "proba_0", "proba_1"]
CANDIDATE_COLUMNS = ["candidate_version", "candidate_prediction", "candidate_proba_0", "candidate_proba_1"]


def read_predictions(platform: Platform) -> pd.DataFrame:
    return pd.read_parquet(platform.assets_dir / "demo" / "predictions" / f"{SCORING_DAY}.parquet")


def predictions_metadata(result) -> dict:
    return result.asset_materializations_for_node("demo__predictions")[0].metadata


def save_candidate(platform: Platform, extra_column: str | None = None) -> str:
    """Another model of the same columns (a depth-2 tree, not production's forest) stored as a new
    version with production's record and made the open candidate; ``extra_column``: its signature
    also asks for that column."""
    store = platform.store
    production = store.production(MODEL_NAME)
    record = production.record
    signature = record.fit.signature
    frame = pd.read_parquet(platform.landing / f"{DAYS[1]}.parquet")
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(frame[signature.columns], frame[TARGET])
    if extra_column:
        wider = dataclasses.replace(signature, features=(*signature.features, FeatureSpec(extra_column, "numeric")))
        record = dataclasses.replace(record, fit=dataclasses.replace(record.fit, signature=wider))
    version = store.save_version(MODEL_NAME, model, record).version
    store.promote(MODEL_NAME, version, reason="test: a rollout", actor="test", role="candidate")
    return version


def test_an_open_candidate_scores_beside_production(trained):
    rows = scoring_rows(trained)
    write_scoring(trained, SCORING_DAY, rows)
    alone = run(trained, "key:demo/scoring_data+", SCORING_DAY)
    assert alone.success, step_errors(alone)
    without = read_predictions(trained)
    assert not [c for c in without.columns if c.startswith("candidate_")]

    candidate = save_candidate(trained)
    result = run(trained, "key:demo/scoring_data+", SCORING_DAY)
    assert result.success, step_errors(result)
    predictions = read_predictions(trained)
    # Production's answers are exactly those of the run without a candidate; the candidate's are beside them.
    assert predictions.drop(columns=CANDIDATE_COLUMNS).equals(without)
    assert list(predictions.columns[-len(CANDIDATE_COLUMNS) :]) == CANDIDATE_COLUMNS
    assert set(predictions["candidate_version"]) == {candidate}
    model, _ = load_production_model(MODEL_NAME, store_dir=str(trained.store_dir), version=candidate)
    assert (
        predictions["candidate_prediction"].tolist()
        == model.sklearn_model.predict(rows[model.signature.columns]).tolist()
    )
    expected_proba = model.sklearn_model.predict_proba(rows[model.signature.columns])
    assert predictions[["candidate_proba_0", "candidate_proba_1"]].to_numpy().tolist() == expected_proba.tolist()
    metadata = predictions_metadata(result)
    assert metadata["Model version"].value == without["version"].iloc[0]
    assert metadata["Candidate version"].value == candidate
    assert metadata["Candidate rows scored"].value == float(len(rows))
    disagreement = float((predictions["prediction"] != predictions["candidate_prediction"]).mean())
    assert metadata["Disagreement with the candidate"].value == pytest.approx(disagreement)


@pytest.mark.parametrize("damage", ["needs_a_column", "corrupted"])
def test_a_candidate_that_cannot_score_leaves_production_answering(trained, damage):
    rows = scoring_rows(trained)
    write_scoring(trained, SCORING_DAY, rows)
    candidate = save_candidate(trained, extra_column="loyalty_years" if damage == "needs_a_column" else None)
    if damage == "corrupted":
        key = f"{MODEL_NAME}/{candidate}/model.joblib"
        trained.store.write_bytes(key, trained.store.read_bytes(key) + b"\0")
    result = run(trained, "key:demo/scoring_data+", SCORING_DAY)
    assert result.success, step_errors(result)
    assert materialized(result) == {"scoring_data", "predictions"}

    predictions = read_predictions(trained)
    model, version = load_production_model(MODEL_NAME, store_dir=str(trained.store_dir))
    assert predictions["prediction"].tolist() == model.sklearn_model.predict(rows).tolist()
    assert set(predictions["version"]) == {version.version}
    assert predictions[PRODUCTION_COLUMNS[2:]].notna().all().all()
    assert predictions[CANDIDATE_COLUMNS].isna().all().all()
    why = "missing feature column(s) 'loyalty_years'" if damage == "needs_a_column" else "sha256"
    metadata = predictions_metadata(result)
    assert metadata["Candidate version"].value == candidate
    assert metadata["Candidate rows scored"].value == 0.0
    assert why in metadata["Candidate problem"].value
    assert "Disagreement with the candidate" not in metadata
    logs = [e.user_message for e in trained.instance.all_logs(result.run_id)]
    assert any(candidate in line and why in line and "did not score" in line for line in logs), logs


def test_a_closed_candidate_adds_no_columns(trained):
    rows = scoring_rows(trained)
    write_scoring(trained, SCORING_DAY, rows)
    save_candidate(trained)
    trained.store.close_candidate(MODEL_NAME, "aborted", "test")
    result = run(trained, "key:demo/scoring_data+", SCORING_DAY)
    assert result.success, step_errors(result)
    assert list(read_predictions(trained).columns) == ["request_id", *rows.columns, *PRODUCTION_COLUMNS[1:]]
    assert not [k for k in predictions_metadata(result) if k.startswith("Candidate")]


def test_rows_that_break_the_signature_are_refused_before_prediction(trained):
    write_scoring(trained, SCORING_DAY, scoring_rows(trained).drop(columns=["mean area"]))
    result = run(trained, "key:demo/scoring_data+", SCORING_DAY)
    assert not result.success
    assert check_results(result)["rows_match_signature"] is False
    assert "missing feature column(s) 'mean area'" in check_descriptions(result)["rows_match_signature"]
    assert materialized(result) == {"scoring_data"}


def test_without_a_production_model_nothing_is_scored(platform, demo_frame):
    write_scoring(platform, SCORING_DAY, demo_frame.drop(columns=[TARGET]).head(10))
    result = run(platform, "key:demo/scoring_data+", SCORING_DAY)
    assert not result.success and materialized(result) == {"scoring_data"}
    assert "has no production version" in check_descriptions(result)["rows_match_signature"]


def test_the_scoring_sensor_scores_each_new_or_changed_file_once(trained):
    sensor = BUILT.sensor("scoring_sensor")
    assert sensor.job_name == "demo_scoring"

    def tick(cursor=None):
        context = dg.build_sensor_context(
            instance=trained.instance, cursor=cursor, resources={"landing_zone": trained.resources["landing_zone"]}
        )
        return sensor(context), context

    path = write_scoring(trained, SCORING_DAY, scoring_rows(trained))
    result, context = tick()
    (request,) = result.run_requests
    assert request.partition_key == SCORING_DAY and request.run_key.startswith(f"score:{SCORING_DAY}:")
    scored = run(trained, "key:demo/scoring_data+", SCORING_DAY, tags=request.tags)
    assert scored.success, step_errors(scored)
    again, _ = tick(result.cursor)
    assert not again.run_requests  # the same file: nothing new
    write_scoring(trained, SCORING_DAY, scoring_rows(trained, rows=25))
    path.touch()
    changed, _ = tick(result.cursor)
    (request,) = changed.run_requests
    assert request.partition_key == SCORING_DAY


def test_scoring_through_the_cli(trained, tmp_path):
    write_scoring(trained, SCORING_DAY, scoring_rows(trained))
    (tmp_path / "cli").mkdir()
    env = {
        **project_env(tmp_path / "cli"),
        "ML_PLATFORM_LANDING_DIR": str(trained.landing),
        "ML_PLATFORM_MODEL_STORE_DIR": str(trained.store_dir),
        "ML_PLATFORM_ASSET_STORAGE_DIR": str(tmp_path / "cli_assets"),
    }
    pipelines = tmp_path / "pipelines.yaml"
    pipelines.write_text(textwrap.dedent(YAML))
    env["ML_PLATFORM_PIPELINES"] = str(pipelines)
    proc = subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "ml_platform.definitions",
            "--select",
            "key:demo/scoring_data+",
            "--partition",
            SCORING_DAY,
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    written = pd.read_parquet(tmp_path / "cli_assets" / "demo" / "predictions" / f"{SCORING_DAY}.parquet")
    model, _ = load_production_model(MODEL_NAME, store_dir=str(trained.store_dir))
    assert written["prediction"].tolist() == model.predict(scoring_rows(trained)).tolist()
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (record,) = instance.fetch_materializations(dg.AssetKey(["demo", "predictions"]), limit=5).records
        pointer = json.loads((trained.store_dir / MODEL_NAME / "production.json").read_text())
        assert record.asset_materialization.metadata["Model version"].value == pointer["version"]


def test_the_scoring_landing_is_validated_at_load():
    with pytest.raises(ConfigError) as raised:
        parse_pipelines("pipelines:\n  - name: churn\n    scoring: {landing: 3, extra: 1}\n", "t.yaml", load_settings())
    assert "pipelines[0] (churn): scoring.extra: unknown key" in str(raised.value)
