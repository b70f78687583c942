"""RowPlan (ml_platform.row_plan) against the pandas path it stands in for: ``check_rows`` then the
model's ``TableEncoder``. The server answers a request through the plan whenever the plan takes its
rows, so what a caller gets (the matrix the estimator reads, the report, the checked rows written to
the prediction log) must be exactly what the pandas path gives, on a table that looks real: a burst
of missing numbers, an int column, 400 products with a long tail, an int store id declared
categorical, a boolean with nulls, a plain boolean and a small text category with missing values;
requests as JSON gives them (records and ``{"columns", "data"}``), with unseen categories, missing
values, missing keys and extra columns, one row and hundreds at a time; for the one-hot encoding
(logistic regression) and the native one (histogram gradient boosting).

Whatever the plan does not take it leaves to the pandas path (``Unplanned``), whose answer is the
contract: the pandas path converts it (numeric text, a boolean as 1/0 or "yes") or refuses it with
its typed error, and the plan must not answer either way itself. A model with a declared datetime
column has no plan at all (``NoPlan``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import sparse as sp
from threadpoolctl import threadpool_limits

from ml_platform.errors import ColumnTypeError, EmptyInputError, MissingColumnsError, SignatureError
from ml_platform.ml import encoding_recipe, make_model
from ml_platform.row_plan import NoPlan, RowPlan, Unplanned
from ml_platform.signature import check_rows, infer_signature

ROWS = 3000
FRESH_ROWS = 600
ONE_BY_ONE = 30  # fresh records sent one a request
PRODUCTS = [f"sku-{i:04d}" for i in range(400)]
STORES = list(range(100, 160))
REGIONS = ["north", "south", "east"]
KINDS = {"store": "categorical"}  # an int id, declared categorical
ENCODINGS = {"one-hot": "logistic_regression", "native": "hist_gradient_boosting"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One OpenMP / BLAS thread for the fits and predictions here: the fast layer runs two workers on
    two cores, where histogram gradient boosting's threads waiting on each other cost seconds a fit."""
    with threadpool_limits(1):
        yield


# -- the table -----------------------------------------------------------------------------------------
def orders_table(rows: int, seed: int) -> pd.DataFrame:
    """A shop's orders as its feed gives them: ``distance`` (a burst of missing values: the courier's
    feed was down), ``qty`` (ints), ``product`` (400 values, a long tail), ``store`` (an int id),
    ``promo`` (True / False / None, object dtype), ``member`` (bool) and ``region`` (3 values, some
    missing)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(PRODUCTS) + 1)
    distance = np.round(rng.gamma(2.0, 4.0, rows), 2)
    distance[rows // 3 : rows // 3 + rows // 20] = np.nan
    distance[rng.random(rows) < 0.01] = np.nan
    promo = pd.Series(rng.random(rows) < 0.4, dtype=object)
    promo[rng.random(rows) < 0.08] = None
    region = pd.Series(rng.choice(REGIONS, rows, p=[0.5, 0.3, 0.2]), dtype=object)
    region[rng.random(rows) < 0.05] = None
    return pd.DataFrame(
        {
            "distance": distance,
            "qty": rng.integers(1, 11, rows),
            "product": rng.choice(PRODUCTS, rows, p=weights / weights.sum()),
            "store": rng.choice(STORES, rows),
            "promo": promo,
            "member": rng.random(rows) < 0.35,
            "region": region,
        }
    )


def signal(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """What the labels follow: distance, membership, the region and a few products, with noise."""
    rng = np.random.default_rng(seed)
    return (
        0.3 * frame["distance"].fillna(8.0).to_numpy()
        - 1.5 * frame["member"].astype(float).to_numpy()
        + 0.8 * (frame["region"] == "east").to_numpy()
        + 0.7 * frame["product"].isin(PRODUCTS[:5]).to_numpy()
        + rng.normal(0, 0.6, len(frame))
    )


def churned(frame: pd.DataFrame, seed: int = 1) -> np.ndarray:
    score = signal(frame, seed)
    return np.where(score > np.quantile(score, 0.7), "yes", "no")


def as_json(value: Any) -> Any:
    """As a request body parses: missing values null, numbers and text as JSON holds them."""
    return json.loads(json.dumps(value))


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return as_json(frame.astype(object).where(frame.notna(), None).to_dict("records"))


def fresh_frame(rows: int, seed: int) -> pd.DataFrame:
    """Rows to predict, with what training never saw: unseen products, stores and regions, a store id
    as text and as a float, missing values in every column, distances past the training range, and a
    column the model does not take."""
    frame = orders_table(rows, seed).astype(object)
    rng = np.random.default_rng(seed + 1)

    def some(share: float) -> np.ndarray:
        return rng.random(rows) < share

    unseen = some(0.08)
    frame.loc[unseen, "product"] = [f"sku-new-{i}" for i in range(int(unseen.sum()))]
    frame.loc[some(0.05), "store"] = 999
    frame.loc[some(0.05), "store"] = "105"
    frame.loc[some(0.05), "store"] = 131.0
    frame.loc[some(0.04), "region"] = "west"
    frame.loc[some(0.03), "distance"] = 75.5
    for column in frame.columns:
        frame.loc[some(0.04), column] = None
    frame.insert(2, "order_id", np.arange(rows))
    return frame


# -- the models --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    """{encoding: (model, signature)}: a logistic regression (one-hot) and a gradient boosting model
    (native categories), fitted on the same table with the store id declared categorical."""
    frame = orders_table(ROWS, seed=0)
    labels = churned(frame)
    signature = infer_signature(frame, "churned", "classification", sorted(set(labels)), kinds=KINDS)
    found = {}
    for name, estimator in ENCODINGS.items():
        params = {"max_iter": 20} if estimator == "hist_gradient_boosting" else {}
        model = make_model("classification", estimator, params, encoding=encoding_recipe(KINDS))
        found[name] = (model.fit(frame, labels), signature)
    return found


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    return fresh_frame(FRESH_ROWS, seed=7)


def plan_of(fitted, name: str) -> tuple[RowPlan, Any, Any]:
    model, signature = fitted[name]
    encoder = model.named_steps["preprocess"]
    return RowPlan(signature, encoder), encoder, signature


def encoded(encoder, frame: pd.DataFrame) -> np.ndarray:
    """The encoder's own output as one float matrix: one-hot dense; native as its number columns,
    then each categorical column's codes (-1, a missing value, as NaN)."""
    out = encoder.transform(frame)
    if not encoder.native:
        return out.toarray() if sp.issparse(out) else np.asarray(out)
    codes = [out[c].cat.codes.to_numpy().astype("float64") for c in encoder.categorical_]
    for code in codes:
        code[code < 0] = np.nan
    return np.column_stack([out[encoder.number_names_].to_numpy(dtype="float64"), *codes])


def assert_planned_as_checked(plan: RowPlan, encoder, signature, rows: Any) -> Any:
    """The plan's matrix, report and checked rows are the pandas path's, exactly; the report returned."""
    planned = plan.rows(rows)
    frame, report = check_rows(rows, signature)
    assert planned.report.to_dict() == report.to_dict()
    assert len(planned) == len(frame)
    checked = planned.frame()
    assert list(checked.columns) == list(frame.columns) == signature.columns
    pd.testing.assert_frame_equal(checked, frame.reset_index(drop=True), check_dtype=False)
    expected = encoded(encoder, frame)
    assert planned.matrix.shape == expected.shape == (len(frame), plan.width)
    np.testing.assert_array_equal(planned.matrix, expected)  # NaN where NaN, every other value equal
    return report


# -- rows the plan takes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ENCODINGS)
def test_one_record_a_request_is_planned_as_pandas_checks_and_encodes_it(fitted, fresh, name):
    plan, encoder, signature = plan_of(fitted, name)
    for record in records_of(fresh.head(ONE_BY_ONE)):
        assert_planned_as_checked(plan, encoder, signature, [record])


@pytest.mark.parametrize("name", ENCODINGS)
def test_hundreds_of_records_are_planned_as_pandas_checks_and_encodes_them(fitted, fresh, name):
    plan, encoder, signature = plan_of(fitted, name)
    report = assert_planned_as_checked(plan, encoder, signature, records_of(fresh))
    # The rows hold what the report is for: every column has missing values, three unseen categories,
    # distances past the training range, and a column the model does not take.
    assert report.rows == FRESH_ROWS and report.dropped_columns == ["order_id"]
    assert set(report.nulls) == set(signature.columns)
    assert set(report.unseen_categories) == {"product", "store", "region"}
    assert set(report.outside_training_range) == {"distance"}


@pytest.mark.parametrize("name", ENCODINGS)
def test_rows_another_plan_of_the_same_signature_checked_are_encoded_as_this_plan_encodes_them(fitted, fresh, name):
    """A rollout's candidate re-encodes production's planned rows (the one-hot and the native plan
    here share one signature): the same matrix, checked values and report as planning them itself."""
    plan, _, signature = plan_of(fitted, name)
    other, _, other_signature = plan_of(fitted, next(n for n in ENCODINGS if n != name))
    assert other_signature == signature
    for rows in ([records_of(fresh.head(1))[0]], records_of(fresh)):
        mine, given = plan.rows(rows), other.rows(rows)
        got = plan.encoded(given)
        np.testing.assert_array_equal(got.matrix, mine.matrix)  # NaN where NaN
        assert got.report.to_dict() == mine.report.to_dict()
        pd.testing.assert_frame_equal(got.frame(), mine.frame())


@pytest.mark.parametrize("name", ENCODINGS)
def test_columns_and_data_in_another_order_are_planned_as_pandas_checks_and_encodes_them(fitted, fresh, name):
    plan, encoder, signature = plan_of(fitted, name)
    columns = ["region", "order_id", "member", "store", "qty", "promo", "distance", "product"]
    body = as_json({"columns": columns, "data": fresh[columns].where(fresh[columns].notna(), None).values.tolist()})
    assert_planned_as_checked(plan, encoder, signature, body)
    single = {"columns": columns, "data": body["data"][:1]}
    assert_planned_as_checked(plan, encoder, signature, single)


@pytest.mark.parametrize("name", ENCODINGS)
def test_records_with_keys_missing_or_in_another_order_are_planned_as_pandas_checks_them(fitted, fresh, name):
    plan, encoder, signature = plan_of(fitted, name)
    records = records_of(fresh.head(200))
    rng = np.random.default_rng(3)
    for index, record in enumerate(records):
        keys = list(record)
        rng.shuffle(keys)
        records[index] = {k: record[k] for k in keys}
        if index % 7 == 3:
            del records[index]["region"]  # a key left out: a missing value, as pandas reads it
        if index % 11 == 5:
            records[index]["coupon"] = "SPRING"  # an extra key on some rows only
    report = assert_planned_as_checked(plan, encoder, signature, records)
    assert report.dropped_columns == ["order_id", "coupon"]


# -- rows the plan leaves to the pandas path ----------------------------------------------------------------
# (id, column, value the third row holds, what check_rows makes of it)
CONVERTED = [
    ("numeric-text", "distance", "3.5", 3.5),
    ("numeric-text-spaced", "qty", " 7 ", 7.0),
    ("boolean-as-1", "promo", 1, True),
    ("boolean-as-0", "member", 0, False),
    ("boolean-as-yes", "member", "yes", True),
    ("boolean-as-NaN", "promo", math.nan, math.nan),  # JSON's NaN: a missing value to pandas
    ("id-past-2**53", "store", 2**60 + 1, str(2**60 + 1)),
]
REFUSED = [
    ("word-in-numeric", "distance", "far"),
    ("boolean-in-numeric", "qty", True),
    ("infinity", "distance", math.inf),
    ("absurd-number", "distance", 1e300),
    ("int-past-2**53-in-numeric", "qty", 2**60),
    ("int-in-text-category", "product", 7),
    ("boolean-in-text-category", "region", False),
    ("list-in-category", "region", ["north"]),
    ("list-in-numeric", "qty", [1]),
    ("dict-in-boolean", "promo", {"value": True}),
    ("word-in-boolean", "promo", "maybe"),
    ("two-in-boolean", "member", 2),
    ("infinity-as-id", "store", math.inf),
]


def five_records_with(fresh: pd.DataFrame, column: str, value: Any) -> list[dict[str, Any]]:
    records = records_of(fresh.head(5))
    records[2][column] = value
    return as_json(records)


@pytest.mark.parametrize(("column", "value", "expected"), [c[1:] for c in CONVERTED], ids=[c[0] for c in CONVERTED])
def test_what_pandas_converts_is_left_to_it(fitted, fresh, column, value, expected):
    rows = five_records_with(fresh, column, value)
    for name in ENCODINGS:
        plan, _, _ = plan_of(fitted, name)
        with pytest.raises(Unplanned):
            plan.rows(rows)
        with pytest.raises(Unplanned):
            plan.rows([rows[2]])
    frame, _ = check_rows(rows, fitted["one-hot"][1])
    got = frame[column].iloc[2]
    assert (pd.isna(got) and pd.isna(expected)) or got == expected, got


@pytest.mark.parametrize(("column", "value"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_what_pandas_refuses_is_left_to_it(fitted, fresh, column, value):
    rows = five_records_with(fresh, column, value)
    for name in ENCODINGS:
        plan, _, signature = plan_of(fitted, name)
        with pytest.raises(Unplanned):
            plan.rows(rows)
        with pytest.raises(Unplanned):
            plan.rows({"columns": list(rows[0]), "data": [list(r.values()) for r in rows]})
    with pytest.raises(ColumnTypeError, match=f"column '{column}'.*row 2"):
        check_rows(rows, signature)


def _without_qty(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "qty"} for r in records]


def _columns_data_without_qty(records: list[dict]) -> dict:
    rows = _without_qty(records)
    return {"columns": list(rows[0]), "data": [list(r.values()) for r in rows]}


def _doubled(records: list[dict]) -> dict:
    columns = [*records[0], "qty"]
    return {"columns": columns, "data": [[*r.values(), 3] for r in records]}


SHAPES = [
    ("missing-column", _without_qty, MissingColumnsError),
    ("missing-column-columns-data", _columns_data_without_qty, MissingColumnsError),
    ("duplicated-column", _doubled, SignatureError),
    ("no-records", lambda r: [], EmptyInputError),
    ("no-data", lambda r: {"columns": list(r[0]), "data": []}, EmptyInputError),
    ("not-rows", lambda r: "distance,qty", SignatureError),
]


@pytest.mark.parametrize(("shape", "error"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_a_missing_or_doubled_column_or_no_rows_is_left_to_pandas(fitted, fresh, shape, error):
    rows = as_json(shape(records_of(fresh.head(5))))
    for name in ENCODINGS:
        plan, _, signature = plan_of(fitted, name)
        with pytest.raises(Unplanned):
            plan.rows(rows)
    with pytest.raises(error):
        check_rows(rows, signature)


@pytest.mark.parametrize("width", ["shorter", "longer"])
def test_data_rows_of_another_width_than_the_columns_are_left_to_pandas(fitted, fresh, width):
    """A ``data`` row with fewer or more values than ``columns``: pandas pads a short one with missing
    values and refuses a long one; either way it is not the plan's to judge (the HTTP parser refuses
    such a body first, but the plan is the model's: ``CheckedModel.checked`` hands it any rows)."""
    records = records_of(fresh.head(3))
    columns = list(records[0])
    data = [list(r.values()) for r in records]
    data[1] = data[1][:-1] if width == "shorter" else [*data[1], "surplus"]
    rows = as_json({"columns": columns, "data": data})
    plan, _, signature = plan_of(fitted, "one-hot")
    with pytest.raises(Unplanned):
        plan.rows(rows)


# -- no plan ---------------------------------------------------------------------------------------------------
def test_a_model_with_a_declared_datetime_column_has_no_plan():
    frame = orders_table(400, seed=5)
    frame["placed_at"] = pd.date_range("2026-01-01", periods=len(frame), freq="41min").strftime("%Y-%m-%d %H:%M")
    kinds = {**KINDS, "placed_at": "datetime"}
    labels = churned(frame)
    signature = infer_signature(frame, "churned", "classification", sorted(set(labels)), kinds=kinds)
    model = make_model("classification", "logistic_regression", {}, encoding=encoding_recipe(kinds))
    model.fit(frame, labels)
    assert signature.kinds["placed_at"] == "datetime"
    with pytest.raises(NoPlan, match="datetime"):
        RowPlan(signature, model.named_steps["preprocess"])
