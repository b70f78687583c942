"""Property-based tests of the data contract (ml_platform/quality/) and of the raw_data checks'
verdicts, with hypothesis.

Random valid frames (numeric, boolean and low-cardinality text features, no nulls, a target with two
or more classes) pass every rule. A valid frame with exactly one defect fails exactly the rules that
defect breaks, and their messages name the column or the problem. No generated frame, valid or not,
makes a rule raise.
"""

import string
import tempfile

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ml_platform.backends.local import LocalModelStore
from ml_platform.checks.data_quality import DataQualityConfig, contract_results
from ml_platform.quality.kinds import HIGH_CARDINALITY_SHARE, HIGH_CARDINALITY_VALUES, cardinality_problem
from ml_platform.quality.results import RuleResult
from ml_platform.quality.rules import RULE_NAMES, evaluate, repeated_rows
from ml_platform.quality.schema import Schema, schema_drift
from ml_platform_tests.support.pipelines import DEMO

INSTANCE = dg.DagsterInstance.ephemeral()
# No production model: no schema is pinned, the rules judge every column.
EMPTY_STORE = LocalModelStore(root=tempfile.mkdtemp(prefix="empty-store-"))

TARGET = "target"
THRESHOLD = 0.1
CATEGORIES = ("north", "south", "east", "west", "centre")
LABEL_SETS = ([0, 1], [0, 1, 2], ["benign", "malignant"])
FEATURE_KINDS = ("float", "int", "bool", "text", "category")
GARBAGE_CHARACTERS = string.ascii_letters + string.punctuation + " "

PROPERTIES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.from_regex(r"[a-z][a-z_ ]{0,11}", fullmatch=True).filter(lambda name: name != TARGET)


def column_values(draw, kind: str, rows: int):
    if kind == "float":
        return draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=rows, max_size=rows))
    if kind == "int":
        return draw(st.lists(st.integers(-1000, 1000), min_size=rows, max_size=rows))
    if kind == "bool":
        return draw(st.lists(st.booleans(), min_size=rows, max_size=rows))
    values = draw(st.lists(st.sampled_from(CATEGORIES), min_size=rows, max_size=rows))
    return pd.Categorical(values) if kind == "category" else values


@st.composite
def valid_frames(draw, min_rows: int = 2, max_rows: int = 60) -> pd.DataFrame:
    """Features of every supported kind (the first one a float), no nulls, 2+ target classes."""
    rows = draw(st.integers(min_rows, max_rows))
    columns = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    kinds = ["float", *draw(st.lists(st.sampled_from(FEATURE_KINDS), min_size=4, max_size=4))]
    data = {column: column_values(draw, kind, rows) for column, kind in zip(columns, kinds)}
    labels = draw(st.sampled_from(LABEL_SETS))
    target = labels[:2] + draw(st.lists(st.sampled_from(labels), min_size=rows - 2, max_size=rows - 2))
    data[TARGET] = draw(st.permutations(target))
    return pd.DataFrame(data)


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Float and int features (not bool, not the target)."""
    return [
        c for c in frame.columns if c != TARGET and frame[c].dtype != bool and pd.api.types.is_numeric_dtype(frame[c])
    ]


def nullable_features(frame: pd.DataFrame) -> list[str]:
    """Features that can hold nulls and keep their kind: every one (a bool column with nulls becomes
    an object column of True, False and NaN, still booleans to the contract)."""
    return [c for c in frame.columns if c != TARGET]


def schema_of(expected) -> Schema | None:
    """A declared schema of these feature names (kinds not declared), or None."""
    return Schema(tuple(expected), {}, "the test's features") if expected is not None else None


def results(frame: pd.DataFrame, expected=None, threshold=THRESHOLD) -> dict[str, RuleResult]:
    return {r.name: r for r in evaluate(frame, TARGET, schema_of(expected), threshold)}


def failing(frame: pd.DataFrame) -> dict[str, str]:
    """rule name -> message, for the rules the frame breaks."""
    return {name: r.message for name, r in results(frame).items() if not r.passed}


def not_a_number(text: str) -> bool:
    return bool(pd.isna(pd.to_numeric(pd.Series([text], dtype=object), errors="coerce").iloc[0]))


def rows_where(draw, frame: pd.DataFrame, count: int) -> np.ndarray:
    """A mask of ``count`` random rows."""
    chosen = draw(st.permutations(range(len(frame))))[:count]
    mask = np.zeros(len(frame), dtype=bool)
    mask[list(chosen)] = True
    return mask


# -- valid frames ---------------------------------------------------------------------------------


@PROPERTIES
@given(valid_frames())
def test_valid_frames_pass_every_rule(frame):
    features = [c for c in frame.columns if c != TARGET]
    for expected in (None, features):
        outcome = results(frame, expected)
        assert tuple(outcome) == RULE_NAMES
        assert all(r.passed for r in outcome.values()), {n: r.message for n, r in outcome.items()}


@PROPERTIES
@given(valid_frames(), st.data())
def test_nulls_at_or_below_the_threshold_pass(frame, data):
    column = data.draw(st.sampled_from(nullable_features(frame)))
    allowed = int(np.floor(THRESHOLD * len(frame)))
    frame[column] = frame[column].where(~rows_where(data.draw, frame, data.draw(st.integers(0, allowed))))
    assert failing(frame) == {}


@PROPERTIES
@given(valid_frames(), st.data())
def test_null_ratio_threshold_is_inclusive(frame, data):
    """A column with k nulls in n rows passes at threshold k/n and fails just below it."""
    column = data.draw(st.sampled_from(nullable_features(frame)))
    nulls = data.draw(st.integers(0, len(frame)))
    frame[column] = frame[column].where(~rows_where(data.draw, frame, nulls))
    assert results(frame, threshold=nulls / len(frame))["null_ratio_below_threshold"].passed
    if nulls:
        below = results(frame, threshold=(nulls - 1) / len(frame))["null_ratio_below_threshold"]
        assert not below.passed and f"{column} ({nulls / len(frame):.3f})" in below.message


@PROPERTIES
@given(valid_frames(), st.data())
def test_days_of_one_schema_do_not_drift(frame, data):
    cuts = sorted(data.draw(st.lists(st.integers(1, len(frame) - 1), max_size=3, unique=True)))
    bounds = [0, *cuts, len(frame)]
    days = {f"2026-01-{i + 1:02d}": frame.iloc[a:b] for i, (a, b) in enumerate(zip(bounds, bounds[1:]))}
    drift = schema_drift(days)
    assert drift.passed, drift.message


# -- one defect: the matching rule fails and names the column or problem ------------------------


@PROPERTIES
@given(valid_frames(), st.data())
def test_nulls_above_the_threshold_fail_naming_the_column(frame, data):
    column = data.draw(st.sampled_from(nullable_features(frame)))
    nulls = data.draw(st.integers(int(np.floor(THRESHOLD * len(frame))) + 1, len(frame)))  # up to all-null
    frame[column] = frame[column].where(~rows_where(data.draw, frame, nulls))
    assert set(failing(frame)) == {"null_ratio_below_threshold"}
    result = results(frame)["null_ratio_below_threshold"]
    assert f"above {THRESHOLD} in: {column} ({nulls / len(frame):.3f})" in result.message
    assert result.metadata["Worst column"] == column


@PROPERTIES
@given(valid_frames())
def test_missing_target_fails_naming_it(frame):
    frame = frame.drop(columns=[TARGET])
    failed = failing(frame)
    assert set(failed) == {"target_column_present", "at_least_two_classes", "target_missing_below_threshold"}
    assert all(repr(TARGET) in message for message in failed.values())
    assert all(str(c) in failed["target_column_present"] for c in frame.columns)  # what is there instead


@PROPERTIES
@given(valid_frames())
def test_a_single_class_fails(frame):
    frame[TARGET] = frame[TARGET].iloc[0]
    assert failing(frame) == {"at_least_two_classes": "1 target class; need at least 2"}


@PROPERTIES
@given(valid_frames(min_rows=10), st.data())
def test_text_garbage_in_a_numeric_column_fails_naming_column_and_value(frame, data):
    column = data.draw(st.sampled_from(numeric_columns(frame)))
    count = data.draw(st.integers(1, len(frame) // 10))  # the column stays >= 90% numbers
    garbage = st.text(GARBAGE_CHARACTERS, min_size=1, max_size=6).filter(not_a_number)
    mask = rows_where(data.draw, frame, count)
    values = frame[column].astype(str).to_numpy(dtype=object)
    values[mask] = data.draw(st.lists(garbage, min_size=count, max_size=count))
    frame[column] = pd.Series(values, dtype=object)
    failed = failing(frame)
    assert set(failed) == {"feature_columns_valid"}
    assert f"column {column!r} is" in failed["feature_columns_valid"]
    assert repr(values[mask][0]) in failed["feature_columns_valid"]  # the first bad value, quoted


@PROPERTIES
@given(valid_frames())
def test_an_empty_frame_fails_saying_it_has_no_rows(frame):
    failed = failing(frame.iloc[:0])
    assert set(failed) == {
        "not_empty",
        "null_ratio_below_threshold",
        "at_least_two_classes",
        "target_missing_below_threshold",
    }
    assert "no rows" in failed["not_empty"] and "no rows" in failed["null_ratio_below_threshold"]
    assert "no rows" in failed["target_missing_below_threshold"]
    assert failed["at_least_two_classes"].startswith("0 target classes")


@PROPERTIES
@given(valid_frames(), names, st.sampled_from(["dates", "infinity", "mixed types"]), st.data())
def test_a_column_of_an_unusable_kind_fails_naming_it(frame, column, kind, data):
    assume(column not in frame.columns)
    rows = len(frame)
    if kind == "dates":
        frame[column], says = pd.date_range("2026-01-01", periods=rows), "holds dates and times (datetime64"
    elif kind == "infinity":
        count = data.draw(st.integers(1, rows))
        frame[column] = np.where(rows_where(data.draw, frame, count), np.inf, 1.5)
        says = f"holds {count} infinite value(s)"
    else:
        values = data.draw(
            st.lists(st.one_of(st.integers(), st.sampled_from(CATEGORIES)), min_size=rows, max_size=rows)
        )
        assume({type(v) for v in values} == {int, str})
        frame[column], says = pd.Series(values, dtype=object), "mixes Python types (int, str)"
    failed = failing(frame)
    assert set(failed) == {"feature_columns_valid"}
    assert f"column {column!r} {says}" in failed["feature_columns_valid"]


@PROPERTIES
@given(valid_frames(min_rows=HIGH_CARDINALITY_VALUES + 1, max_rows=150), names, st.data())
def test_an_identifier_column_is_a_warning_naming_it_and_the_fix(frame, column, data):
    assume(column not in frame.columns)
    rows = len(frame)
    frame[column] = [f"id-{i}" for i in data.draw(st.permutations(range(rows)))]  # one value per row
    assert failing(frame) == {}
    result = results(frame)["feature_columns_valid"]
    assert result.warning
    assert f"column {column!r} has {rows} distinct values in {rows} rows" in result.message
    assert f"declare it `{{{column}: categorical}}` under features" in result.message
    # Declared categorical (here pinned through the schema's kinds), it is kept without a word.
    declared = Schema(tuple(c for c in frame.columns if c != TARGET), {column: "categorical"}, "declared")
    kept = {r.name: r for r in evaluate(frame, TARGET, declared)}["feature_columns_valid"]
    assert kept.passed and not kept.warning, kept.message


@PROPERTIES
@given(st.integers(1, 400), st.integers(1, 400))
def test_cardinality_rule_boundary(distinct, rows):
    assume(distinct <= rows)
    problem = cardinality_problem(pd.Series([f"v{i % distinct}" for i in range(rows)]))
    too_many = distinct > HIGH_CARDINALITY_VALUES and distinct > HIGH_CARDINALITY_SHARE * rows
    assert (problem is not None) == too_many


@PROPERTIES
@given(valid_frames(min_rows=8), st.data())
def test_a_column_that_changes_kind_between_days_is_drift(frame, data):
    column = data.draw(st.sampled_from(numeric_columns(frame)))
    cut = data.draw(st.integers(1, len(frame) - 1))
    days = {"2026-01-01": frame.iloc[:cut], "2026-01-02": frame.iloc[cut:].copy()}
    changed = data.draw(st.sampled_from(sorted(days)))
    days[changed] = days[changed].copy()
    days[changed][column] = data.draw(
        st.lists(st.sampled_from(CATEGORIES), min_size=len(days[changed]), max_size=len(days[changed]))
    )
    drift = schema_drift(days)
    assert not drift.passed
    assert f"column {column!r} is" in drift.message and f"categorical on {changed}" in drift.message
    assert drift.metadata["Drifting columns"] == 1


# -- any frame: no rule raises --------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.sampled_from(CATEGORIES),
)


@st.composite
def any_frames(draw) -> pd.DataFrame:
    """Anything a landing file could hold: mixed objects, nulls, dates, infinities, odd names."""
    rows = draw(st.integers(0, 25))
    columns = draw(st.lists(st.one_of(names, st.just(TARGET), st.integers(0, 9)), max_size=5, unique=True))
    data = {}
    for column in columns:
        kind = draw(st.sampled_from(["object", "float", "int", "bool", "dates", "category", "text"]))
        if kind == "object":
            values = pd.Series(draw(st.lists(scalars, min_size=rows, max_size=rows)), dtype=object)
        elif kind == "float":
            values = draw(st.lists(st.floats(), min_size=rows, max_size=rows))  # NaN and infinities too
        elif kind == "dates":
            values = pd.date_range("2026-01-01", periods=rows)
        elif kind == "category":
            values = pd.Categorical(draw(st.lists(st.sampled_from([*CATEGORIES, None]), min_size=rows, max_size=rows)))
        elif kind == "text":
            values = draw(st.lists(st.text(max_size=4), min_size=rows, max_size=rows))
        else:
            values = column_values(draw, kind, rows)
        data[column] = values
    return pd.DataFrame(data, index=range(rows))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_frames(), st.floats(0.0, 1.0), st.none() | st.lists(names, max_size=3))
def test_rules_never_raise(frame, threshold, expected):
    outcome = evaluate(frame, TARGET, schema_of(expected), threshold)
    assert tuple(r.name for r in outcome) == RULE_NAMES
    for result in outcome:
        assert isinstance(result.passed, bool) and isinstance(result.message, str) and result.message
    assert isinstance(schema_drift({"2026-01-01": frame, "2026-01-02": frame.iloc[:1]}).passed, bool)
    # The fast duplicate finder agrees with pandas' exact one, with every missing value one value
    # (pandas tells None from NaN in a text column; a row missing a value is missing it either way).
    nulls_alike = frame.astype(object).where(frame.notna(), np.nan)
    assert repeated_rows({"2026-01-01": frame})["2026-01-01"].tolist() == nulls_alike.duplicated().tolist()


@PROPERTIES
@given(valid_frames(), st.data())
def test_duplicate_rows_are_exactly_the_repeats(frame, data):
    repeats = data.draw(st.lists(st.integers(0, len(frame) - 1), max_size=10))
    doubled = pd.concat([frame, frame.iloc[repeats]], ignore_index=True)
    mask = repeated_rows({"2026-01-01": doubled})["2026-01-01"]
    assert mask.tolist() == doubled.duplicated().tolist()
    assert mask[len(frame) :].all()  # every repeated row is found
    assert doubled[~mask].reset_index(drop=True).equals(frame.drop_duplicates().reset_index(drop=True))


# -- the raw_data checks: a day range passes a check iff every day passes its rule ---------------

DEFECTS = {
    "none": lambda frame: frame,
    "no target": lambda frame: frame.drop(columns=[TARGET]),
    "one class": lambda frame: frame.assign(**{TARGET: frame[TARGET].iloc[0]}),
    "no rows": lambda frame: frame.iloc[:0],
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(valid_frames(max_rows=20), st.sampled_from(sorted(DEFECTS))), min_size=1, max_size=4),
    st.floats(0.0, 1.0),
)
def test_check_verdicts_follow_the_rules_day_by_day(days, threshold):
    frames = {f"2026-01-{i + 1:02d}": DEFECTS[defect](frame) for i, (frame, defect) in enumerate(days)}
    checks = {
        r.check_name: r
        for r in contract_results(
            dg.build_asset_check_context(instance=INSTANCE),
            DEMO.pipeline,
            DataQualityConfig(max_null_ratio=threshold),
            EMPTY_STORE,
            frames,
        )
    }
    # The seven rules, then the drift check (no training data in this instance: nothing to drift from).
    assert tuple(checks) == (*RULE_NAMES, "no_feature_drift")
    assert checks.pop("no_feature_drift").passed
    for name, check in checks.items():
        by_day = {day: results(frame, threshold=threshold)[name] for day, frame in frames.items()}
        failed_days = [day for day, r in by_day.items() if not r.passed]
        assert check.passed is (not failed_days)
        if len(frames) == 1:
            assert check.description == next(iter(by_day.values())).message
        else:
            assert all(f"{day}: {by_day[day].message}" in check.description for day in failed_days)
            assert not any(f"{day}:" in check.description for day in frames if day not in failed_days)


@pytest.mark.parametrize("separator", [";", "\t", "|"])
def test_a_csv_with_another_separator_is_named(separator):
    frame = pd.DataFrame({separator.join(["a", "b", TARGET]): ["1;2;0"]})
    message = results(frame)["target_column_present"].message
    assert f"holding {separator!r}" in message and "comma-separated" in message
