"""The data contract: each rule of ml_platform.quality on its own, then the five blocking raw_data checks in
the asset graph (a failing check stops training and deployment in the same run)."""

import numpy as np
import pandas as pd
import pytest

from ml_platform.quality.rules import (
    RULE_NAMES,
    evaluate,
    feature_types,
    not_empty,
    null_ratio,
    target_classes,
    target_present,
)
from ml_platform.quality.schema import Schema, schema_matches
from ml_platform_tests.support.constants import DAYS, TARGET

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


# -- (a) the rules, on purpose-built frames ------------------------------------------------------


def test_not_empty_passes_with_rows():
    result = not_empty(frame(a=[1.0, 2.0]))
    assert result.passed
    assert result.metadata["Rows"] == 2


def test_not_empty_fails_without_rows():
    result = not_empty(frame(a=[1.0, 2.0]).iloc[:0])
    assert not result.passed
    assert "no rows" in result.message
    assert result.metadata["Rows"] == 0


def test_target_column_present_passes():
    result = target_present(frame(a=[1.0, 2.0]), TARGET)
    assert result.passed
    assert result.name == "target_column_present"


def test_target_column_missing_fails_naming_target_and_columns():
    result = target_present(pd.DataFrame({"a": [1.0], "label": [0]}), TARGET)
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
    result = null_ratio(frame(a=values), threshold)
    assert result.passed is passed
    assert result.metadata["Threshold"] == threshold
    assert result.metadata["Max null ratio"] == pytest.approx(nulls / 10)
    if not passed:
        assert "a (" in result.message and f"above {threshold}" in result.message
        assert result.metadata["Worst column"] == "a"


def test_null_ratio_names_every_column_over_the_threshold():
    result = null_ratio(frame(a=[np.nan, np.nan, 1.0, 2.0], b=[np.nan, 1.0, 2.0, 3.0], c=[1.0, 2.0, 3.0, 4.0]), 0.2)
    assert not result.passed
    assert "a (0.500)" in result.message and "b (0.250)" in result.message
    assert "c (" not in result.message


def test_null_ratio_fails_on_an_empty_frame():
    result = null_ratio(frame(a=[1.0]).iloc[:0], 0.1)
    assert not result.passed
    assert "no rows" in result.message


def test_feature_columns_numeric_bool_and_categorical_pass():
    result = feature_types(
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
    result = feature_types(frame(segment=values), TARGET)
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
    result = feature_types(frame(x=[1.0] * 6, signup_date=values), TARGET)
    assert not result.passed
    assert "'signup_date'" in result.message
    assert "64" in result.message  # the dtype, e.g. datetime64[us]
    assert "'x'" not in result.message


def test_mixed_python_types_fail_naming_column_and_types():
    values = pd.Series([1, "two", 3.0, None, "five", 6], dtype=object)
    result = feature_types(frame(amount=values), TARGET)
    assert not result.passed
    assert "'amount'" in result.message
    assert "mixes Python types" in result.message
    for kind in ("int", "str", "float"):
        assert kind in result.message


@pytest.mark.parametrize("garbage", ["n/a!", "abc"])
@pytest.mark.parametrize("dtype", ["str", object])
def test_numeric_column_with_string_garbage_fails_naming_column_and_value(garbage, dtype):
    values = pd.Series([str(float(i)) for i in range(19)] + [garbage], dtype=dtype)
    result = feature_types(frame(mean_radius=values, ok=np.arange(20.0)), TARGET)
    assert not result.passed
    assert "'mean_radius'" in result.message
    assert garbage in result.message
    assert "'ok'" not in result.message


def test_numbers_stored_as_text_fail():
    result = feature_types(frame(price=[str(i * 1.5) for i in range(10)]), TARGET)
    assert not result.passed
    assert "'price'" in result.message
    assert "numbers stored as text" in result.message


def test_a_declared_feature_column_missing_fails_schema_matches_naming_it():
    schema = Schema(("a", "b", "c"), {}, "the features of pipelines.yaml")
    results = {r.name: r for r in evaluate(frame(a=[1.0, 2.0]), TARGET, schema, 0.1)}
    assert not results["schema_matches"].passed
    assert "missing feature column(s) 'b', 'c'" in results["schema_matches"].message
    assert "the features of pipelines.yaml" in results["schema_matches"].message
    assert results["feature_columns_valid"].passed  # presence is schema_matches' concern alone


def test_columns_outside_the_schema_are_ignored_by_default_and_not_judged():
    # An extra date column would fail feature_columns_valid; outside the schema it is left out.
    day = frame(a=[1.0, 2.0], b=["x", "y"], extra=pd.date_range("2026-01-01", periods=2))
    schema = Schema(("a", "b"), {}, "the features of pipelines.yaml")
    results = {r.name: r for r in evaluate(day, TARGET, schema, 0.1)}
    assert all(r.passed for r in results.values()), {n: r.message for n, r in results.items()}
    assert results["schema_matches"].warning
    assert "ignored unexpected column(s) 'extra'" in results["schema_matches"].message
    assert results["feature_columns_valid"].metadata["Feature columns"] == 2
    # With extra_columns: fail, the same day fails, naming the column and the policy.
    strict = Schema(("a", "b"), {}, "the features of pipelines.yaml", extra_columns="fail")
    result = schema_matches(day, TARGET, strict)
    assert not result.passed
    assert "unexpected column(s) 'extra'" in result.message and "schema.extra_columns: fail" in result.message


def test_no_feature_columns_besides_target_fails():
    result = feature_types(pd.DataFrame({TARGET: [0, 1]}), TARGET)
    assert not result.passed
    assert "no feature columns" in result.message


def test_at_least_two_classes_passes():
    result = target_classes(frame(a=[1.0, 2.0, 3.0]), TARGET)
    assert result.passed
    assert result.metadata["Target classes"] == 2


@pytest.mark.parametrize(
    "target",
    [[1, 1, 1], [1, np.nan, np.nan]],
    ids=["one-class", "one-class-plus-nulls"],
)
def test_at_least_two_classes_fails_on_one_class(target):
    result = target_classes(pd.DataFrame({"a": [1.0, 2.0, 3.0], TARGET: target}), TARGET)
    assert not result.passed
    assert result.metadata["Target classes"] == 1
    assert "need at least 2" in result.message


def test_at_least_two_classes_fails_without_target():
    result = target_classes(pd.DataFrame({"a": [1.0, 2.0]}), TARGET)
    assert not result.passed
    assert repr(TARGET) in result.message


def test_evaluate_runs_every_rule_in_a_stable_order(demo_frame):
    results = evaluate(demo_frame, TARGET, None, 0.1)
    assert tuple(r.name for r in results) == RULE_NAMES
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]
