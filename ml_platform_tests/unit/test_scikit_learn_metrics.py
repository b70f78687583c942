"""The scores of model_metrics are scikit-learn's own functions on the test rows: multiclass, a test
split missing a class, an estimator without predict_proba, and regression."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, RidgeClassifier
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_percentage_error,
    median_absolute_error,
    roc_auc_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import label_binarize

from ml_platform.errors import DataValidationError
from ml_platform.metrics import PROBABILITY_METRICS
from ml_platform.ml import classification_metrics, regression_metrics


@pytest.fixture(scope="module")
def iris():
    frame = load_iris(as_frame=True).frame
    # Noise so that the forest is not perfect and every score means something.
    rng = np.random.default_rng(3)
    frame.iloc[:, :4] += rng.normal(0, 0.6, size=(len(frame), 4))
    train, test = frame.iloc[::2], frame.iloc[1::2]
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(train.drop(columns="target"), train["target"])
    return model, test


def test_multiclass_roc_auc_is_one_vs_rest_macro_and_average_precision_is_macro(iris):
    model, test = iris
    measured = classification_metrics(model, test, "target")
    x, y = test.drop(columns="target"), test["target"]
    proba = model.predict_proba(x)
    assert measured["roc_auc"] == roc_auc_score(y, proba, multi_class="ovr", average="macro")
    assert measured["average_precision"] == average_precision_score(
        label_binarize(y, classes=[0, 1, 2]), proba, average="macro"
    )
    assert measured["log_loss"] == log_loss(y, proba)
    assert measured["balanced_accuracy"] == balanced_accuracy_score(y, model.predict(x))
    assert measured["f1_macro"] == f1_score(y, model.predict(x), average="macro")
    assert 0.5 < measured["roc_auc"] < 1  # the noise makes it a real score, not a formality
    # Brier is binary in scikit-learn: the report says why it is absent.
    assert "brier_score_loss" not in measured
    assert measured["not_computed"] == {"brier_score_loss": "binary classification only"}
    assert set(measured["report"]) >= {"0", "1", "2"}


def test_a_class_absent_from_the_test_split_leaves_out_the_scores_it_cannot_define(iris):
    model, test = iris
    without_two = test[test["target"] != 2]
    measured = classification_metrics(model, without_two, "target")
    assert "roc_auc" not in measured and "average_precision" not in measured
    assert measured["not_computed"]["roc_auc"] == "class(es) 2 absent from the test split"
    # log_loss is defined with the labels the model knows.
    proba = model.predict_proba(without_two.drop(columns="target"))
    assert measured["log_loss"] == log_loss(without_two["target"], proba, labels=[0, 1, 2])


def test_one_class_in_a_binary_test_split_still_has_brier_and_log_loss():
    # x moves the odds of "yes" without deciding it: the forest's probabilities are neither 0 nor 1.
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 10, 200)
    frame = pd.DataFrame({"x": x, "target": np.where(rng.random(200) < x / 10, "yes", "no")})
    train, test = frame.iloc[:100], frame.iloc[100:]
    model = RandomForestClassifier(n_estimators=20, min_samples_leaf=5, random_state=0)
    model.fit(train[["x"]], train["target"])
    only_no = test[test["target"] == "no"]
    measured = classification_metrics(model, only_no, "target")
    assert measured["not_computed"] == {
        "roc_auc": "one class in the test split",
        "average_precision": "one class in the test split",
    }
    proba = model.predict_proba(only_no[["x"]])
    assert list(model.classes_) == ["no", "yes"]
    assert measured["brier_score_loss"] == brier_score_loss(only_no["target"] == "yes", proba[:, 1])
    assert measured["log_loss"] == log_loss(only_no["target"], proba, labels=["no", "yes"])
    assert 0.05 < measured["brier_score_loss"] < 0.5 and measured["log_loss"] > 0.1  # real values, not 0


def test_an_estimator_without_predict_proba_gets_every_other_metric():
    frame = pd.DataFrame({"x": np.arange(60.0) % 7, "target": (np.arange(60) % 7 > 3).astype(int)})
    model = make_pipeline(RidgeClassifier()).fit(frame[["x"]], frame["target"])
    measured = classification_metrics(model, frame, "target")
    assert not set(PROBABILITY_METRICS) & set(measured)
    assert measured["not_computed"] == dict.fromkeys(PROBABILITY_METRICS, "RidgeClassifier has no predict_proba")
    assert {"accuracy", "balanced_accuracy", "f1", "f1_macro"} <= set(measured)


def test_regression_has_mape_and_median_absolute_error():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.uniform(1, 10, 200)})
    frame["y"] = 3 * frame["x"] + 5 + rng.normal(0, 1, 200)
    model = LinearRegression().fit(frame[["x"]], frame["y"])
    measured = regression_metrics(model, frame, "y")
    predicted = model.predict(frame[["x"]])
    assert measured["mape"] == mean_absolute_percentage_error(frame["y"], predicted)
    assert measured["median_absolute_error"] == median_absolute_error(frame["y"], predicted)
    assert 0 < measured["mape"] < 0.2


def test_an_empty_test_split_is_named():
    frame = pd.DataFrame({"x": np.arange(10.0), "target": [0, 1] * 5})
    model = RandomForestClassifier(n_estimators=2, random_state=0).fit(frame[["x"]], frame["target"])
    with pytest.raises(DataValidationError, match="the test split is empty"):
        classification_metrics(model, frame.iloc[:0], "target")


@pytest.mark.parametrize(("metric", "scorer"), [("roc_auc", "roc_auc_ovr"), ("log_loss", "neg_log_loss")])
def test_variants_are_ranked_by_the_scorer_of_the_gate_metric(iris, metric, scorer):
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from ml_platform.ml import CV_FOLDS, build_model, fit_variant

    _, test = iris
    x, y = test.drop(columns="target"), test["target"]
    _, score = fit_variant(
        build_model(RandomForestClassifier(n_estimators=10, random_state=0)), x, y, metric, 7, lambda *_: None
    )
    folds = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=7)
    model = build_model(RandomForestClassifier(n_estimators=10, random_state=0))
    expected = float(np.mean(cross_val_score(model, x, y, scoring=scorer, cv=folds)))
    # In the metric's own units (three classes: one-vs-rest): a loss stays positive, as the gate reads it.
    assert score == pytest.approx(abs(expected), rel=1e-12)
