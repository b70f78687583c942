"""Predicting with a deployed model, through `ml-platform predict` (a subprocess) and the Python API
(`load_production_model`): the rows are checked against the model's signature before scikit-learn
sees them.

The model is trained by the pipeline itself on days with numeric, categorical and boolean columns.
Every bad input gets its own typed error (the API) or one line on stderr and exit code 2 (the
CLI), never a traceback; good input in another order, with extra columns, nulls or unseen
categories is predicted and what was done is reported.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform.demo import synthetic_frame
from ml_platform.errors import (
    ColumnTypeError,
    EmptyInputError,
    MissingColumnsError,
    ModelIntegrityError,
    ModelVersionNotFoundError,
    NoProductionModelError,
    PredictionError,
    SignatureError,
)
from ml_platform.serving import CheckedModel, load_production_model
from ml_platform_tests.support.constants import BIN, DAYS
from ml_platform_tests.support.pipelines import (
    DIABETES,
    built_from,
    ingest_and_train,
    seed,
)
from ml_platform_tests.support.platform import Platform
from ml_platform_tests.support.results import step_errors

pytestmark = pytest.mark.cli

MIXED = "mixed"
TARGET = "churned"
MIXED_YAML = f"""
pipelines:
  - name: {MIXED}
    target: {TARGET}
    model: {{estimator: random_forest, params: {{n_estimators: 20, max_depth: 6}}}}
    gate: {{min_accuracy: 0.5}}
"""


def mixed_day(day_index: int) -> pd.DataFrame:
    """20 numeric features, the categorical `segment` and a boolean `member`."""
    frame = synthetic_frame(120, seed=day_index, target=TARGET)
    frame["member"] = frame["feature_00"] > 0
    return frame


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    """A model store with the mixed classifier and the diabetes regression, both deployed by the pipeline."""
    root = tmp_path_factory.mktemp("predict")
    with dg.instance_for_test() as instance:
        platform = Platform(
            root=root,
            landing=root / "landing",
            store_dir=root / "model_store",
            assets_dir=root / "assets",
            instance=instance,
        )
        folder = root / "landing" / MIXED  # the pipeline's landing: its name under the landing root
        folder.mkdir(parents=True)
        for index, day in enumerate(DAYS):
            mixed_day(index).to_parquet(folder / f"{day}.parquet", index=False)
        mixed = ingest_and_train(platform, built_from(MIXED_YAML))
        assert mixed.success, step_errors(mixed)
        seed(platform, "diabetes", "diabetes", "progression")
        diabetes = ingest_and_train(platform, DIABETES)
        assert diabetes.success, step_errors(diabetes)
    return root / "model_store"


def good_rows(rows: int = 6) -> pd.DataFrame:
    return mixed_day(99).drop(columns=[TARGET]).head(rows)


def with_values(column: str, values: list) -> pd.DataFrame:
    rows = good_rows(len(values)).astype({column: object})
    rows[column] = values
    return rows


def predict_cli(store_dir: Path, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(BIN / "ml-platform"), "predict", "--store-dir", str(store_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == expect, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def api(store_dir: Path, model: str = MIXED, version: str | None = None) -> CheckedModel:
    model, _ = load_production_model(model, store_dir=str(store_dir), version=version)
    return model


# -- bad input: the same rows through the CLI and the API --------------------------------------


@dataclass(frozen=True)
class BadRows:
    """Rows a caller sends (``rows``), the file the CLI is given for them (``fmt``), the error
    class the API raises and the words both must say."""

    says: str
    error: type[Exception]
    rows: Callable[[], Any]
    fmt: str = "csv"


def _write(rows: Any, path: Path, fmt: str) -> Path:
    path = path.with_suffix(f".{fmt}")
    if fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "parquet":
        rows.to_parquet(path, index=False)
    else:
        rows.to_csv(path, index=False)
    return path


BAD_ROWS = {
    "header only": BadRows("the input has no rows", EmptyInputError, lambda: good_rows().iloc[:0]),
    "a feature column missing": BadRows(
        "missing feature column(s) 'feature_03' of the model's 22",
        MissingColumnsError,
        lambda: good_rows().drop(columns=["feature_03"]),
    ),
    "the categorical column missing": BadRows(
        "missing feature column(s) 'segment'", MissingColumnsError, lambda: good_rows().drop(columns=["segment"])
    ),
    "text in a numeric column": BadRows(
        "column 'feature_01' expects numbers: row 2 holds 'abc'",
        ColumnTypeError,
        lambda: with_values("feature_01", [0.5, 1.5, "abc", 2.0]),
    ),
    "infinity in a numeric column": BadRows(
        "column 'feature_02' expects finite numbers",
        ColumnTypeError,
        lambda: with_values("feature_02", [0.5, float("inf")]),
    ),
    "a number far out of range": BadRows(
        "column 'feature_04' is out of range (trained on",
        ColumnTypeError,
        lambda: with_values("feature_04", [0.5, 1e300]),
    ),
    "numbers in the categorical column": BadRows(
        "column 'segment' is categorical (text) in the signature; row 0 holds a int",
        ColumnTypeError,
        lambda: good_rows().assign(segment=7),
        fmt="parquet",
    ),
    "a word in the boolean column": BadRows(
        "column 'member' expects booleans (true/false): row 1 holds 'maybe'",
        ColumnTypeError,
        lambda: with_values("member", [True, "maybe", False]),
    ),
    "dates in a numeric column": BadRows(
        "column 'feature_05' is numeric in the signature; got datetime64",
        ColumnTypeError,
        lambda: good_rows(2).assign(feature_05=pd.to_datetime(["2026-01-01", "2026-01-02"])),
        fmt="parquet",
    ),
    "booleans in a numeric column": BadRows(
        "column 'feature_06' is numeric in the signature; got booleans",
        ColumnTypeError,
        lambda: good_rows().assign(feature_06=True),
        fmt="parquet",
    ),
    "a list in a record": BadRows(
        "column 'feature_07' is numeric in the signature; row 0 holds a list",
        ColumnTypeError,
        lambda: [{**json.loads(good_rows(1).to_json(orient="records"))[0], "feature_07": [1, 2]}],
        fmt="json",
    ),
    "a column twice": BadRows(
        "column 'feature_08' appears more than once",
        SignatureError,
        lambda: {
            "columns": [*good_rows().columns, "feature_08"],
            "data": [[*row, 0.0] for row in json.loads(good_rows().to_json(orient="values"))],
        },
        fmt="json",
    ),
    "not rows at all": BadRows(
        "expected rows as a DataFrame, a list of records", SignatureError, lambda: 42, fmt="json"
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROWS.values()), ids=list(BAD_ROWS))
def test_bad_rows_through_the_api_raise_one_typed_error(store_dir, case):
    with pytest.raises(case.error) as raised:
        api(store_dir).predict(case.rows())
    assert case.says in str(raised.value)


def _assert_one_line(proc: subprocess.CompletedProcess, says: str) -> None:
    assert proc.stderr.startswith("ml-platform: error: ") and says in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("case", list(BAD_ROWS.values()), ids=list(BAD_ROWS))
def test_bad_rows_through_the_cli_exit_2_with_one_line(store_dir, tmp_path, case):
    source = _write(case.rows(), tmp_path / "rows", case.fmt)
    proc = predict_cli(store_dir, "--model", MIXED, "--input", str(source), expect=2)
    _assert_one_line(proc, case.says)
    assert not list(tmp_path.glob("*.predictions.*"))  # nothing written


def _semicolons(path: Path) -> Path:
    good_rows().to_csv(path := path.with_suffix(".csv"), index=False, sep=";")
    return path


# Files the CLI is given that are not rows at all, and store problems (the API has its own below).
BAD_FILES = {
    "no such file": (lambda p: p.with_suffix(".csv"), (), "no such file"),
    "an empty file": (
        lambda p: (p.with_suffix(".csv").write_bytes(b""), p.with_suffix(".csv"))[1],
        (),
        "is empty (0 bytes)",
    ),
    "a corrupt parquet file": (
        lambda p: (p.with_suffix(".parquet").write_bytes(b"PAR1 not really"), p.with_suffix(".parquet"))[1],
        (),
        "cannot be read",
    ),
    "malformed JSON": (
        lambda p: (p.with_suffix(".json").write_text('[{"feature_00": 1,'), p.with_suffix(".json"))[1],
        (),
        "cannot be read",
    ),
    "an unknown format": (
        lambda p: (p.with_suffix(".xlsx").write_bytes(b"x"), p.with_suffix(".xlsx"))[1],
        (),
        "expected a .csv, .parquet or .json file",
    ),
    "a CSV separated by semicolons": (_semicolons, (), "a CSV must be comma-separated"),
    "an output that is not csv or parquet": (
        lambda p: _write(good_rows(), p, "csv"),
        ("--output", "out.xlsx"),
        "--output out.xlsx: expected a .csv",
    ),
    "a version that does not exist": (
        lambda p: _write(good_rows(), p, "csv"),
        ("--version", "v123"),
        "has no complete version 'v123'",
    ),
    "probabilities of a regression": (
        lambda p: _write(good_rows(), p, "csv"),
        ("--model", "diabetes", "--proba"),
        "is a regression: it has no class probabilities",
    ),
    "a model that does not exist": (
        lambda p: _write(good_rows(), p, "csv"),
        ("--model", "nope"),
        "model 'nope' has no production version",
    ),
}


@pytest.mark.parametrize(("write", "args", "says"), list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_bad_files_and_requests_through_the_cli_exit_2_with_one_line(store_dir, tmp_path, write, args, says):
    source = write(tmp_path / "rows")
    if "--model" not in args:
        args = ("--model", MIXED, *args)
    proc = predict_cli(store_dir, *args, "--input", str(source), expect=2)
    _assert_one_line(proc, says)


def test_a_tampered_artifact_is_refused_by_the_cli_and_the_api(store_dir, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(store_dir, copy)
    pointer = json.loads((copy / MIXED / "production.json").read_text())
    artifact = copy / MIXED / pointer["version"] / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    source = _write(good_rows(), tmp_path / "rows", "csv")
    proc = predict_cli(copy, "--model", MIXED, "--input", str(source), expect=2)
    _assert_one_line(proc, "refusing to load a changed artifact")
    with pytest.raises(ModelIntegrityError):
        api(copy)


def test_store_problems_through_the_api_raise_typed_errors(store_dir):
    with pytest.raises(NoProductionModelError):
        api(store_dir, model="nope")
    with pytest.raises(ModelVersionNotFoundError):
        api(store_dir, version="v123")
    with pytest.raises(PredictionError, match="is a regression: it has no class probabilities"):
        api(store_dir, model="diabetes").predict_proba(pd.DataFrame({"age": [0.01]}))


# -- good input --------------------------------------------------------------------------------


def test_rows_in_another_order_with_extra_columns_are_predicted_and_the_extras_reported(store_dir, tmp_path):
    rows = good_rows().assign(customer_id=range(6), note="x")
    rows = rows[list(reversed(rows.columns))]
    source = _write(rows, tmp_path / "rows", "csv")
    proc = predict_cli(store_dir, "--model", MIXED, "--input", str(source), "--proba")
    assert f"6 predictions by {MIXED} v" in proc.stdout
    assert "dropped 2 column(s) the model does not take: 'note', 'customer_id'" in proc.stdout
    written = pd.read_csv(tmp_path / "rows.predictions.csv")
    # The same answers as the model's own scikit-learn Pipeline on the rows in training order.
    model = api(store_dir)
    assert written["prediction"].tolist() == model.sklearn_model.predict(good_rows()).tolist()
    assert written[["proba_0", "proba_1"]].sum(axis=1).round(6).eq(1.0).all()
    assert list(written.columns[: len(rows.columns)]) == list(rows.columns)  # the input is kept as given


def test_nulls_and_unseen_categories_are_predicted_and_counted(store_dir, tmp_path):
    rows = good_rows().astype({"feature_00": float})
    rows.loc[0, "feature_00"] = np.nan
    rows.loc[[1, 2], "segment"] = "moon"
    source = _write(json.loads(rows.to_json(orient="records")), tmp_path / "rows", "json")
    out = tmp_path / "out.parquet"
    proc = predict_cli(store_dir, "--model", MIXED, "--input", str(source), "--output", str(out))
    assert "nulls (imputed as in training): 'feature_00' 1 row(s)" in proc.stdout
    assert "unseen categories (encoded as none of the known ones): 'segment' 2 row(s)" in proc.stdout
    assert len(pd.read_parquet(out)) == 6

    result = api(store_dir).predict_with_report(rows, proba=True)
    assert result.report.nulls == {"feature_00": 1} and result.report.unseen_categories == {"segment": 2}
    assert result.predictions.tolist() == pd.read_parquet(out)["prediction"].tolist()
    production = json.loads((store_dir / MIXED / "production.json").read_text())
    assert (result.version, result.sha256) == (production["version"], production["sha256"])


def test_a_regression_predicts_numbers(store_dir, tmp_path):
    frame = pd.read_parquet(next((store_dir.parent / "landing" / "diabetes").glob("*.parquet")))
    rows = frame.drop(columns=["progression"]).head(10)
    predicted = api(store_dir, model="diabetes").predict(rows)
    assert predicted.dtype.kind == "f" and np.isfinite(predicted).all() and len(predicted) == 10


# -- the store's models ------------------------------------------------------------------------


def test_models_lists_every_model_with_its_own_metrics_and_signature(store_dir):
    def models(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(BIN / "ml-platform"), "models", "--store-dir", str(store_dir), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    listing = models().stdout
    assert "diabetes (regression)" in listing and f"{MIXED} (classification)" in listing
    regression = listing[listing.index("diabetes (regression)") : listing.index(f"{MIXED} (classification)")]
    header = regression.splitlines()[1].split()
    assert header[1:4] == ["R2", "RMSE", "MAE"] and "Accuracy" not in regression
    production = json.loads((store_dir / "diabetes" / "production.json").read_text())
    row = next(line for line in regression.splitlines() if production["version"] in line)
    metadata = json.loads((store_dir / "diabetes" / production["version"] / "metadata.json").read_text())
    assert row.startswith("* ") and f"{metadata['metrics']['rmse']:.4f}" in row
    assert "(10 columns)" in row
    low, high = metadata["metric_intervals"]["r2"]  # the gate metric's bootstrap 95 % interval
    assert "R2 95 %" in regression and f"[{low:.4f}, {high:.4f}]" in row

    narrowed = json.loads(models("--model", "diabetes", "--json").stdout)
    assert {r["model"] for r in narrowed} == {"diabetes"}
    assert narrowed[0]["r2"] == metadata["metrics"]["r2"] and "accuracy" not in narrowed[0]
    assert narrowed[0]["gate_metric"] == "r2" and narrowed[0]["gate_interval"] == [low, high]
    everything = json.loads(models("--json").stdout)
    assert {r["model"] for r in everything} == {"diabetes", MIXED}


def test_production_prints_the_signature(store_dir):
    proc = subprocess.run(
        [str(BIN / "ml-platform"), "production", "--store-dir", str(store_dir), "--model", MIXED],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "22 columns (20 numeric, 1 boolean, 1 categorical), target 'churned', classes 0, 1" in proc.stdout
    assert "  segment " in proc.stdout and "east, north, south, west" in proc.stdout
    shown = json.loads(
        subprocess.run(
            [str(BIN / "ml-platform"), "production", "--store-dir", str(store_dir), "--model", MIXED, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    )
    assert [f["name"] for f in shown["signature"]["features"]][-2:] == ["segment", "member"]
