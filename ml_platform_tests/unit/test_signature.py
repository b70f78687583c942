"""The signature (the model's input contract) on its own, no Dagster: inferred from training rows,
stored as JSON, compared between versions, and enforced on rows to predict — including the property
that any rows the check lets through are predicted without an exception."""

from __future__ import annotations

import json
import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_platform.errors import (
    ColumnTypeError,
    EmptyInputError,
    MissingColumnsError,
    PredictionError,
    SignatureError,
)
from ml_platform.ml import make_model
from ml_platform.quality.schema import schema_matches
from ml_platform.resources import ModelVersion
from ml_platform.serving import CheckedModel
from ml_platform.signature import (
    FeatureSpec,
    Signature,
    compare,
    infer_signature,
)

TARGET = "churned"
SEGMENTS = ("north", "south", "east", "west")


def training_rows(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    """Numbers (float and int, a few nulls), a categorical column with nulls, a boolean, a target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.normal(50.0, 10.0, rows),
            "visits": rng.integers(0, 20, rows),
            "segment": rng.choice(SEGMENTS, rows).astype(object),
            "member": rng.random(rows) < 0.5,
        }
    )
    frame.loc[::17, "amount"] = np.nan
    frame.loc[::23, "segment"] = None
    frame[TARGET] = ((frame["amount"].fillna(50) > 50) ^ frame["member"]).astype(int)
    return frame


def fitted(task: str = "classification", estimator: str = "random_forest", params=None) -> CheckedModel:
    """A model fitted as the pipeline fits one, with its signature recorded as a version records it."""
    frame = training_rows()
    x, y = frame.drop(columns=[TARGET]), frame[TARGET]
    if task == "regression":
        y = frame["amount"].fillna(0) * 2 + frame["visits"]
    model = make_model(task, estimator, params or ({"n_estimators": 10} if estimator == "random_forest" else {}))
    model.fit(x, y)
    classes = list(model.classes_) if task == "classification" else None
    signature = infer_signature(x, TARGET, task, classes)
    metadata = {"signature": json.loads(json.dumps(signature.to_dict())), "sha256": "0" * 64}
    return CheckedModel(model, ModelVersion("churn", "v1", "/store/churn/v1", metadata))


CLASSIFIER = fitted()


# -- inferred, stored, compared ------------------------------------------------------------------


def test_the_signature_records_columns_in_order_with_kind_dtype_nulls_range_and_categories():
    signature = CLASSIFIER.signature
    assert signature.columns == ["amount", "visits", "segment", "member"]
    by_name = {f.name: f for f in signature.features}
    assert {n: f.kind for n, f in by_name.items()} == {
        "amount": "numeric",
        "visits": "numeric",
        "segment": "categorical",
        "member": "boolean",
    }
    assert by_name["amount"].nullable and not by_name["visits"].nullable and by_name["segment"].nullable
    frame = training_rows()
    assert by_name["amount"].minimum == frame["amount"].min() and by_name["visits"].maximum == frame["visits"].max()
    assert by_name["segment"].categories == tuple(sorted(SEGMENTS))
    assert by_name["visits"].dtype == "int64" and by_name["member"].dtype == "bool"
    assert signature.target == TARGET and signature.task == "classification" and signature.classes == (0, 1)


def test_the_signature_survives_json_and_reads_old_versions_that_kept_names_only():
    signature = CLASSIFIER.signature
    again = Signature.from_dict(json.loads(json.dumps(signature.to_dict())))
    assert again == signature and again.digest == signature.digest
    old = Signature.of_version({"feature_columns": ["a", "b"], "target": "t", "classes": [0, 1]})
    assert old.columns == ["a", "b"] and old.kinds == {}
    assert Signature.of_version({}) is None


def _signature(*columns: tuple[str, str]) -> Signature:
    return Signature(tuple(FeatureSpec(name, kind) for name, kind in columns), TARGET, "classification", (0, 1))


@pytest.mark.parametrize(
    ("new", "breaking", "says"),
    [
        ((("a", "numeric"), ("b", "categorical")), False, "the same columns and kinds"),
        ((("b", "categorical"), ("a", "numeric")), False, "the same columns in another order"),
        ((("a", "numeric"), ("b", "categorical"), ("c", "boolean")), True, "columns added: 'c'"),
        ((("a", "numeric"),), True, "columns removed: 'b'"),
        ((("a", "categorical"), ("b", "categorical")), True, "re-kinded: 'a' numeric -> categorical"),
    ],
    ids=["same", "reordered", "added", "removed", "re-kinded"],
)
def test_a_signature_change_is_what_a_caller_would_notice(new, breaking, says):
    change = compare(_signature(("a", "numeric"), ("b", "categorical")), _signature(*new))
    assert change.breaking is breaking
    assert says in change.describe()


def test_a_schema_pinned_by_a_signature_names_its_source_and_kinds():
    schema = CLASSIFIER.signature.schema("production model churn v1")
    assert schema.features == ("amount", "visits", "segment", "member")
    assert schema.kinds["member"] == "boolean" and schema.source == "production model churn v1"
    day = training_rows().assign(member=lambda f: np.where(f["member"], "yes", "no"))
    result = schema_matches(day, TARGET, schema)
    assert not result.passed and "column 'member' is categorical, the schema says boolean" in result.message


# -- rows to predict -------------------------------------------------------------------------------


def good_rows(rows: int = 5) -> pd.DataFrame:
    """Rows as callers send them, without nulls."""
    frame = training_rows(rows=rows, seed=1).drop(columns=[TARGET])
    return frame.assign(amount=frame["amount"].fillna(50.0), segment=frame["segment"].fillna("north"))


def test_rows_in_another_order_with_extra_columns_predict_and_the_extras_are_reported():
    rows = good_rows().assign(note="hello", id=range(5))[["note", "member", "id", "segment", "visits", "amount"]]
    result = CLASSIFIER.predict_with_report(rows, proba=True)
    expected = CLASSIFIER.sklearn_model.predict(good_rows())
    assert result.predictions.tolist() == expected.tolist()
    assert result.report.dropped_columns == ["note", "id"]
    assert list(result.probabilities.columns) == ["0", "1"]
    assert np.allclose(result.probabilities.sum(axis=1), 1.0)
    assert result.version == "v1"


def test_nulls_unseen_categories_and_values_outside_the_training_range_are_predicted_and_counted():
    rows = good_rows(4)
    rows.loc[0, "amount"] = None
    rows.loc[1, "segment"] = "moon"
    rows.loc[2, "segment"] = None
    rows.loc[3, "visits"] = 1_000
    result = CLASSIFIER.predict_with_report(rows)
    assert len(result.predictions) == 4
    assert result.report.nulls == {"amount": 1, "segment": 1}
    assert result.report.unseen_categories == {"segment": 1}
    assert result.report.outside_training_range == {"visits": 1}
    assert any("unseen categories" in line and "'segment' 1 row(s)" in line for line in result.report.lines())


def test_text_numbers_and_boolean_words_are_taken_as_their_kind():
    rows = good_rows(3).astype(object)
    rows["amount"] = ["51.5", " 49 ", None]
    rows["member"] = ["true", "False", "1"]
    plain = good_rows(3).assign(amount=[51.5, 49.0, np.nan], member=[True, False, True])
    assert CLASSIFIER.predict(rows).tolist() == CLASSIFIER.sklearn_model.predict(plain).tolist()


def test_records_and_columns_data_are_rows_too():
    rows = good_rows(3)
    records = json.loads(rows.to_json(orient="records"))
    split = json.loads(rows.to_json(orient="split", index=False))
    expected = CLASSIFIER.predict(rows).tolist()
    assert CLASSIFIER.predict(records).tolist() == expected
    assert CLASSIFIER.predict({"columns": split["columns"], "data": split["data"]}).tolist() == expected


def _with(column: str, values: list) -> pd.DataFrame:
    rows = good_rows(len(values)).astype({column: object})
    rows[column] = values
    return rows


BAD_ROWS = [
    ("no rows", lambda: good_rows().iloc[:0], EmptyInputError, "no rows"),
    (
        "a missing column",
        lambda: good_rows().drop(columns=["visits"]),
        MissingColumnsError,
        "missing feature column(s) 'visits'",
    ),
    (
        "text in a number column",
        lambda: _with("amount", [1.0, 2.0, "abc"]),
        ColumnTypeError,
        "column 'amount' expects numbers: row 2 holds 'abc'",
    ),
    (
        "infinity",
        lambda: _with("amount", [1.0, float("inf")]),
        ColumnTypeError,
        "column 'amount' expects finite numbers",
    ),
    (
        "a number far out of range",
        lambda: _with("visits", [1, 1e300]),
        ColumnTypeError,
        "column 'visits' is out of range",
    ),
    (
        "booleans in a number column",
        lambda: good_rows().assign(visits=True),
        ColumnTypeError,
        "column 'visits' is numeric in the signature; got booleans",
    ),
    (
        "dates in a number column",
        lambda: good_rows(2).assign(amount=pd.to_datetime(["2026-01-01"] * 2)),
        ColumnTypeError,
        "column 'amount' is numeric in the signature; got datetime64",
    ),
    (
        "numbers in a categorical column",
        lambda: good_rows().assign(segment=3),
        ColumnTypeError,
        "column 'segment' is categorical (text) in the signature; row 0 holds a int",
    ),
    (
        "a word in a boolean column",
        lambda: _with("member", [True, "maybe"]),
        ColumnTypeError,
        "column 'member' expects booleans (true/false): row 1 holds 'maybe'",
    ),
    ("a list in a number column", lambda: _with("amount", [[1, 2], 3.0]), ColumnTypeError, "row 0 holds a list"),
    (
        "a column twice",
        lambda: pd.concat([good_rows(), good_rows()[["amount"]]], axis=1),
        SignatureError,
        "column 'amount' appears more than once",
    ),
    ("not rows at all", lambda: "amount,visits", SignatureError, "expected rows as a DataFrame"),
]


@pytest.mark.parametrize(("make", "error", "says"), [case[1:] for case in BAD_ROWS], ids=[case[0] for case in BAD_ROWS])
def test_bad_rows_fail_with_one_typed_error_naming_the_problem(make, error, says):
    with pytest.raises(error) as raised:
        CLASSIFIER.predict(make())
    assert says in str(raised.value)


def test_a_regression_has_no_probabilities():
    regression = fitted("regression", "ridge")
    assert len(regression.predict(good_rows())) == 5
    with pytest.raises(PredictionError, match="is a regression: it has no class probabilities"):
        regression.predict_proba(good_rows())


# -- any rows the check lets through are predicted ----------------------------------------------

MODELS = {
    "random_forest": CLASSIFIER,
    "logistic_regression": fitted("classification", "logistic_regression"),
    "hist_gradient_boosting": fitted("classification", "hist_gradient_boosting", {"max_iter": 10}),
    "ridge": fitted("regression", "ridge"),
}
PROPERTIES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
names = st.text(string.ascii_lowercase, min_size=1, max_size=6)


def anything() -> st.SearchStrategy:
    """Values a caller might send in any column."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
        st.sampled_from(SEGMENTS + ("1.5", "true", "no", "")),
    )


@st.composite
def valid_values(draw, spec: FeatureSpec, rows: int) -> list:
    if spec.kind == "numeric":
        low, high = spec.minimum, spec.maximum
        width = high - low
        value = st.floats(low - 100 * width, high + 100 * width) | st.integers(int(low) - 100, int(high) + 100)
    elif spec.kind == "categorical":
        value = st.sampled_from(spec.categories) | st.text(max_size=8)
    else:
        value = st.booleans()
    return draw(st.lists(st.none() | value, min_size=rows, max_size=rows))


@st.composite
def valid_rows(draw, signature: Signature) -> pd.DataFrame:
    rows = draw(st.integers(1, 8))
    data = {spec.name: draw(valid_values(spec, rows)) for spec in signature.features}
    for extra in draw(st.lists(names.filter(lambda n: n not in data), max_size=2, unique=True)):
        data[extra] = draw(st.lists(anything(), min_size=rows, max_size=rows))
    order = draw(st.permutations(list(data)))
    return pd.DataFrame({column: data[column] for column in order})


@st.composite
def any_rows(draw, signature: Signature) -> pd.DataFrame:
    rows = draw(st.integers(0, 6))
    columns = draw(st.lists(st.sampled_from(signature.columns) | names, max_size=6, unique=True))
    return pd.DataFrame(
        {c: draw(st.lists(anything(), min_size=rows, max_size=rows)) for c in columns}, index=range(rows)
    )


@pytest.mark.parametrize("estimator", sorted(MODELS))
@PROPERTIES
@given(data=st.data())
def test_rows_that_meet_the_signature_always_predict(estimator, data):
    model = MODELS[estimator]
    rows = data.draw(valid_rows(model.signature))
    result = model.predict_with_report(rows, proba=model.is_classifier)
    assert len(result.predictions) == len(rows)
    if model.is_classifier:
        assert np.allclose(result.probabilities.sum(axis=1), 1.0)
    else:
        assert np.isfinite(result.predictions.astype(float)).all()


@pytest.mark.parametrize("estimator", sorted(MODELS))
@PROPERTIES
@given(data=st.data())
def test_any_rows_either_predict_or_fail_with_a_signature_error(estimator, data):
    model = MODELS[estimator]
    rows = data.draw(any_rows(model.signature))
    try:
        result = model.predict_with_report(rows)
    except SignatureError:
        return  # refused with one typed error: nothing else may escape
    # Whatever the check let through, the model predicted.
    assert len(result.predictions) == len(rows)
