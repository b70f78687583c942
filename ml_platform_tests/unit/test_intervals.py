"""Bootstrap intervals and the paired bootstrap: for one set of row weights every metric is
scikit-learn's own function with ``sample_weight``; intervals are reproducible and scale to many
rows; a challenger better by one row on a small split is not promoted with gate.confidence, a
clearly better one is."""

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.preprocessing import label_binarize

from ml_platform import intervals as bootstrap
from ml_platform.checks.model_quality import evaluate_gate
from ml_platform.intervals import Outputs, intervals, paired_differences, weighted_scores
from ml_platform.model_metrics import ChampionComparison, ModelMetrics
from ml_platform.spec import GateThreshold

CLASSIFICATION = [
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc",
    "average_precision",
    "log_loss",
    "brier_score_loss",
    "recall[b]",
    "f1[a]",
]


def classifier_outputs(rows: int, classes: int, seed: int = 0) -> Outputs:
    rng = np.random.default_rng(seed)
    labels = ["a", "b", "c"][:classes]
    shares = np.array([0.7, 0.2, 0.1][:classes])
    y = rng.choice(labels, rows, p=shares / shares.sum())
    proba = rng.dirichlet(np.ones(classes), rows).round(2)  # rounded: tied scores, as real models have
    proba = proba / proba.sum(axis=1, keepdims=True)
    proba[np.arange(rows), [labels.index(v) for v in y]] += 0.3  # better than chance
    proba = proba / proba.sum(axis=1, keepdims=True)
    return Outputs("classification", y, np.array(labels)[proba.argmax(axis=1)], proba, tuple(labels))


def scikit_learn(outputs: Outputs, weight: np.ndarray) -> dict[str, float]:
    y, pred, proba, labels = outputs.y, outputs.predicted, outputs.proba, list(outputs.labels)
    out = {"accuracy": sk.accuracy_score(y, pred, sample_weight=weight)}
    out["balanced_accuracy"] = sk.balanced_accuracy_score(y, pred, sample_weight=weight)
    for name, function in (("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)):
        out[name] = function(y, pred, average="weighted", sample_weight=weight, zero_division=0)
        out[f"{name}_macro"] = function(y, pred, average="macro", sample_weight=weight, zero_division=0)
    out["recall[b]"] = sk.recall_score(y, pred, labels=["b"], average=None, sample_weight=weight)[0]
    out["f1[a]"] = sk.f1_score(y, pred, labels=["a"], average=None, sample_weight=weight)[0]
    out["log_loss"] = sk.log_loss(y, proba, labels=labels, sample_weight=weight)
    if len(labels) == 2:
        out["roc_auc"] = sk.roc_auc_score(y == "b", proba[:, 1], sample_weight=weight)
        out["average_precision"] = sk.average_precision_score(y == "b", proba[:, 1], sample_weight=weight)
        out["brier_score_loss"] = sk.brier_score_loss(y == "b", proba[:, 1], sample_weight=weight)
    else:
        out["roc_auc"] = sk.roc_auc_score(
            y, proba, multi_class="ovr", average="macro", labels=labels, sample_weight=weight
        )
        out["average_precision"] = sk.average_precision_score(
            label_binarize(y, classes=labels), proba, average="macro", sample_weight=weight
        )
    return out


@pytest.mark.parametrize("classes", [2, 3])
def test_each_resample_is_scikit_learns_metric_with_sample_weight(classes):
    outputs = classifier_outputs(2000, classes)
    weights = np.random.default_rng(1).poisson(1.0, (3, outputs.rows)).astype(float)
    ours = weighted_scores(outputs, CLASSIFICATION, weights)
    for row in range(len(weights)):
        expected = scikit_learn(outputs, weights[row])
        for key, value in expected.items():
            assert ours[key][row] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_each_resample_of_a_regression_is_scikit_learns_metric_with_sample_weight():
    rng = np.random.default_rng(2)
    y = rng.normal(100, 30, 1500)
    outputs = Outputs("regression", y, y + rng.normal(0, 10, len(y)))
    weights = rng.poisson(1.0, (3, len(y))).astype(float)
    ours = weighted_scores(outputs, ["r2", "rmse", "mae", "mape", "median_absolute_error"], weights)
    for row, weight in enumerate(weights):
        expected = {
            "r2": sk.r2_score(y, outputs.predicted, sample_weight=weight),
            "rmse": sk.root_mean_squared_error(y, outputs.predicted, sample_weight=weight),
            "mae": sk.mean_absolute_error(y, outputs.predicted, sample_weight=weight),
            "mape": sk.mean_absolute_percentage_error(y, outputs.predicted, sample_weight=weight),
            "median_absolute_error": sk.median_absolute_error(y, outputs.predicted, sample_weight=weight),
        }
        for key, value in expected.items():
            assert ours[key][row] == pytest.approx(value, rel=1e-9), key


def test_intervals_hold_the_value_are_reproducible_and_narrow_with_more_rows():
    small, large = classifier_outputs(300, 2, seed=3), classifier_outputs(3000, 2, seed=3)
    keys = ["accuracy", "roc_auc", "log_loss"]
    first, again = intervals(small, keys), intervals(small, keys)
    assert first == again  # a fixed seed: the same interval on every run
    point = {k: v[0] for k, v in weighted_scores(small, keys, np.ones((1, small.rows))).items()}
    for key in keys:
        low, high = first[key]
        assert low < point[key] < high
    wide, narrow = first["accuracy"], intervals(large, keys)["accuracy"]
    # Ten times the rows: about a third of the width (1 / sqrt(10)).
    assert 0.2 < (narrow[1] - narrow[0]) / (wide[1] - wide[0]) < 0.5


def test_the_accuracy_interval_is_the_classic_bootstrap():
    outputs = classifier_outputs(400, 3, seed=4)
    rng = np.random.default_rng(5)
    correct = outputs.y == outputs.predicted
    classic = [correct[rng.integers(0, outputs.rows, outputs.rows)].mean() for _ in range(4000)]
    low, high = intervals(outputs, ["accuracy"])["accuracy"]
    assert low == pytest.approx(np.percentile(classic, 2.5), abs=0.01)
    assert high == pytest.approx(np.percentile(classic, 97.5), abs=0.01)


def test_many_rows_are_resampled_on_a_sample_and_scaled_to_all_of_them(monkeypatch):
    outputs = classifier_outputs(40_000, 2, seed=6)
    keys = ["log_loss", "roc_auc"]
    sampled = intervals(outputs, keys)  # MAX_ROWS rows, the spread scaled to 40 000
    monkeypatch.setattr(bootstrap, "MAX_ROWS", 100_000)
    every_row = intervals(outputs, keys, resamples=300)
    for key in keys:
        assert (sampled[key][1] - sampled[key][0]) == pytest.approx(every_row[key][1] - every_row[key][0], rel=0.25)
        assert sum(sampled[key]) / 2 == pytest.approx(sum(every_row[key]) / 2, abs=0.002)


def two_models(rows: int, champion_wrong: int, challenger_wrong: int) -> tuple[Outputs, Outputs]:
    """Two classifiers on the same rows, each wrong on its own rows (none in common)."""
    y = np.array(["no"] * (rows - 10) + ["yes"] * 10)
    flip = {"no": "yes", "yes": "no"}
    old, new = y.copy(), y.copy()
    old[:champion_wrong] = [flip[v] for v in y[:champion_wrong]]
    new[rows - challenger_wrong :] = [flip[v] for v in y[rows - challenger_wrong :]]
    return (
        Outputs("classification", y, new, labels=("no", "yes")),
        Outputs("classification", y, old, labels=("no", "yes")),
    )


def gate_with_confidence(challenger: Outputs, champion: Outputs) -> tuple:
    values = {
        name: weighted_scores(m, ["accuracy"], np.ones((1, m.rows)))["accuracy"][0]
        for name, m in (("new", challenger), ("old", champion))
    }
    differences = paired_differences(challenger, champion, ["accuracy"])
    comparison = ChampionComparison(
        "v1",
        challenger.rows,
        {"accuracy": values["old"]},
        {"accuracy": values["new"]},
        differences={"accuracy": list(differences["accuracy"])},
    )
    metrics = ModelMetrics("classification", {"accuracy": values["new"]}, challenger.rows, champion=comparison)
    sure = GateThreshold("min_accuracy", "accuracy", 0.5, True, confidence=0.95)
    return evaluate_gate(metrics, sure), evaluate_gate(metrics, GateThreshold("min_accuracy", "accuracy", 0.5, True))


def test_a_challenger_better_by_one_row_of_a_small_split_is_not_sure_enough():
    held, plain = gate_with_confidence(*two_models(60, champion_wrong=5, challenger_wrong=4))
    assert plain.passed  # by the values alone: 0.933 >= 0.917
    assert not held.passed
    probability = held.metadata["Probability not worse"].value
    assert 0.5 < probability < 0.95
    assert f"not worse in {probability:.1%} of the paired resamples (below the confidence 0.95)" in held.description


def test_a_clearly_better_challenger_is_promoted_with_confidence():
    promoted, _ = gate_with_confidence(*two_models(60, champion_wrong=14, challenger_wrong=2))
    assert promoted.passed, promoted.description
    assert promoted.metadata["Probability not worse"].value >= 0.99
    assert "(at least the confidence 0.95)" in promoted.description


def test_many_classes_are_resampled_by_row_weights_instead_of_cells():
    rng = np.random.default_rng(7)
    labels = tuple(f"sku-{i:02d}" for i in range(30))  # 30 classes: 27,000 paired cells
    y = rng.choice(labels, 3000)
    guess = np.where(rng.random(3000) < 0.6, y, rng.choice(labels, 3000))
    other = np.where(rng.random(3000) < 0.5, y, rng.choice(labels, 3000))
    new, old = (Outputs("classification", y, p, labels=labels) for p in (guess, other))
    low, high = intervals(new, ["accuracy", "f1_macro"])["accuracy"]
    assert low < (y == guess).mean() < high
    differences = paired_differences(new, old, ["accuracy"])["accuracy"]
    assert len(differences) == bootstrap.RESAMPLES and (differences > 0).mean() > 0.99
