"""The decision threshold of a binary classifier: the probability of the positive class from which
it predicts that class. Free of Dagster.

scikit-learn does the work: ``FixedThresholdClassifier`` for a given threshold,
``TunedThresholdClassifierCV`` for one chosen on a single shuffled split of the training rows
(``cv=validation_size``, stratified), the model then refit on all of them. Either wraps the
estimator as the model's last step, so ``predict`` applies the threshold wherever the model is used
(evaluation, ``ml-platform predict``, the HTTP server, batch scoring) and ``predict_proba`` is the
estimator's own. The spec is a plain dict (``DecisionSpec.model_dump()``), part of the model's recipe.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import make_scorer
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

from ml_platform.errors import DataValidationError, yaml_boolean_hint

THRESHOLDS = 200  # candidate thresholds TunedThresholdClassifierCV tries


def positive_class(decision: dict[str, Any], classes: list[Any]) -> Any:
    """The class the threshold is about, as the target holds it: ``positive_class`` matched by its
    text, or the second of the two sorted classes (scikit-learn's positive class)."""
    labels = sorted(classes, key=lambda c: (str(type(c)), c))
    if len(labels) != 2:
        shown = ", ".join(map(str, labels[:10])) + (", …" if len(labels) > 10 else "")
        raise DataValidationError(
            f"decision: a decision threshold is for two classes; the target has {len(labels)} ({shown})"
        )
    wanted = decision.get("positive_class")
    if wanted is None:
        return labels[1]
    for label in labels:
        if str(label) == wanted:
            return label
    raise DataValidationError(
        f"decision.positive_class: {wanted!r} is not a class of the target (its classes: {labels[0]},"
        f" {labels[1]}){yaml_boolean_hint(wanted, [str(label) for label in labels])}"
    )


def with_decision(estimator: Any, decision: dict[str, Any] | None, classes: list[Any], seed: int) -> Any:
    """The estimator deciding at ``decision``'s threshold (the estimator itself without one)."""
    if not decision:
        return estimator
    positive = positive_class(decision, classes)
    if decision.get("threshold") is not None:
        return FixedThresholdClassifier(
            estimator, threshold=float(decision["threshold"]), pos_label=positive, response_method="predict_proba"
        )
    return TunedThresholdClassifierCV(
        estimator,
        scoring=_scorer(decision, positive),
        response_method="predict_proba",
        thresholds=THRESHOLDS,
        cv=float(decision.get("validation_size") or 0.25),
        refit=True,
        random_state=seed,
        store_cv_results=True,
    )


def _scorer(decision: dict[str, Any], positive: Any):
    maximize = decision.get("maximize")
    if maximize == "f1":
        from sklearn.metrics import f1_score

        return make_scorer(f1_score, pos_label=positive)
    if maximize in ("balanced_accuracy", "accuracy"):
        return maximize
    if decision.get("min_precision") is not None:
        return make_scorer(recall_at_precision, floor=float(decision["min_precision"]), pos_label=positive)
    return make_scorer(precision_at_recall, floor=float(decision["min_recall"]), pos_label=positive)


def recall_at_precision(y_true, y_pred, floor: float, pos_label: Any) -> float:
    """The recall when the precision is at least ``floor``; below it, the precision minus 1 (so that
    the highest precision wins when no threshold reaches the floor)."""
    precision, recall = _precision_recall(y_true, y_pred, pos_label)
    return recall if precision >= floor else precision - 1.0


def precision_at_recall(y_true, y_pred, floor: float, pos_label: Any) -> float:
    """The precision when the recall is at least ``floor``; below it, the recall minus 1."""
    precision, recall = _precision_recall(y_true, y_pred, pos_label)
    return precision if recall >= floor else recall - 1.0


def _precision_recall(y_true, y_pred, pos_label: Any) -> tuple[float, float]:
    """The positive class's precision and recall (0 where undefined, as scikit-learn's
    ``zero_division=0``): counted directly, as the scorer runs once per candidate threshold."""
    actual, predicted = np.asarray(y_true) == pos_label, np.asarray(y_pred) == pos_label
    hits = float(np.count_nonzero(actual & predicted))
    said, there = np.count_nonzero(predicted), np.count_nonzero(actual)
    return (hits / said if said else 0.0), (hits / there if there else 0.0)


def decision_of(model: Any) -> dict[str, Any] | None:
    """The fitted model's decision: the threshold, the positive class, how it was set (and, chosen,
    the validation score it reached; ``floor_met`` false when no threshold met a floor). None for a
    model without one."""
    final = model[-1] if hasattr(model, "steps") else model
    if isinstance(final, FixedThresholdClassifier):
        return {"threshold": float(final.threshold), "positive_class": _plain(final.pos_label), "chosen": False}
    if not isinstance(final, TunedThresholdClassifierCV):
        return None
    scorer = final.scoring
    kwargs = getattr(scorer, "_kwargs", {}) or {}
    found = {
        "threshold": float(final.best_threshold_),
        "positive_class": _plain(kwargs.get("pos_label", final.classes_[1])),
        "chosen": True,
        "validation_score": float(final.best_score_),
    }
    if "floor" in kwargs:
        found["floor_met"] = bool(final.best_score_ >= 0)
    return found


def inner_estimator(model: Any) -> Any:
    """The estimator a threshold wraps (fitted, when the model is), or the model's last step itself."""
    final = model[-1] if hasattr(model, "steps") else model
    if isinstance(final, (FixedThresholdClassifier, TunedThresholdClassifierCV)):
        return getattr(final, "estimator_", final.estimator)
    return final


def rule_of(spec: dict[str, Any] | None) -> str | None:
    """How pipelines.yaml set the threshold: ``maximize f1, chosen on 25 % of the train split``."""
    if not spec:
        return None
    if spec.get("threshold") is not None:
        return "set in pipelines.yaml"
    rule = next(f"{k} {spec[k]}" for k in ("maximize", "min_precision", "min_recall") if spec.get(k) is not None)
    return f"{rule}, chosen on {float(spec.get('validation_size') or 0.25):.0%} of the train split"


def describe(found: dict[str, Any], spec: dict[str, Any] | None = None) -> str:
    """A sentence: ``predicts yes when P(yes) >= 0.3100 (maximize f1, chosen on 25% of the train
    split)``; ``found``: decision_of's, ``spec``: pipelines.yaml's ``decision``."""
    positive = found["positive_class"]
    rule = rule_of(spec)
    said = f"predicts {positive} when P({positive}) >= {found['threshold']:.4f}" + (f" ({rule})" if rule else "")
    if found.get("floor_met") is False:
        said += "; no threshold met the floor on the validation rows: the one closest to it is used"
    return said


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
