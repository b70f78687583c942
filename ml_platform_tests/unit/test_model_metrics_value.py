"""model_metrics' value as one type: built from what the scoring functions return, read through its
fields, round-tripped through plain data."""

import pickle

import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from ml_platform.ml import classification_metrics
from ml_platform.model_metrics import (
    ChampionComparison,
    ClassificationDetails,
    ModelMetrics,
    RegressionDetails,
    SignatureComparison,
)
from ml_platform.signature import SignatureChange


def test_model_metrics_keeps_scores_details_and_comparisons():
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0] * 5, "target": [0, 0, 1, 1] * 5})
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(frame[["x"]], frame["target"])
    measured = classification_metrics(model, frame, "target")
    metrics = ModelMetrics.of("classification", measured)
    assert set(metrics.scores) == {
        "accuracy",
        "balanced_accuracy",
        *(f"{name}{suffix}" for name in ("precision", "recall", "f1") for suffix in ("", "_macro")),
        "roc_auc",
        "average_precision",
        "log_loss",
        "brier_score_loss",
    }
    assert all(metrics.scores[k] == measured[k] for k in metrics.scores)
    assert metrics.test_rows == 20 and metrics.score("accuracy") == measured["accuracy"]
    assert isinstance(metrics.details, ClassificationDetails) and metrics.details.labels == [0, 1]
    assert metrics.details.report["1"]["support"] == 10 and sum(map(sum, metrics.details.confusion_matrix)) == 20
    assert metrics.decision is None and metrics.not_computed == {}
    full = metrics.with_(
        champion=ChampionComparison("v1", 12, {"accuracy": 0.9}, {"accuracy": 1.0}),
        signature=SignatureComparison("v1", change=SignatureChange(added=("y",))),
        mlflow_run_id="abc",
    )
    assert metrics.champion is None  # with_ made a new value
    again = ModelMetrics.from_dict(full.to_dict())
    assert again == full and again.champion.compared and again.signature.describe() == "columns added: 'y'"


# model_metrics' value as an older platform stored it: the details a plain dict of the scoring
# functions' keys (a file written by to_dict, or a pickle of the value).
OLD_CLASSIFICATION = {
    "task": "classification",
    "scores": {"accuracy": 0.75, "roc_auc": 0.8},
    "test_rows": 4,
    "details": {
        "labels": ["no", "yes"],
        "confusion_matrix": [[2, 0], [1, 1]],
        "report": {
            "no": {"precision": 0.6667, "recall": 1.0, "f1-score": 0.8, "support": 2.0},
            "yes": {"precision": 1.0, "recall": 0.5, "f1-score": 0.6667, "support": 2.0},
            "accuracy": 0.75,
        },
        "not_computed": {"brier_score_loss": "binary classification only"},
        "decision": {"threshold": 0.4, "positive_class": "yes"},
    },
}
OLD_REGRESSION = {
    "task": "regression",
    "scores": {"r2": 0.5},
    "test_rows": 3,
    "details": {
        "residual_quantiles": {"p5": -1.0, "p50": 0.0, "p95": 1.0},
        "calibration": [{"Actual (bin)": "(0, 1]", "Rows": 3, "Mean actual": 0.5, "Mean predicted": 0.4}],
    },
}


def test_an_old_value_with_its_details_as_a_dict_loads_and_round_trips():
    metrics = ModelMetrics.from_dict(OLD_CLASSIFICATION)
    details = metrics.details
    assert isinstance(details, ClassificationDetails)
    assert details.labels == ["no", "yes"] and details.confusion_matrix == [[2, 0], [1, 1]]
    assert metrics.decision == {"threshold": 0.4, "positive_class": "yes"}
    assert metrics.not_computed == {"brier_score_loss": "binary classification only"}
    assert metrics.classes() == ["no", "yes"] and metrics.class_rows("yes") == 2
    assert metrics.value("recall", "yes") == 0.5 and metrics.value("recall", "maybe") is None
    assert ModelMetrics.from_dict(metrics.to_dict()) == metrics
    assert metrics.to_dict()["details"] == OLD_CLASSIFICATION["details"]  # the same plain shape
    regression = ModelMetrics.from_dict(OLD_REGRESSION)
    assert isinstance(regression.details, RegressionDetails)
    assert regression.details.residual_quantiles["p50"] == 0.0 and regression.details.calibration[0]["Rows"] == 3
    assert regression.decision is None and regression.not_computed == {} and regression.classes() == []
    assert ModelMetrics.from_dict(regression.to_dict()) == regression


def test_an_old_pickle_with_its_details_as_a_dict_loads():
    old = object.__new__(ModelMetrics)  # as an older platform pickled it: no slices yet, a dict of details
    old.__dict__.update(OLD_CLASSIFICATION, champion=None, signature=None)
    loaded = pickle.loads(pickle.dumps(old))
    assert isinstance(loaded.details, ClassificationDetails) and loaded.slices == [] and loaded.baseline is None
    assert loaded == ModelMetrics.from_dict(OLD_CLASSIFICATION)
    assert pickle.loads(pickle.dumps(loaded)) == loaded


def test_details_default_to_the_task_and_refuse_the_other_task():
    assert ModelMetrics("classification", {"accuracy": 0.8}, 10).details == ClassificationDetails()
    assert ModelMetrics("regression", {"r2": 0.8}, 10).details == RegressionDetails()
    with pytest.raises(TypeError, match="RegressionDetails given as the details of a classification"):
        ModelMetrics("classification", {"accuracy": 0.8}, 10, details=RegressionDetails())
