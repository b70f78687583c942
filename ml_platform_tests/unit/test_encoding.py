"""TableEncoder: each column encoded by its kind, as each estimator takes it (native categories for
HistGradientBoosting, bounded one-hot elsewhere, sparse only where the estimator accepts it), and
the signature checks that let the same raw rows through at predict time."""

import io

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy import sparse as sp

from ml_platform import constants
from ml_platform.encoding import OTHER, TableEncoder
from ml_platform.errors import ColumnTypeError
from ml_platform.ml import encoding_recipe, fit_with_progress, make_model
from ml_platform.signature import check_rows, infer_signature

ROWS = 600


def table(seed: int = 0, rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "price": rng.normal(100, 20, rows),
            "region": rng.choice(["north", "south", "east"], rows),
            "product": [f"p{i}" for i in rng.integers(0, 400, rows)],
            "store": rng.integers(0, 5000, rows),
            "member": pd.Series(rng.choice([True, False], rows), dtype=object),
            "seen_at": pd.date_range("2026-01-01", periods=rows, freq="37min").strftime("%Y-%m-%d %H:%M"),
        }
    )
    frame.loc[rng.random(rows) < 0.05, "price"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "region"] = None
    frame.loc[rng.random(rows) < 0.05, "member"] = None
    return frame


KINDS = {"store": "categorical", "seen_at": "datetime"}


def test_hist_gradient_boosting_gets_native_categories_never_one_hot():
    frame = table()
    encoder = TableEncoder(kinds=KINDS, native=True).fit(frame)
    out = encoder.transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert {c: str(out[c].dtype) for c in ("region", "product", "store")} == dict.fromkeys(
        ("region", "product", "store"), "category"
    )
    assert list(out.columns[:6]) == ["price", "member", "seen_at_hour", "seen_at_weekday", "seen_at_month", "region"]
    for column in ("product", "store"):
        assert len(out[column].cat.categories) <= constants.NATIVE_MAX_CATEGORIES
        assert out[column].cat.categories[-1] == OTHER
    unseen = frame.head(2).assign(product=["never-seen", "p1"], region=[None, "west"])
    encoded = encoder.transform(unseen)
    assert encoded["product"].iloc[0] == OTHER and pd.isna(encoded["region"].iloc[0])
    assert encoded["region"].iloc[1] == OTHER


def test_one_hot_is_bounded_per_column_and_takes_unseen_values():
    frame = table()
    encoder = TableEncoder(kinds=KINDS, max_categories=10, min_frequency=1).fit(frame)
    names = list(encoder.get_feature_names_out())
    for column in ("region", "product", "store"):
        assert 1 <= sum(n.startswith(f"categorical__{column}_") for n in names) <= 10
    assert names[:5] == [
        "numeric__price",
        "numeric__member",
        "numeric__seen_at_hour",
        "numeric__seen_at_weekday",
        "numeric__seen_at_month",
    ]
    out = encoder.transform(frame.head(3).assign(product=["never-seen"] * 3))
    assert out.shape == (3, len(names)) and not np.isnan(out).any()


def test_sparse_only_for_an_estimator_that_accepts_it_and_a_mostly_zero_encoding():
    frame = table()
    assert sp.issparse(TableEncoder(kinds=KINDS, sparse=True, min_frequency=1).fit_transform(frame))
    assert isinstance(TableEncoder(kinds=KINDS, sparse=False, min_frequency=1).fit_transform(frame), np.ndarray)
    dense_enough = frame[["price", "region"]]
    assert isinstance(TableEncoder(sparse=True).fit_transform(dense_enough), np.ndarray)


@pytest.mark.parametrize(
    ("estimator", "output"),
    [
        ("random_forest", "sparse"),
        ("logistic_regression", "sparse"),
        ("hist_gradient_boosting", "native"),
        ("sklearn.naive_bayes:GaussianNB", "dense"),  # refuses sparse input: dense, never a TypeError
    ],
)
def test_each_estimator_fits_and_predicts_raw_rows_with_nulls_dates_and_many_categories(estimator, output):
    frame = table()
    y = (frame["price"].fillna(100) > 100).astype(int)
    model = make_model(
        "classification",
        estimator,
        {"n_estimators": 10} if estimator == "random_forest" else {},
        None,
        encoding_recipe(KINDS, 50, 1),
    )
    fit_with_progress(model, frame, y, lambda *_: None)
    encoded = model.named_steps["preprocess"].transform(frame.head(5))
    seen = "native" if isinstance(encoded, pd.DataFrame) else "sparse" if sp.issparse(encoded) else "dense"
    assert seen == output
    # Stored and loaded as the model store does (joblib), it predicts the same on new raw rows.
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    loaded = joblib.load(io.BytesIO(buffer.getvalue()))
    rows = table(seed=9, rows=50)
    assert (loaded.predict(rows) == model.predict(rows)).all() and len(model.predict(rows)) == 50


def test_a_categorical_learnt_from_numbers_takes_numbers_at_predict_time_and_text_does_not():
    frame = table(rows=100)
    signature = infer_signature(frame, "target", "classification", [0, 1], KINDS)
    kinds = {f.name: f.kind for f in signature.features}
    assert kinds["store"] == "categorical" and kinds["seen_at"] == "datetime" and kinds["member"] == "boolean"
    checked, _ = check_rows([{**frame.iloc[0].to_dict(), "store": 17}], signature)
    assert checked["store"].iloc[0] == "17"
    with pytest.raises(
        ColumnTypeError,
        match=r"column 'region' is categorical \(text\) in the signature; row 0"
        r" holds a int",
    ):
        check_rows([{**frame.iloc[0].to_dict(), "region": 5}], signature)
    with pytest.raises(ColumnTypeError, match="column 'seen_at' expects dates and times: row 0 holds 'soon'"):
        check_rows([{**frame.iloc[0].to_dict(), "seen_at": "soon"}], signature)
