"""Bootstrap intervals and the paired bootstrap: for one set of row weights every metric is
scikit-learn's own function with ``sample_weight``; intervals are reproducible and scale to many
rows; a challenger better by one row on a small split is not promoted with gate.confidence, a
clearly better one is."""

from dataclasses import replace

import numpy as np
import pandas as pd
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


# -- the counting metrics: the classic bootstrap, recomputed here -----------------------------------
def classic_weights(labels: tuple, columns: list[np.ndarray], resamples: int) -> np.ndarray:
    """An independent classic bootstrap of the rows, drawn as intervals.py documents it: n rows with
    replacement is one multinomial draw (rng of SEED, one call) over the cells of (true label, each
    model's label), cells numbered in that order over the model's ``labels`` and then any other
    label the rows hold, and one more cell at the end (empty). Returned as row weights
    [resample, row]: a cell's draw shared by its rows."""
    seen = pd.unique(np.concatenate([np.asarray(c, dtype=object) for c in columns]))
    labels = (*labels, *(v for v in seen if v not in labels))
    k, position = len(labels), {label: i for i, label in enumerate(labels)}
    cells = []
    for values in zip(*columns):
        cell = 0
        for value in values:
            cell = cell * k + position.get(value, -1)
        cells.append(cell if all(v in position for v in values) else k ** len(columns))
    cells = np.asarray(cells)
    counts = np.bincount(cells, minlength=k ** len(columns) + 1)
    draws = np.random.default_rng(bootstrap.SEED).multinomial(len(cells), counts / counts.sum(), size=resamples)
    return draws[:, cells] / counts[cells]


def counting_keys(labels: tuple) -> list[str]:
    """Every counting metric intervals.py resamples by cells: accuracy, balanced accuracy, precision,
    recall and F1 weighted and macro, and each class's precision, recall and F1."""
    averaged = [f"{m}{suffix}" for m in ("precision", "recall", "f1") for suffix in ("", "_macro")]
    per_class = [f"{m}[{label}]" for m in ("precision", "recall", "f1") for label in labels]
    return ["accuracy", "balanced_accuracy", *averaged, *per_class]


def counting_by_scikit_learn(outputs: Outputs, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Each counting metric of ``counting_keys`` under each row of ``weights``, by scikit-learn."""
    y, pred, labels = outputs.y, outputs.predicted, list(outputs.labels)
    out: dict[str, list[float]] = {}
    for weight in weights:
        values = {
            "accuracy": sk.accuracy_score(y, pred, sample_weight=weight),
            "balanced_accuracy": sk.balanced_accuracy_score(y, pred, sample_weight=weight),
        }
        for average, suffix in (("weighted", ""), ("macro", "_macro")):
            p, r, f, _ = sk.precision_recall_fscore_support(
                y, pred, average=average, sample_weight=weight, zero_division=0
            )
            values.update({f"precision{suffix}": p, f"recall{suffix}": r, f"f1{suffix}": f})
        p, r, f, _ = sk.precision_recall_fscore_support(
            y, pred, labels=labels, average=None, sample_weight=weight, zero_division=0
        )
        for i, label in enumerate(labels):
            values.update({f"precision[{label}]": p[i], f"recall[{label}]": r[i], f"f1[{label}]": f[i]})
        for key, value in values.items():
            out.setdefault(key, []).append(value)
    return {key: np.asarray(values) for key, values in out.items()}


def unseen_class(outputs: Outputs) -> Outputs:
    """The model knows a and b only (its classes_); the test rows also hold c, which it never says."""
    return replace(outputs, predicted=np.where(outputs.predicted == "c", "a", outputs.predicted), labels=("a", "b"))


@pytest.mark.parametrize("classes", [2, 3, "unseen"], ids=["binary", "three", "a_class_unseen_in_training"])
def test_each_counting_metric_is_the_classic_bootstrap_recomputed_independently(classes):
    outputs = classifier_outputs(400, 3 if classes == "unseen" else classes, seed=4)
    if classes == "unseen":
        outputs = unseen_class(outputs)
    keys, resamples = counting_keys(outputs.labels), 40
    expected = counting_by_scikit_learn(
        outputs, classic_weights(outputs.labels, [outputs.y, outputs.predicted], resamples)
    )
    ours = bootstrap.resampled_scores(outputs, keys, resamples)
    assert sorted(ours) == sorted(keys) == sorted(expected)
    for key in keys:
        np.testing.assert_allclose(ours[key], expected[key], rtol=0, atol=1e-12, err_msg=key)
    # Where many classes make too many cells, the counting metrics are weighed by rows instead.
    poisson = np.random.default_rng(11).poisson(1.0, (3, outputs.rows)).astype(float)
    weighed, by_rows = weighted_scores(outputs, keys, poisson), counting_by_scikit_learn(outputs, poisson)
    for key in keys:
        np.testing.assert_allclose(weighed[key], by_rows[key], rtol=0, atol=1e-12, err_msg=key)
    # The interval is the 2.5 and 97.5 percentiles of those resamples, nothing else.
    tail = (1 - bootstrap.LEVEL) / 2 * 100
    for key, (low, high) in intervals(outputs, keys, resamples=resamples).items():
        assert (low, high) == pytest.approx(tuple(np.percentile(expected[key], [tail, 100 - tail])), abs=1e-12), key


def test_the_accuracy_interval_of_the_default_resamples_is_the_classic_bootstrap():
    outputs = classifier_outputs(400, 3, seed=4)
    weights = classic_weights(outputs.labels, [outputs.y, outputs.predicted], bootstrap.RESAMPLES)
    correct = (outputs.y == outputs.predicted).astype(float)
    classic = weights @ correct / weights.sum(axis=1)
    low, high = intervals(outputs, ["accuracy"])["accuracy"]
    assert (low, high) == pytest.approx(tuple(np.percentile(classic, [2.5, 97.5])), abs=1e-12)
    assert len(np.unique(classic)) > 20  # the resamples differ: an interval, not a point


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


def paired_not_worse(challenger: Outputs, champion: Outputs) -> float:
    """The share of the classic paired bootstrap's resamples (``classic_weights`` over true,
    challenger's and champion's labels) where the challenger's accuracy is at least the champion's."""
    columns = [challenger.y, challenger.predicted, champion.predicted]
    weights = classic_weights(challenger.labels, columns, bootstrap.RESAMPLES)
    accuracy = [weights @ (m.y == m.predicted) / weights.sum(axis=1) for m in (challenger, champion)]
    return float(np.mean(accuracy[0] - accuracy[1] > -1e-9))


def test_a_challenger_better_by_one_row_of_a_small_split_is_not_sure_enough():
    models = two_models(60, champion_wrong=5, challenger_wrong=4)
    held, plain = gate_with_confidence(*models)
    assert plain.passed  # by the values alone: 0.933 >= 0.917
    assert not held.passed
    probability = held.metadata["Probability not worse"].value
    assert probability == paired_not_worse(*models)
    assert 0.5 < probability < 0.95
    assert f"not worse in {probability:.1%} of the paired resamples (below the confidence 0.95)" in held.description


def test_a_clearly_better_challenger_is_promoted_with_confidence():
    models = two_models(60, champion_wrong=14, challenger_wrong=2)
    promoted, _ = gate_with_confidence(*models)
    assert promoted.passed, promoted.description
    assert promoted.metadata["Probability not worse"].value == paired_not_worse(*models)
    assert promoted.metadata["Probability not worse"].value >= 0.99
    assert "(at least the confidence 0.95)" in promoted.description


def test_each_paired_counting_difference_is_the_classic_paired_bootstrap_recomputed_independently():
    # The champion knows a, b and c; the challenger only a and b (c is on the test rows all the same).
    champion = classifier_outputs(400, 3, seed=8)
    rng = np.random.default_rng(9)
    # The challenger: the same rows, two answers in five guessed (some right where the champion is wrong).
    guessed = np.where(
        rng.random(champion.rows) < 0.4, rng.choice(list(champion.labels), champion.rows), champion.predicted
    )
    challenger = unseen_class(replace(champion, predicted=guessed))
    keys, resamples = counting_keys(challenger.labels), 40
    weights = classic_weights(challenger.labels, [challenger.y, challenger.predicted, champion.predicted], resamples)
    new, old = (counting_by_scikit_learn(m, weights) for m in (challenger, champion))
    ours = paired_differences(challenger, champion, keys, resamples=resamples)
    assert sorted(ours) == sorted(keys)
    for key in keys:
        np.testing.assert_allclose(ours[key], new[key] - old[key], rtol=0, atol=1e-12, err_msg=key)
    assert 0 < np.mean(ours["accuracy"] > 0) < 1  # a real comparison: either way in some resamples


def test_each_paired_regression_difference_is_the_poisson_bootstrap_recomputed_independently():
    rng = np.random.default_rng(10)
    y = rng.normal(100, 30, 800)
    challenger = Outputs("regression", y, y + rng.normal(0, 10, len(y)))
    champion = Outputs("regression", y, y + rng.normal(2, 11, len(y)))
    keys, resamples = ["r2", "rmse", "mae", "mape", "median_absolute_error"], 50
    # Each resample weighs each row by a Poisson(1) draw: the rng of SEED, rows drawn resample by resample.
    weights = np.random.default_rng(bootstrap.SEED).poisson(1.0, size=(resamples, len(y))).astype(float)
    functions = {
        "r2": sk.r2_score,
        "rmse": sk.root_mean_squared_error,
        "mae": sk.mean_absolute_error,
        "mape": sk.mean_absolute_percentage_error,
        "median_absolute_error": sk.median_absolute_error,
    }
    ours = paired_differences(challenger, champion, keys, resamples=resamples)
    assert sorted(ours) == sorted(keys)
    for key, function in functions.items():
        expected = [
            function(y, challenger.predicted, sample_weight=w) - function(y, champion.predicted, sample_weight=w)
            for w in weights
        ]
        np.testing.assert_allclose(ours[key], expected, rtol=1e-9, atol=1e-12, err_msg=key)


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
