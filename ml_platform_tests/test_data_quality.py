"""The data contract: each rule of quality.py on its own, then the five blocking raw_data checks in
the asset graph (a failing check stops training and deployment in the same run)."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform import quality
from ml_platform_tests.conftest import (
    DAYS,
    END_DAY,
    MODEL_NAME,
    TARGET,
    check_descriptions,
    check_results,
    materialized,
    step_errors,
)

DOWNSTREAM = {"training_data", "trained_model", "deployed_model"}
BAD_DAY = DAYS[-1]
NULL_COLUMN = "mean radius"


# -- helpers -----------------------------------------------------------------------------------


def frame(**columns) -> pd.DataFrame:
    """A small frame with the given feature columns and a two-class target."""
    rows = len(next(iter(columns.values())))
    data = dict(columns)
    data.setdefault(TARGET, [i % 2 for i in range(rows)])
    return pd.DataFrame(data)


def ingest_range(platform, days: list[str], expect_success: bool = True) -> dg.ExecuteInProcessResult:
    result = platform.ingest_range(days)
    assert result.success == expect_success, step_errors(result)
    return result


def replace_day(platform, day: str, frame: pd.DataFrame, fmt: str = "parquet") -> None:
    """Put ``frame`` as the only landing file of ``day``."""
    for ext in ("parquet", "csv"):
        (platform.landing / f"{day}.{ext}").unlink(missing_ok=True)
    platform.write_day(day, frame, fmt)


def landing_frame(platform, day: str) -> pd.DataFrame:
    return pd.read_parquet(platform.landing / f"{day}.parquet")


def with_nulls(day_frame: pd.DataFrame, share: float = 0.3) -> pd.DataFrame:
    bad = day_frame.copy()
    bad.loc[: round(len(bad) * share) - 1, NULL_COLUMN] = np.nan
    return bad


def training_data_metadata(result: dg.ExecuteInProcessResult) -> dict:
    return result.asset_materializations_for_node("demo__training_data")[0].metadata


def days_left_out(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    table = training_data_metadata(result)["Days left out"].value
    return {record.data["Day"]: record.data["Reason"] for record in table.records}


# -- (a) the rules, on purpose-built frames ------------------------------------------------------


def test_not_empty_passes_with_rows():
    result = quality.not_empty(frame(a=[1.0, 2.0]))
    assert result.passed
    assert result.metadata["Rows"] == 2


def test_not_empty_fails_without_rows():
    result = quality.not_empty(frame(a=[1.0, 2.0]).iloc[:0])
    assert not result.passed
    assert "no rows" in result.message
    assert result.metadata["Rows"] == 0


def test_target_column_present_passes():
    result = quality.target_present(frame(a=[1.0, 2.0]), TARGET)
    assert result.passed
    assert result.name == "target_column_present"


def test_target_column_missing_fails_naming_target_and_columns():
    result = quality.target_present(pd.DataFrame({"a": [1.0], "label": [0]}), TARGET)
    assert not result.passed
    assert repr(TARGET) in result.message
    assert "missing" in result.message
    assert "a" in result.message and "label" in result.message  # what the file has instead


@pytest.mark.parametrize(
    ("nulls", "threshold", "passed"),
    [
        (0, 0.1, True),
        (1, 0.1, True),  # exactly at the threshold: allowed
        (2, 0.1, False),  # just above
        (0, 0.0, True),  # a zero threshold allows no nulls at all ...
        (1, 0.0, False),  # ... and one null breaks it
        (10, 1.0, True),  # a threshold of 1 allows an all-null column
    ],
)
def test_null_ratio_threshold_boundary(nulls, threshold, passed):
    values = [np.nan] * nulls + [float(i) for i in range(10 - nulls)]
    result = quality.null_ratio(frame(a=values), threshold)
    assert result.passed is passed
    assert result.metadata["Threshold"] == threshold
    assert result.metadata["Max null ratio"] == pytest.approx(nulls / 10)
    if not passed:
        assert "a (" in result.message and f"above {threshold}" in result.message
        assert result.metadata["Worst column"] == "a"


def test_null_ratio_names_every_column_over_the_threshold():
    result = quality.null_ratio(
        frame(a=[np.nan, np.nan, 1.0, 2.0], b=[np.nan, 1.0, 2.0, 3.0], c=[1.0, 2.0, 3.0, 4.0]), 0.2
    )
    assert not result.passed
    assert "a (0.500)" in result.message and "b (0.250)" in result.message
    assert "c (" not in result.message


def test_null_ratio_fails_on_an_empty_frame():
    result = quality.null_ratio(frame(a=[1.0]).iloc[:0], 0.1)
    assert not result.passed
    assert "no rows" in result.message


def test_feature_columns_numeric_bool_and_categorical_pass():
    result = quality.feature_types(
        frame(
            x=[1.5, 2.5, 3.5, 4.5],
            n=[1, 2, 3, 4],
            flag=[True, False, True, False],
            segment=["north", "south", "east", "west"],
            kind=pd.Categorical(["a", "b", "a", "b"]),
        ),
        TARGET,
    )
    assert result.passed, result.message
    assert result.metadata["Feature columns"] == 5


def test_categorical_strings_are_fine_even_with_a_few_numbers():
    values = ["north", "south", "east", "west", "42"] * 4
    result = quality.feature_types(frame(segment=values), TARGET)
    assert result.passed, result.message


@pytest.mark.parametrize(
    "values",
    [
        pd.date_range("2026-01-01", periods=6),
        pd.date_range("2026-01-01", periods=6, tz="UTC"),
        pd.to_timedelta(range(6), unit="s"),
    ],
    ids=["datetime", "datetime-tz", "timedelta"],
)
def test_datetime_column_fails_naming_column_and_type(values):
    result = quality.feature_types(frame(x=[1.0] * 6, signup_date=values), TARGET)
    assert not result.passed
    assert "'signup_date'" in result.message
    assert "64" in result.message  # the dtype, e.g. datetime64[us]
    assert "'x'" not in result.message


def test_mixed_python_types_fail_naming_column_and_types():
    values = pd.Series([1, "two", 3.0, None, "five", 6], dtype=object)
    result = quality.feature_types(frame(amount=values), TARGET)
    assert not result.passed
    assert "'amount'" in result.message
    assert "mixes Python types" in result.message
    for kind in ("int", "str", "float"):
        assert kind in result.message


@pytest.mark.parametrize("garbage", ["n/a!", "abc"])
@pytest.mark.parametrize("dtype", ["str", object])
def test_numeric_column_with_string_garbage_fails_naming_column_and_value(garbage, dtype):
    values = pd.Series([str(float(i)) for i in range(19)] + [garbage], dtype=dtype)
    result = quality.feature_types(frame(mean_radius=values, ok=np.arange(20.0)), TARGET)
    assert not result.passed
    assert "'mean_radius'" in result.message
    assert garbage in result.message
    assert "'ok'" not in result.message


def test_numbers_stored_as_text_fail():
    result = quality.feature_types(frame(price=[str(i * 1.5) for i in range(10)]), TARGET)
    assert not result.passed
    assert "'price'" in result.message
    assert "numbers stored as text" in result.message


def test_a_declared_feature_column_missing_fails_schema_matches_naming_it():
    schema = quality.Schema(("a", "b", "c"), {}, "the features of pipelines.yaml")
    results = {r.name: r for r in quality.evaluate(frame(a=[1.0, 2.0]), TARGET, schema, 0.1)}
    assert not results["schema_matches"].passed
    assert "missing feature column(s) 'b', 'c'" in results["schema_matches"].message
    assert "the features of pipelines.yaml" in results["schema_matches"].message
    assert results["feature_columns_valid"].passed  # presence is schema_matches' concern alone


def test_columns_outside_the_schema_are_ignored_by_default_and_not_judged():
    # An extra date column would fail feature_columns_valid; outside the schema it is left out.
    day = frame(a=[1.0, 2.0], b=["x", "y"], extra=pd.date_range("2026-01-01", periods=2))
    schema = quality.Schema(("a", "b"), {}, "the features of pipelines.yaml")
    results = {r.name: r for r in quality.evaluate(day, TARGET, schema, 0.1)}
    assert all(r.passed for r in results.values()), {n: r.message for n, r in results.items()}
    assert results["schema_matches"].warning
    assert "ignored unexpected column(s) 'extra'" in results["schema_matches"].message
    assert results["feature_columns_valid"].metadata["Feature columns"] == 2
    # With extra_columns: fail, the same day fails, naming the column and the policy.
    strict = quality.Schema(("a", "b"), {}, "the features of pipelines.yaml", extra_columns="fail")
    result = quality.schema_matches(day, TARGET, strict)
    assert not result.passed
    assert "unexpected column(s) 'extra'" in result.message and "schema.extra_columns: fail" in result.message


def test_no_feature_columns_besides_target_fails():
    result = quality.feature_types(pd.DataFrame({TARGET: [0, 1]}), TARGET)
    assert not result.passed
    assert "no feature columns" in result.message


def test_at_least_two_classes_passes():
    result = quality.target_classes(frame(a=[1.0, 2.0, 3.0]), TARGET)
    assert result.passed
    assert result.metadata["Target classes"] == 2


@pytest.mark.parametrize(
    "target",
    [[1, 1, 1], [1, np.nan, np.nan]],
    ids=["one-class", "one-class-plus-nulls"],
)
def test_at_least_two_classes_fails_on_one_class(target):
    result = quality.target_classes(pd.DataFrame({"a": [1.0, 2.0, 3.0], TARGET: target}), TARGET)
    assert not result.passed
    assert result.metadata["Target classes"] == 1
    assert "need at least 2" in result.message


def test_at_least_two_classes_fails_without_target():
    result = quality.target_classes(pd.DataFrame({"a": [1.0, 2.0]}), TARGET)
    assert not result.passed
    assert repr(TARGET) in result.message


def test_evaluate_runs_every_rule_in_a_stable_order(demo_frame):
    results = quality.evaluate(demo_frame, TARGET, None, 0.1)
    assert tuple(r.name for r in results) == quality.RULE_NAMES
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


# -- (b) the blocking raw_data checks in the graph ----------------------------------------------


def _no_rows(day_frame):
    return day_frame.iloc[:0], "parquet", "no rows"


def _no_target(day_frame):
    return day_frame.drop(columns=[TARGET]), "parquet", repr(TARGET)


def _too_many_nulls(day_frame):
    return with_nulls(day_frame), "parquet", NULL_COLUMN


def _garbage_in_numeric_column(day_frame):
    bad = day_frame.copy()
    bad[NULL_COLUMN] = bad[NULL_COLUMN].astype(str)
    bad.loc[3, NULL_COLUMN] = "n/a!"
    return bad, "csv", repr(NULL_COLUMN)


def _one_class(day_frame):
    bad = day_frame.copy()
    bad[TARGET] = 0
    return bad, "parquet", "1 target class;"


@pytest.mark.parametrize(
    ("check_name", "make_bad"),
    [
        ("not_empty", _no_rows),
        ("target_column_present", _no_target),
        ("null_ratio_below_threshold", _too_many_nulls),
        ("feature_columns_valid", _garbage_in_numeric_column),
        ("at_least_two_classes", _one_class),
    ],
)
def test_failing_check_stops_training_and_deployment_in_the_same_run(platform, check_name, make_bad):
    platform.seed()
    ingest_range(platform, DAYS[:-1])  # six good days: training could run without the bad one
    bad, fmt, named = make_bad(landing_frame(platform, BAD_DAY))
    replace_day(platform, BAD_DAY, bad, fmt)

    result = platform.materialize("*", BAD_DAY)

    assert check_results(result)[check_name] is False
    assert named in check_descriptions(result)[check_name]
    assert not result.success
    assert check_name in step_errors(result)  # the run's failure names the check
    assert "raw_data" in materialized(result)
    assert not materialized(result) & DOWNSTREAM
    assert platform.store.production(MODEL_NAME) is None
    assert platform.store.list_versions(MODEL_NAME) == []


def test_null_ratio_threshold_is_configurable_by_run_config(platform):
    platform.seed()
    ingest_range(platform, DAYS[:-1])
    bad = with_nulls(landing_frame(platform, BAD_DAY))
    assert bad[NULL_COLUMN].isna().mean() == pytest.approx(0.3, abs=0.01)
    replace_day(platform, BAD_DAY, bad)

    strict = platform.materialize("*", BAD_DAY)
    assert check_results(strict)["null_ratio_below_threshold"] is False
    assert not strict.success
    assert platform.store.production(MODEL_NAME) is None

    lenient = platform.materialize(
        "*", BAD_DAY, {"ops": {"demo__raw_data_quality": {"config": {"max_null_ratio": 0.5}}}}
    )
    evaluation = next(
        e.asset_check_evaluation_data
        for e in lenient.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.check_name == "null_ratio_below_threshold"
    )
    assert evaluation.passed
    assert evaluation.metadata["Threshold"].value == 0.5
    assert lenient.success, step_errors(lenient)
    assert all(check_results(lenient).values())
    # training_data follows the day's check results: the day passed at 0.5, so it is trained on.
    assert BAD_DAY in training_data_metadata(lenient)["Days used"].value
    assert days_left_out(lenient) == {}
    assert platform.store.production(MODEL_NAME).metadata["data_as_of"] == BAD_DAY


@pytest.mark.parametrize(
    ("make_bad", "reason"),
    [(_no_target, "target column"), (_too_many_nulls, NULL_COLUMN)],
    ids=["missing-target", "too-many-nulls"],
)
def test_day_that_failed_its_checks_earlier_is_left_out_of_training(platform, make_bad, reason):
    platform.seed()
    bad_day = DAYS[-2]
    bad, fmt, _ = make_bad(landing_frame(platform, bad_day))
    replace_day(platform, bad_day, bad, fmt)

    ingest_range(platform, DAYS[:-2])
    earlier = platform.materialize("key:demo/raw_data", bad_day)
    assert not earlier.success
    assert "raw_data" in materialized(earlier)  # stored, but flagged by its failed check
    assert not all(check_results(earlier).values())
    assert platform.materialize("key:demo/raw_data", DAYS[-1]).success

    result = platform.train(END_DAY)

    assert result.success, step_errors(result)
    left_out = days_left_out(result)
    assert list(left_out) == [bad_day]
    assert reason in left_out[bad_day]
    used = training_data_metadata(result)["Days used"].value.split(", ")
    assert used == [d for d in DAYS if d != bad_day]
    assert "deployed_model" in materialized(result)
    production = platform.store.production(MODEL_NAME)
    assert production is not None and production.metadata["data_as_of"] == END_DAY
    assert production.metadata["training_rows"] + production.metadata["metrics"]["test_rows"] == sum(
        len(landing_frame(platform, d)) for d in used
    )


def test_bad_day_inside_a_single_run_range_is_left_out_of_training(platform):
    """A range run's checks record no per-day result; training_data applies the contract itself."""
    platform.seed()
    bad_day = DAYS[2]
    replace_day(platform, bad_day, with_nulls(landing_frame(platform, bad_day)))

    ranged = ingest_range(platform, DAYS, expect_success=False)
    assert check_results(ranged)["null_ratio_below_threshold"] is False
    assert bad_day in check_descriptions(ranged)["null_ratio_below_threshold"]

    result = platform.train(END_DAY)
    assert result.success, step_errors(result)
    left_out = days_left_out(result)
    assert list(left_out) == [bad_day] and NULL_COLUMN in left_out[bad_day]
    assert platform.store.production(MODEL_NAME).metadata["data_as_of"] == END_DAY
