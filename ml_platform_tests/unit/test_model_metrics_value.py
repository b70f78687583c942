"""model_metrics' value as one type: built from what the scoring functions return, read through its
fields, round-tripped through plain data."""

import pandas as pd
from sklearn.ensemble import RandomForestClassifier

from ml_platform.ml import classification_metrics
from ml_platform.model_metrics import ChampionComparison, ModelMetrics, SignatureComparison
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
    assert set(metrics.details) == {"labels", "confusion_matrix", "report", "not_computed"}
    full = metrics.with_(
        champion=ChampionComparison("v1", 12, {"accuracy": 0.9}, {"accuracy": 1.0}),
        signature=SignatureComparison("v1", change=SignatureChange(added=("y",))),
        mlflow_run_id="abc",
    )
    assert metrics.champion is None  # with_ made a new value
    again = ModelMetrics.from_dict(full.to_dict())
    assert again == full and again.champion.compared and again.signature.describe() == "columns added: 'y'"
