"""CompiledModel and parity_of (ml_platform.compiled): a version's compiled form answers as its
scikit-learn model answers, for every built-in estimator (forests, histogram gradient boosting
binary and 3-class, logistic regression, ridge), a decision threshold (fixed and tuned), extra trees
and a team's own estimator, on requests that look real (test_row_plan's table: unseen categories,
missing values, extra columns, as JSON gives them): labels equal, probabilities and values within
1e-9. One row a request is walked (in plain Python for gradient boosting), a few rows in NumPy; 500
rows take scikit-learn's own trees on the plan's matrix (``WALK_LIMIT``); each must answer alike.

A compiled form serves only on the evidence of its ``Parity``: one that disagrees with scikit-learn
(forced here) leaves the version on scikit-learn's path with the reason, as does a parity recorded
under another compiled format or scikit-learn version, or none; a model with its own feature step or
a declared datetime column has no compiled form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import FunctionTransformer
from threadpoolctl import threadpool_limits

from ml_platform import compiled
from ml_platform.compiled import (
    COMPILED_FORMAT,
    WALK_LIMIT,
    CompiledModel,
    Parity,
    compiled_or_reason,
    parity_of,
)
from ml_platform.ml import build_model, encoding_recipe, make_model
from ml_platform.row_plan import NoPlan, Unplanned
from ml_platform.signature import Signature, check_rows, infer_signature
from ml_platform_tests.unit.test_row_plan import KINDS, churned, fresh_frame, orders_table, records_of, signal

TRAIN_ROWS = 2500
TEST_ROWS = 500  # the test split parity_of compares on
BATCH_ROWS = 500  # fresh rows in one request: past WALK_LIMIT for every tree model here
SINGLE_ROWS = 60  # fresh rows one a request: walked in NumPy, or in Python (gradient boosting)
FEW_ROWS = 6  # fresh rows a request: walked in NumPy
RTOL, ATOL = 1e-9, 1e-12
TREES = {"n_estimators": 20, "max_depth": 10, "random_state": 0}
BOOSTING = {"max_iter": 20, "random_state": 0}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One OpenMP / BLAS thread for the fits and predictions here: the fast layer runs two workers on
    two cores, where histogram gradient boosting's threads waiting on each other cost seconds a fit."""
    with threadpool_limits(1):
        yield


@dataclass(frozen=True)
class Case:
    task: str
    estimator: str
    params: dict[str, Any]
    target: str  # "churned" (two classes), "band" (three) or "spend" (a regression)
    decision: dict[str, Any] | None = None


CASES = {
    "forest-classifier": Case("classification", "random_forest", TREES, "churned"),
    "boosting-binary": Case("classification", "hist_gradient_boosting", BOOSTING, "churned"),
    "boosting-3-classes": Case("classification", "hist_gradient_boosting", BOOSTING, "band"),
    "logistic-regression": Case("classification", "logistic_regression", {}, "churned"),
    "forest-regressor": Case("regression", "random_forest", TREES, "spend"),
    "boosting-regressor": Case("regression", "hist_gradient_boosting", BOOSTING, "spend"),
    "ridge": Case("regression", "ridge", {}, "spend"),
    "fixed-threshold": Case(
        "classification", "hist_gradient_boosting", BOOSTING, "churned", {"threshold": 0.3, "positive_class": "yes"}
    ),
    "tuned-threshold": Case("classification", "random_forest", TREES, "churned", {"maximize": "f1"}),
    "extra-trees": Case(
        "classification", "sklearn.ensemble:ExtraTreesClassifier", {"n_estimators": 20, "random_state": 0}, "churned"
    ),
    "own-estimator": Case("classification", "sklearn.naive_bayes:GaussianNB", {}, "churned"),
}


def targets(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    score = signal(frame, seed=1)
    return {
        "churned": churned(frame),
        "band": np.select([score < np.quantile(score, 0.3), score < np.quantile(score, 0.7)], ["low", "mid"], "high"),
        "spend": 20.0 + 3.0 * score,
    }


@dataclass
class Fitted:
    """A fitted model, its signature and compiled form, and what scikit-learn answers on the fresh records."""

    case: Case
    model: Any
    signature: Signature
    compiled: CompiledModel
    records: list[dict[str, Any]]
    expected: np.ndarray
    expected_proba: np.ndarray | None

    @property
    def classifier(self) -> bool:
        return self.case.task == "classification"


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, dict[str, np.ndarray], pd.DataFrame, list[dict[str, Any]]]:
    """The training rows and their targets, the test split's feature rows, and fresh JSON records."""
    train = orders_table(TRAIN_ROWS, seed=0)
    return train, targets(train), orders_table(TEST_ROWS, seed=11), records_of(fresh_frame(BATCH_ROWS, seed=7))


@pytest.fixture(scope="module")
def fitted(table):
    """``fitted(name)``: the case's model, fitted once for the module."""
    train, labels, _, records = table
    cache: dict[str, Fitted] = {}

    def fit(name: str) -> Fitted:
        if name not in cache:
            case = CASES[name]
            y = labels[case.target]
            classes = sorted(set(y)) if case.task == "classification" else None
            signature = infer_signature(train, case.target, case.task, classes, kinds=KINDS)
            model = make_model(
                case.task,
                case.estimator,
                case.params,
                encoding=encoding_recipe(KINDS),
                decision=case.decision,
                classes=classes,
            ).fit(train, y)
            frame, _ = check_rows(records, signature)
            proba = model.predict_proba(frame) if case.task == "classification" else None
            compiled_model = CompiledModel(model, signature)
            cache[name] = Fitted(case, model, signature, compiled_model, records, model.predict(frame), proba)
        return cache[name]

    return fit


def assert_answers(found: Fitted, got: tuple, rows: slice) -> None:
    """Labels equal; values and probabilities within 1e-9 relatively."""
    predictions, probabilities, planned = got
    assert len(planned) == len(predictions) == len(found.expected[rows])
    if found.classifier:
        np.testing.assert_array_equal(predictions, found.expected[rows])
        np.testing.assert_allclose(probabilities, found.expected_proba[rows], rtol=RTOL, atol=ATOL)
    else:
        np.testing.assert_allclose(np.asarray(predictions, dtype=float), found.expected[rows], rtol=RTOL, atol=ATOL)


def trees_of(form: Any) -> int | None:
    """The trees a form walks (through a threshold), None for an estimator's own methods."""
    return getattr(getattr(form, "inner", form), "trees", None)


# -- every estimator, as scikit-learn answers -----------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_one_row_a_request_is_answered_as_scikit_learn_answers_it(fitted, name):
    found = fitted(name)
    trees = trees_of(found.compiled.form)
    assert trees is None or trees <= WALK_LIMIT  # one row: walked (in Python for gradient boosting)
    for row in range(SINGLE_ROWS):
        got = found.compiled.outputs([found.records[row]], found.classifier)
        assert_answers(found, got, slice(row, row + 1))


@pytest.mark.parametrize("name", CASES)
def test_a_few_rows_a_request_are_answered_as_scikit_learn_answers_them(fitted, name):
    found = fitted(name)
    trees = trees_of(found.compiled.form)
    assert trees is None or FEW_ROWS * trees <= WALK_LIMIT  # the NumPy walk
    for start in range(0, SINGLE_ROWS, FEW_ROWS):
        got = found.compiled.outputs(found.records[start : start + FEW_ROWS], found.classifier)
        assert_answers(found, got, slice(start, start + FEW_ROWS))


@pytest.mark.parametrize("name", CASES)
def test_a_batch_of_rows_is_answered_as_scikit_learn_answers_it(fitted, name):
    found = fitted(name)
    trees = trees_of(found.compiled.form)
    assert trees is None or len(found.records) * trees > WALK_LIMIT  # scikit-learn's trees on the matrix
    got = found.compiled.outputs(found.records, found.classifier)
    assert_answers(found, got, slice(None))
    # The same rows in the other shape of a body, with the report of the pandas path.
    columns = list(found.records[0])
    body = {"columns": columns, "data": [[r[c] for c in columns] for r in found.records]}
    got = found.compiled.outputs(body, found.classifier)
    assert_answers(found, got, slice(None))
    assert got[2].report.to_dict() == check_rows(body, found.signature)[1].to_dict()


@pytest.mark.parametrize("name", CASES)
def test_parity_of_every_estimator_is_the_compiled_path(fitted, table, name):
    found = fitted(name)
    test_x = table[2]
    parity = parity_of(found.model, found.signature, test_x, found.classifier)
    assert parity.path == "compiled", parity.reason
    assert parity.rows == TEST_ROWS and parity.left_to_pandas == 0
    assert parity.max_difference is not None and parity.max_difference <= 1e-9
    assert parity.form == found.compiled.form.description and parity.reason is None
    assert parity.describe().startswith(f"compiled ({parity.form}): answered {TEST_ROWS} test rows")
    served, reason = compiled_or_reason(found.model, found.signature, parity)
    assert reason is None and isinstance(served, CompiledModel)


def test_rows_the_plan_leaves_to_pandas_are_not_answered_by_the_compiled_form(fitted):
    found = fitted("forest-classifier")
    record = {**found.records[0], "distance": "3.5"}  # numeric text: the pandas path converts it
    with pytest.raises(Unplanned):
        found.compiled.outputs([record], True)


# -- a form that disagrees ----------------------------------------------------------------------------------
def _flipped_labels(predictions, probabilities):
    return np.where(predictions == "yes", "no", "yes"), probabilities


def _probabilities_off(predictions, probabilities):
    return predictions, probabilities + 1e-3


def _values_off(predictions, probabilities):
    return predictions + 1e-3, probabilities


DISAGREEMENTS = [
    ("labels-flipped", "forest-classifier", _flipped_labels, "labels: "),
    ("probabilities-off", "forest-classifier", _probabilities_off, "probabilities differ by up to 0.001"),
    ("values-off", "forest-regressor", _values_off, "values differ by up to 0.001"),
]


@pytest.mark.parametrize(("name", "change", "said"), [d[1:] for d in DISAGREEMENTS], ids=[d[0] for d in DISAGREEMENTS])
def test_a_form_that_disagrees_with_scikit_learn_leaves_the_version_on_scikit_learn(
    fitted, table, monkeypatch, name, change, said
):
    found = fitted(name)
    outputs = compiled._ForestForm.outputs
    monkeypatch.setattr(compiled._ForestForm, "outputs", lambda self, x, proba: change(*outputs(self, x, proba)))
    parity = parity_of(found.model, found.signature, table[2], found.classifier)
    assert parity.path == "scikit-learn"
    assert f"disagreed with scikit-learn on {TEST_ROWS} of {TEST_ROWS} test rows" in parity.reason
    assert said in parity.reason, parity.reason
    assert parity.describe() == f"scikit-learn: {parity.reason}"
    assert compiled_or_reason(found.model, found.signature, parity) == (None, parity.reason)


def test_a_form_answering_nan_does_not_pass_parity(fitted, table, monkeypatch):
    """A form whose probabilities are NaN answers nothing scikit-learn answered: it must not serve."""
    found = fitted("forest-classifier")
    outputs = compiled._ForestForm.outputs

    def nan_probabilities(self, x, proba):
        predictions, probabilities = outputs(self, x, proba)
        return predictions, np.full_like(probabilities, np.nan)

    monkeypatch.setattr(compiled._ForestForm, "outputs", nan_probabilities)
    parity = parity_of(found.model, found.signature, table[2], True)
    assert parity.path == "scikit-learn", parity


def test_a_classifier_without_probabilities_is_compared_on_its_labels(table):
    """LinearSVC has no predict_proba: evaluation asks parity_of without probabilities
    (``classifier=outputs.proba is not None``); its labels (text) must still be compared as labels."""
    train, labels, test_x, records = table
    signature = infer_signature(train, "churned", "classification", ["no", "yes"], kinds=KINDS)
    model = make_model("classification", "sklearn.svm:LinearSVC", {}, encoding=encoding_recipe(KINDS))
    model.fit(train, labels["churned"])
    predictions, _, _ = CompiledModel(model, signature).outputs(records, False)
    np.testing.assert_array_equal(predictions, model.predict(check_rows(records, signature)[0]))
    parity = parity_of(model, signature, test_x, False)
    assert parity.path == "compiled" and parity.rows == TEST_ROWS, parity


# -- the parity a version records ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded(fitted, table) -> tuple[Fitted, Parity]:
    found = fitted("boosting-binary")
    return found, parity_of(found.model, found.signature, table[2], True)


UNTRUSTED = [
    (
        "another-compiled-format",
        {"format": COMPILED_FORMAT + 1},
        f"checked by compiled format {COMPILED_FORMAT + 1}, this platform's is {COMPILED_FORMAT}",
    ),
    ("another-scikit-learn", {"sklearn_version": "1.2.0"}, f"scikit-learn 1.2.0, this is {sklearn.__version__}"),
    ("scikit-learn-path", {"path": "scikit-learn", "reason": "it disagreed"}, "it disagreed"),
]


@pytest.mark.parametrize(("changes", "said"), [u[1:] for u in UNTRUSTED], ids=[u[0] for u in UNTRUSTED])
def test_a_parity_not_trusted_here_gives_no_compiled_form_and_says_why(recorded, changes, said):
    found, parity = recorded
    assert parity.path == "compiled"
    stale = Parity.from_dict({**parity.to_dict(), **changes})
    served, reason = compiled_or_reason(found.model, found.signature, stale)
    assert served is None and said in reason, reason


def test_no_parity_recorded_gives_no_compiled_form_and_says_so(recorded):
    found, _ = recorded
    served, reason = compiled_or_reason(found.model, found.signature, None)
    assert served is None and reason.startswith("no parity recorded")


def test_a_parity_round_trips_through_json_and_ignores_keys_it_does_not_know(recorded):
    _, parity = recorded
    stored = json.loads(json.dumps(parity.to_dict()))
    assert Parity.from_dict(stored) == parity
    assert Parity.from_dict({**stored, "measured_on": "a newer platform"}) == parity
    assert Parity.from_dict(None) is None and Parity.from_dict({}) is None
    assert stored["format"] == COMPILED_FORMAT and stored["sklearn_version"] == sklearn.__version__


# -- no compiled form -------------------------------------------------------------------------------------------
def with_distance_per_item(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(distance_per_item=frame["distance"] / frame["qty"])


def own_feature_step(train: pd.DataFrame, y: np.ndarray) -> tuple[Any, Signature]:
    """A model whose feature step (``features.transform``) comes before the encoder."""
    model = build_model(
        RandomForestClassifier(n_estimators=5, random_state=0),
        transform=FunctionTransformer(with_distance_per_item),
        encoding=encoding_recipe(KINDS),
    )
    return model.fit(train, y), infer_signature(train, "churned", "classification", ["no", "yes"], kinds=KINDS)


def declared_datetime(train: pd.DataFrame, y: np.ndarray) -> tuple[Any, Signature]:
    """A model with a declared datetime column: pandas reads its dates."""
    frame = train.assign(placed_at=pd.date_range("2026-01-01", periods=len(train), freq="41min").astype(str))
    kinds = {**KINDS, "placed_at": "datetime"}
    model = make_model("classification", "random_forest", {"n_estimators": 5}, encoding=encoding_recipe(kinds))
    return model.fit(frame, y), infer_signature(frame, "churned", "classification", ["no", "yes"], kinds=kinds)


@pytest.mark.parametrize(
    ("build", "said"),
    [(own_feature_step, "its own feature step"), (declared_datetime, "datetime")],
    ids=["own-feature-step", "declared-datetime"],
)
def test_a_model_the_plan_cannot_take_has_no_compiled_form(table, build, said):
    train, labels, _, _ = table
    model, signature = build(train.head(600), labels["churned"][:600])
    with pytest.raises(NoPlan, match=said):
        CompiledModel(model, signature)
    test_x = orders_table(50, seed=12)
    if "placed_at" in signature.columns:
        test_x = test_x.assign(placed_at="2026-02-01 10:00")
    parity = parity_of(model, signature, test_x, True)
    assert parity.path == "scikit-learn" and said in parity.reason, parity
    assert compiled_or_reason(model, signature, Parity("compiled", "forged", 50, 0, 0.0)) == (None, parity.reason)


def test_a_version_without_a_signature_has_no_compiled_form(fitted, table):
    found = fitted("logistic-regression")
    parity = parity_of(found.model, None, table[2], True)
    assert parity.path == "scikit-learn" and parity.reason == "the version records no signature"


def test_a_compiled_form_that_fails_in_the_server_leaves_the_answer_to_scikit_learn(
    fitted, table, tmp_path, monkeypatch
):
    """The server's own app (in this process): a version stored with its parity answers through its
    compiled form; should the form raise at request time, scikit-learn answers the same rows (the
    same labels and probabilities) and the request is logged as any other, never a 500."""
    from ml_platform.backends.local import LocalModelStore
    from ml_platform.clock import now
    from ml_platform_tests.support.serve_process import serving_in_process

    found = fitted("forest-classifier")
    parity = parity_of(found.model, found.signature, table[2], True)
    store = LocalModelStore(root=str(tmp_path))
    metadata = {"task": "classification", "target": "churned", "signature": found.signature.to_dict()}
    version = store.save_version("orders", found.model, {**metadata, "parity": parity.to_dict()}).version
    store.promote("orders", version, reason="test")
    rows = found.records[:3]
    found.compiled.plan.rows(rows)  # planned (not left to pandas): the compiled form is asked

    def broken(self, x, proba):
        raise RuntimeError("a walk that breaks")

    with serving_in_process(tmp_path, {"orders": {}}, now) as client:
        described = client.get("/v1/models/orders").json()
        assert described["serving"]["path"] == "compiled", described["serving"]
        monkeypatch.setattr(compiled._ForestForm, "outputs", broken)
        answered = client.post("/v1/models/orders/predict?proba=true", json=rows)
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["predictions"] == found.expected[:3].tolist()
    np.testing.assert_allclose(body["probabilities"], found.expected_proba[:3], rtol=RTOL, atol=ATOL)
