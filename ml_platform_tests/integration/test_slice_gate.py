"""The gate on slices through `dagster asset materialize`: every score per slice of a category and
of a number's quantile bins, the worst slices of the categorical features, and a challenger better
overall but worse on one small region held back by `slices_no_worse_than_production`, naming it."""

import json
from pathlib import Path

import pytest

from ml_platform_tests.support.materialize_cli import checks_of, materialize, model_metrics_tables, production
from ml_platform_tests.support.platform import project_env
from ml_platform_tests.support.realistic import days_of, regional_rule_day, write_days

pytestmark = pytest.mark.cli

SLICED = """\
pipelines:
  - name: sliced
    target: bought
    features: [region, x1, x2, x3]
    window_days: 7
    partitions: {start: "2026-01-01"}
    model: {estimator: random_forest, params: {n_estimators: 20, max_depth: null}}
    evaluation: {slices: [region, x1]}
    gate: {min_accuracy: 0.6, slices: {min_support: 100, max_regression: 0.05}}
"""
DAYS = days_of("2026-01-01", 7)


def test_a_slice_regression_holds_back_a_model_better_overall(tmp_path: Path):
    env = project_env(tmp_path)
    pipelines = tmp_path / "pipelines.yaml"
    pipelines.write_text(SLICED)
    env["ML_PLATFORM_PIPELINES"] = str(pipelines)
    days = DAYS
    write_days(Path(env["ML_PLATFORM_LANDING_DIR"]) / "sliced", days, regional_rule_day, rows=2000)
    materialize(env, "--select", "key:sliced/raw_data", "--partition-range", f"{days[0]}...{days[-1]}")

    # The champion: a forest of fully grown trees, which learns north's own rule (and the noise).
    materialize(env, "--select", "key:sliced/training_data+", "--partition", days[-1])
    champion = production(env, "sliced")
    assert checks_of(env, "sliced")["slices_no_worse_than_production"] == (
        True,
        "no champion to compare the slices with",
    )
    tables = model_metrics_tables(env, "sliced")
    slices = {(row["Column"], row["Slice"]): row for row in tables["Slices"]}
    assert {value for column, value in slices if column == "region"} == {"north", "south", "east", "west"}
    assert len([1 for column, _ in slices if column == "x1"]) == 4  # quantile bins of a number
    assert sum(row["Rows"] for (column, _), row in slices.items() if column == "region") == 3500
    worst = tables["Worst slices by accuracy"]  # over the categorical features: region alone here
    assert {row["Slice"] for row in worst} == {"region=north", "region=south", "region=east", "region=west"}
    assert [row["accuracy"] for row in worst] == sorted(row["accuracy"] for row in worst)

    # The challenger: leaves of at least 150 rows smooth out the noise elsewhere but cannot follow
    # north's rule. Better overall, worse on north: held back, naming the slice.
    challenger = {
        "ops": {"sliced__trained_model": {"config": {"n_estimators": 60, "max_depth": 10, "min_samples_leaf": 150}}}
    }
    args = ("--select", "key:sliced/trained_model+", "--partition", days[-1], "--config-json")
    output = materialize(env, *args, json.dumps(challenger), expect=1)
    assert "Traceback" not in output.split("STEP_FAILURE")[0]
    checks = checks_of(env, "sliced")
    passed, said = checks["accuracy_above_threshold"]
    assert passed and "kept within 0" in said, said
    tables = model_metrics_tables(env, "sliced")
    overall = next(row for row in tables["Champion vs challenger"] if row["Metric"] == "accuracy")
    assert overall["Challenger"] > overall["Champion"], overall  # the overall metric improved
    passed, said = checks["slices_no_worse_than_production"]
    assert not passed and said.startswith(f"worse than champion {champion['version']} by more than 0.05 on ")
    assert "region=north: accuracy 0." in said and "vs champion 0." in said
    north = next(
        row for row in tables["Slices vs champion"] if row["Slice"] == "region=north" and row["Metric"] == "accuracy"
    )
    assert north["Change"] < -0.05 and north["Rows"] >= 100
    assert tables["Worst slices by accuracy"][0]["Slice"] == "region=north"
    assert production(env, "sliced")["version"] == champion["version"]
