"""Every built-in estimator (and an imported one that refuses sparse input) x every kind of table:
each cell is a pipeline of its own, ingested, checked and trained through ``dg.materialize``, and its
model then predicts the raw landing rows (nulls, unseen categories and all) behind its signature, as
serving and ``ml-platform predict`` do.

All cells run in one ``dg.materialize`` (each pipeline is its own asset group, up to trained_model:
evaluation and deploy are the same code for every model, tested elsewhere), so the matrix pays
Dagster's run overhead once. What cannot work fails at ingest with one sentence, never a traceback.
"""

import textwrap

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from scipy import sparse as sp

from ml_platform.backends.local import JoblibIOManager, LocalLandingZone, LocalModelStore, ParquetIOManager
from ml_platform.settings import load_settings
from ml_platform.signature import check_rows
from ml_platform.spec import parse_pipelines
from ml_platform_tests.support.pipelines import build
from ml_platform_tests.support.results import step_errors

DAY = "2026-01-07"
ROWS = 240
ESTIMATORS = {
    "classification": [
        "random_forest",
        "hist_gradient_boosting",
        "logistic_regression",
        # Refuses sparse input (scikit-learn's input tags say so): it must get dense input.
        "sklearn.naive_bayes:GaussianNB",
    ],
    "regression": ["random_forest", "hist_gradient_boosting", "ridge"],
}
PARAMS = {"random_forest": "{n_estimators: 10, max_depth: 6}", "hist_gradient_boosting": "{max_iter: 20}"}


def _numbers(rng, rows):
    return {"x1": rng.normal(0, 1, rows), "x2": rng.uniform(0, 10, rows)}


def numbers_only(rng, rows):
    return pd.DataFrame(_numbers(rng, rows)), None


def three_categories(rng, rows):
    return pd.DataFrame({**_numbers(rng, rows), "colour": rng.choice(["red", "green", "blue"], rows)}), None


def two_hundred_categories(rng, rows):
    # Undeclared, with a value on most rows of the day: a warning, and a bounded encoding.
    return pd.DataFrame({**_numbers(rng, rows), "city": [f"city-{i}" for i in rng.integers(0, 200, rows)]}), None


def five_thousand_declared(rng, rows):
    # A store id: numbers, 5,000 of them, declared categorical: kept as a category.
    frame = pd.DataFrame(
        {**_numbers(rng, rows), "store": rng.permutation(5000)[:rows] if rows <= 5000 else rng.integers(0, 5000, rows)}
    )
    return frame, "[x1, x2, {store: categorical}]"


def booleans(rng, rows):
    flags = pd.Series(rng.random(rows) < 0.4, dtype=object)
    flags[rng.random(rows) < 0.05] = None  # booleans with nulls, as parquet gives them back
    return pd.DataFrame({**_numbers(rng, rows), "member": rng.random(rows) < 0.5, "promo": flags}), None


def nulls_everywhere(rng, rows):
    frame = pd.DataFrame(
        {
            **_numbers(rng, rows),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "member": pd.Series(rng.random(rows) < 0.5, dtype=object),
        }
    )
    for column in frame.columns:
        frame.loc[rng.random(rows) < 0.06, column] = None
    return frame, None


def a_datetime(rng, rows):
    seen = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 7 * 24 * 60, rows), unit="min")
    return pd.DataFrame(
        {**_numbers(rng, rows), "seen_at": seen.strftime("%Y-%m-%d %H:%M")}
    ), "[x1, x2, {seen_at: datetime}]"


def mostly_zeros(rng, rows):
    # Four columns of 60 values each: a one-hot encoding about 3 % dense.
    return pd.DataFrame(
        {**_numbers(rng, rows), **{f"c{j}": [f"v{i}" for i in rng.integers(0, 60, rows)] for j in range(4)}}
    ), None


SHAPES = {
    "numbers": numbers_only,
    "three_categories": three_categories,
    "categories_200": two_hundred_categories,
    "declared_5000": five_thousand_declared,
    "booleans": booleans,
    "nulls_everywhere": nulls_everywhere,
    "datetime": a_datetime,
    "one_hot_sparse": mostly_zeros,
}
CELLS = [
    (task, estimator, shape) for task, estimators in ESTIMATORS.items() for estimator in estimators for shape in SHAPES
]


def _target(task, frame, rng):
    signal = frame["x1"].fillna(0).to_numpy() + 0.2 * frame["x2"].fillna(5).to_numpy()
    if task == "classification":
        return np.where(signal + rng.normal(0, 0.5, len(frame)) > 1.0, "yes", "no")
    return signal * 3 + rng.normal(0, 0.3, len(frame))


def _cell_yaml(index, task, estimator, shape, features):
    params = PARAMS.get(estimator, "{}")
    return textwrap.dedent(f"""\
      - name: cell_{index}
        task: {task}
        landing: cell_{index}
        window_days: 1
        partitions: {{start: "2026-01-01"}}
        model: {{estimator: "{estimator}", params: {params}}}
        drift: {{enabled: false}}
    """) + (f"  features: {features}\n" if features else "")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """Every cell trained and deployed in one run, with each cell's landing rows."""
    root = tmp_path_factory.mktemp("matrix")
    rows_by_cell, entries = {}, []
    for index, (task, estimator, shape) in enumerate(CELLS):
        rng = np.random.default_rng(index)
        rows = 5200 if shape == "declared_5000" else ROWS
        frame, features = SHAPES[shape](rng, rows)
        frame["target"] = _target(task, frame, rng)
        (root / "landing" / f"cell_{index}").mkdir(parents=True)
        frame.to_parquet(root / "landing" / f"cell_{index}" / f"{DAY}.parquet", index=False)
        rows_by_cell[index] = frame
        entries.append(_cell_yaml(index, task, estimator, shape, features))
    settings = load_settings()
    specs = parse_pipelines(
        "pipelines:\n" + "".join(textwrap.indent(e, "  ") for e in entries), "matrix.yaml", settings
    )
    definitions = [d for spec in specs for d in build(spec, settings).definitions]
    models = JoblibIOManager(base_dir=str(root / "assets"))
    result = dg.materialize(
        definitions,
        partition_key=DAY,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        selection=dg.AssetSelection.assets(*(dg.AssetKey([f"cell_{i}", "trained_model"]) for i in rows_by_cell))
        .upstream()
        .required_multi_asset_neighbors(),
        resources={
            "landing_zone": LocalLandingZone(root=str(root / "landing")),
            "model_store": LocalModelStore(root=str(root / "store")),
            "io_manager": ParquetIOManager(base_dir=str(root / "assets")),
            "model_io_manager": models,
        },
    )
    trained = {i: models.stored_value(dg.AssetKey([f"cell_{i}", "trained_model"]), DAY) for i in rows_by_cell}
    return result, trained, rows_by_cell


def predict(trained, rows: pd.DataFrame) -> np.ndarray:
    """As serving does: the rows checked against the model's signature, then predicted."""
    checked, _ = check_rows(rows, trained.signature)
    return trained.model.predict(checked)


@pytest.mark.parametrize("cell", range(len(CELLS)), ids=[f"{t[:5]}-{e.rsplit(':', 1)[-1]}-{s}" for t, e, s in CELLS])
def test_each_estimator_fits_each_table_and_predicts_its_raw_rows(matrix, cell):
    result, trained, rows_by_cell = matrix
    task, estimator, shape = CELLS[cell]
    assert result.success, step_errors(result)
    sklearn_model, signature = trained[cell].model, trained[cell].signature
    raw = rows_by_cell[cell]
    predictions = predict(trained[cell], raw)  # every landing row: nulls, the target column and all
    assert len(predictions) == len(raw)
    if task == "classification":
        assert set(predictions) <= {"yes", "no"}
    else:
        assert np.isfinite(predictions.astype(float)).all()
    encoder = sklearn_model.named_steps["preprocess"]
    encoded = encoder.transform(raw.drop(columns=["target"]).head(50))
    if estimator == "hist_gradient_boosting":
        assert isinstance(encoded, pd.DataFrame)  # native categories, never sparse, never one-hot
    elif estimator.endswith("GaussianNB"):
        assert isinstance(encoded, np.ndarray)  # refuses sparse input: dense
    elif shape == "one_hot_sparse":
        assert sp.issparse(encoded)  # takes sparse input and the one-hot is mostly zeros
    kinds = {f.name: f.kind for f in signature.features}
    if shape == "declared_5000":
        assert kinds["store"] == "categorical"
        assert predict(trained[cell], raw.head(3).assign(store=[1, 99_999, 7])).shape == (3,)  # unseen ids too
    if shape == "datetime":
        assert kinds["seen_at"] == "datetime"
        assert len(encoder.get_feature_names_out()) >= 5  # x1, x2 and the hour, weekday, month of seen_at


def test_an_undeclared_datetime_column_is_refused_at_ingest_in_one_sentence(platform):
    from ml_platform_tests.support.pipelines import built_from

    rng = np.random.default_rng(1)
    frame, _ = a_datetime(rng, ROWS)
    frame["target"] = _target("classification", frame, rng)
    platform.write_day(DAY, frame)
    built = built_from("""
        pipelines:
          - name: demo
            landing: .
            partitions: {start: "2026-01-01"}
    """)
    result = dg.materialize(
        built.definitions,
        selection="key:demo/raw_data",
        partition_key=DAY,
        instance=platform.instance,
        resources=platform.resources,
        raise_on_error=False,
    )
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "feature_columns_valid"]
    assert not evaluation.passed
    assert evaluation.description == (
        "column 'seen_at' holds dates and times (str): declare it `{seen_at: datetime}` under features (its hour,"
        " weekday and month become inputs) or leave it out of the data"
    )
