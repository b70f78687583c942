"""The metric registry (ml_platform/metrics.py) is the one list of metrics: the gate's fields, the
scores model_metrics computes, the bootstrap intervals and the cross-validation scorers all agree
with it, so a metric added in one place and forgotten in another fails here."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import get_scorer

from ml_platform.intervals import Outputs, intervals
from ml_platform.metrics import GATE_METRICS, METRIC, METRICS, TASKS
from ml_platform.ml import scores_of
from ml_platform.spec import GateSpec

rng = np.random.default_rng(7)


def _binary() -> Outputs:
    y = rng.choice(["no", "yes"], size=300, p=[0.7, 0.3])
    proba_yes = np.clip(np.where(y == "yes", 0.65, 0.3) + rng.normal(0, 0.2, len(y)), 0.01, 0.99)
    predicted = np.where(proba_yes > 0.5, "yes", "no")
    return Outputs("classification", y, predicted, np.column_stack([1 - proba_yes, proba_yes]), ("no", "yes"))


def _regression() -> Outputs:
    y = rng.normal(50, 10, 300)
    return Outputs("regression", y, y + rng.normal(0, 3, len(y)))


OUTPUTS = {"classification": _binary, "regression": _regression}


def test_the_gate_has_one_threshold_per_metric_in_the_registry_order():
    thresholds = [k for k in GateSpec.model_fields if k.startswith(("min_", "max_")) and k != "max_regression"]
    assert thresholds == [m.gate_key for m in METRICS]
    for metric in METRICS:
        assert GateSpec.model_fields[metric.gate_key].description == metric.gate_text


@pytest.mark.parametrize("task", TASKS)
def test_model_metrics_computes_exactly_the_registry_metrics(task):
    scores = scores_of(OUTPUTS[task]())
    computed = {k for k, v in scores.items() if isinstance(v, float)}
    assert computed == set(GATE_METRICS[task])


@pytest.mark.parametrize("task", TASKS)
def test_every_metric_has_a_bootstrap_interval_around_its_value(task):
    outputs = OUTPUTS[task]()
    scores = scores_of(outputs)
    names = list(GATE_METRICS[task])
    found = intervals(outputs, names, point={n: scores[n] for n in names}, resamples=200)
    assert set(found) == set(names)
    for name, (low, high) in found.items():
        assert low <= scores[name] <= high, name


def test_every_metric_has_a_scikit_learn_scorer_pointing_its_way():
    for metric in METRICS:
        get_scorer(metric.cv_scorer)  # raises for a name scikit-learn does not know
        # Errors are scored negated: cross-validation always maximizes.
        assert metric.cv_scorer.startswith("neg_") != metric.higher_is_better, metric.name
        if metric.multiclass_scorer:
            get_scorer(metric.multiclass_scorer)


def test_labels_are_distinct_and_the_gate_reads_direction_from_the_registry():
    labels = [m.label for m in METRICS]
    assert len(labels) == len(set(labels))
    gate = GateSpec.model_validate({"max_rmse": 3.0, "min_r2": 0.5})
    assert [(t.metric, t.higher_is_better) for t in gate.thresholds("regression")] == [
        ("rmse", METRIC["rmse"].higher_is_better),
        ("r2", True),
    ]
