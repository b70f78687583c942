"""Each threshold of the gate judges a real model's scores: a per-class recall on an imbalanced
problem, a metric the model could not have, a class it does not know, the champion margin in
the metric's units or relative to the champion's value, and scikit-learn's do-nothing baseline."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import recall_score

from ml_platform.assets.evaluation import baseline_scores
from ml_platform.checks.model_quality import evaluate_gate
from ml_platform.ml import classification_metrics
from ml_platform.model_metrics import ChampionComparison, ModelMetrics
from ml_platform.spec import GateThreshold


def rare_positives(rows: int, seed: int) -> pd.DataFrame:
    """About 4 % "yes", learnable from x1 and x2 but not perfectly."""
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.normal(size=(3, rows))
    score = 1.6 * x1 + 1.1 * x2 + rng.normal(0, 0.8, rows)
    return pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "churned": np.where(score > 3.2, "yes", "no")})


@pytest.fixture(scope="module")
def scored() -> tuple[ModelMetrics, pd.DataFrame, RandomForestClassifier]:
    train, test = rare_positives(4000, 0), rare_positives(2000, 1)
    model = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0)
    model.fit(train.drop(columns="churned"), train["churned"])
    return ModelMetrics.of("classification", classification_metrics(model, test, "churned")), test, model


def threshold(key: str, value: float, of_class: str | None = None, **margin) -> GateThreshold:
    metric = key.split("_", 1)[1]
    return GateThreshold(key, metric, value, key.startswith("min_"), of_class, **margin)


def test_a_per_class_recall_is_the_class_own_recall(scored):
    metrics, test, model = scored
    truth = recall_score(test["churned"], model.predict(test.drop(columns="churned")), pos_label="yes")
    assert metrics.value("recall", "yes") == pytest.approx(truth, rel=1e-12)
    assert 0.1 < truth < 0.95  # the minority is hard: a real score
    # High accuracy (the majority) and a low recall of the minority: one passes, the other fails.
    assert evaluate_gate(metrics, threshold("min_accuracy", 0.9)).passed
    held = evaluate_gate(metrics, threshold("min_recall", truth + 0.05, "yes"))
    assert not held.passed
    assert held.description.startswith(f"recall of yes {truth:.4f} < threshold {truth + 0.05:g}")
    assert held.metadata["Test rows of the class"].value == int((test["churned"] == "yes").sum())
    assert evaluate_gate(metrics, threshold("min_recall", truth - 0.05, "yes")).passed


def test_a_metric_the_model_could_not_have_fails_saying_why(scored):
    metrics, _, _ = scored
    one_class = metrics.with_(scores={k: v for k, v in metrics.scores.items() if k != "roc_auc"})
    not_computed = {"roc_auc": "one class in the test split"}
    one_class = one_class.with_(details=replace(metrics.details, not_computed=not_computed))
    result = evaluate_gate(one_class, threshold("min_roc_auc", 0.8))
    assert not result.passed
    assert result.description == (
        "roc_auc: not computed (one class in the test split): the gate cannot pass without it"
    )


def test_a_class_the_model_does_not_know_names_its_classes_and_the_yaml_boolean(scored):
    metrics, _, _ = scored
    result = evaluate_gate(metrics, threshold("min_recall", 0.3, "True"))
    assert not result.passed
    assert result.description.startswith("recall of True: 'True' is not a class of the model (its classes: no, yes)")
    assert "quote the class name" in result.description
    plain = evaluate_gate(metrics, threshold("min_f1", 0.3, "maybe"))
    assert "quote" not in plain.description and "'maybe' is not a class" in plain.description


def champion_of(metrics: ModelMetrics, champion: dict, challenger: dict) -> ModelMetrics:
    return metrics.with_(champion=ChampionComparison("v1", 500, champion, challenger))


def test_the_champion_margin_in_units_and_relative(scored):
    metrics, _, _ = scored
    compared = champion_of(metrics, {"log_loss": 0.20, "roc_auc": 0.90}, {"log_loss": 0.215, "roc_auc": 0.885})
    # log loss 0.215 vs 0.20: worse by 0.015, i.e. 7.5 % of the champion's value.
    loose = threshold("max_log_loss", 5.0, max_regression=0.1, relative=True)
    tight = threshold("max_log_loss", 5.0, max_regression=0.05, relative=True)
    assert evaluate_gate(compared, loose).passed
    held = evaluate_gate(compared, tight)
    assert not held.passed and "worse by more than 0.05 of its value" in held.description
    assert held.metadata["Champion Log loss"].value == 0.20
    assert evaluate_gate(compared, threshold("min_roc_auc", 0.5, max_regression=0.02)).passed
    assert not evaluate_gate(compared, threshold("min_roc_auc", 0.5, max_regression=0.01)).passed


def test_a_champion_stored_without_the_metric_is_not_compared_on_it(scored):
    metrics, _, _ = scored
    old = champion_of(metrics, {"accuracy": 0.99}, {"accuracy": 0.5})  # kept headline scores only
    result = evaluate_gate(old, threshold("min_recall", 0.0, "yes"))
    assert result.passed
    assert "not compared with champion v1 on recall of yes" in result.description
    assert not evaluate_gate(old, threshold("min_accuracy", 0.0)).passed  # accuracy is compared


def with_baseline(metrics: ModelMetrics, train: pd.DataFrame, test: pd.DataFrame) -> ModelMetrics:
    pipeline = SimpleNamespace(task="classification", target="churned")
    return metrics.with_(baseline=baseline_scores(pipeline, train, test))


def test_the_baseline_is_scikit_learns_dummy_classifier_fitted_on_the_training_rows(scored):
    metrics, test, _ = scored
    train = rare_positives(4000, 0)
    judged = with_baseline(metrics, train, test)
    dummy = DummyClassifier().fit(train.drop(columns="churned"), train["churned"])
    assert judged.baseline.name == "DummyClassifier()"
    assert judged.baseline.scores["accuracy"] == dummy.score(test.drop(columns="churned"), test["churned"])
    assert judged.baseline.scores["roc_auc"] == 0.5  # the same probability for every row
    # The forest beats it on each whole-split metric, so each check says so and passes.
    for key, value in (("min_accuracy", 0.9), ("min_roc_auc", 0.7), ("max_log_loss", 1.0)):
        result = evaluate_gate(judged, threshold(key, value, beat_baseline=True))
        assert result.passed and "; beats the baseline DummyClassifier() (" in result.description, result.description


def test_a_model_that_only_learnt_the_majority_is_held_back_though_above_the_threshold(scored):
    _, test, _ = scored
    train = rare_positives(4000, 0)
    stump = RandomForestClassifier(n_estimators=1, max_depth=1, random_state=0)
    stump.fit(train[["x3"]].assign(x1=0.0, x2=0.0)[["x1", "x2", "x3"]], train["churned"])  # noise only
    weak = with_baseline(ModelMetrics.of("classification", classification_metrics(stump, test, "churned")), train, test)
    assert weak.score("accuracy") >= 0.9  # above the threshold: 96 % of the rows are "no"
    result = evaluate_gate(weak, threshold("min_accuracy", 0.9, beat_baseline=True))
    assert not result.passed
    assert "does not beat the baseline DummyClassifier() (0." in result.description
    assert result.metadata["Baseline Accuracy"].value == weak.baseline.scores["accuracy"]
    # Without beat_baseline the threshold alone judges it, as before.
    assert evaluate_gate(weak, threshold("min_accuracy", 0.9)).passed


def test_a_score_stored_before_baselines_is_judged_without_one(scored):
    metrics, _, _ = scored
    result = evaluate_gate(metrics, threshold("min_accuracy", 0.5, beat_baseline=True))
    assert result.passed and "not compared with a baseline (no baseline scored with this model)" in result.description
