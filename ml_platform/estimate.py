"""Live performance without labels: a classifier's accuracy estimated from its own calibrated probabilities.

Confidence-based performance estimation (CBPE, as NannyML does it). The server logs every prediction
with its class probabilities; the outcomes arrive days later. Until they do, the probabilities say
how often the model should be right, once they are calibrated:

- Calibration, on labelled history (rows the model predicted and whose labels arrived): per class c,
  an isotonic regression of 1[label == c] on the model's probability of c (scikit-learn's
  ``IsotonicRegression``, clipped outside the probabilities it saw). A row's calibrated probabilities
  are the maps applied to its probabilities, renormalised to sum to 1 (a row they map to all zeros
  keeps its raw probabilities).
- Estimate: each row's true class is taken as a draw from its calibrated probabilities, so the
  expected confusion matrix is E[CM[i, j]] = sum over the rows predicted j of p_cal(true = i | row),
  and every metric is computed from it: accuracy, balanced accuracy, and the precision, recall and
  F1 of one class, as ratios of expected counts.

The error stated beside each value is the half-width of a normal interval at ``CONFIDENCE``,
z * sqrt(sampling² + calibration²):

- sampling: even with perfect probabilities the outcomes are random. For accuracy its variance is
  sum p(1 - p) / n², p the calibrated probability of the predicted class. For the other metrics it is
  the same variance of the metric linearised in the confusion matrix (the delta method): a row adds
  one to the cell of its true class in its predicted column, so it moves the metric by the
  derivative of that cell, whose variance over the row's calibrated probabilities is summed over the
  rows (for accuracy this is exactly the formula above).
- calibration: how far the estimate was from the truth on the history itself, cross-fitted: the
  history is cut into ``FOLDS`` shuffled chunks, each chunk estimated with maps learnt on the other
  chunks and compared with its real value; the root mean square of those differences
  (``Calibration.accuracy_error``, and ``metric_errors`` for the other metrics). It holds the chunks'
  own sampling noise too, so it errs on the wide side, the more so the less history there is.

Where it cannot be trusted (``Estimate.trusted`` is False, with a sentence each in ``warnings``):
fewer than ``MIN_REFERENCE_ROWS`` labelled rows behind the calibration; fewer than ``MIN_ROWS`` rows
to estimate; more than ``MAX_OUTSIDE_SHARE`` of the rows with a top probability outside the range
the history covered (its ``REFERENCE_PERCENTILES``): the model is less or more sure than anywhere it
was calibrated, the maps are extrapolated there (covariate shift beyond the reference). Probabilities
of other classes than the calibration's are a different model: an error, not a warning.

What it cannot see: CBPE assumes P(label | features) has not changed since the history (no concept
drift). A shift in the features is seen, through the probabilities it moves; a change of meaning (of
a column, or of the label itself) leaves the probabilities as they were, so the estimate stays where
it was while the real accuracy falls. Only labels reveal it: an estimate stands in for the labels
until they arrive, it never overrules them. Nor can it vouch for rows unlike every labelled one
whose probabilities look ordinary (say a value imputed where the history never lacked one: rows
without an outcome never enter it): they are calibrated by their probability alone, so where the
model is over-sure of them the estimate is too, and the range check does not see it. Free of Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.isotonic import IsotonicRegression

from ml_platform.errors import DataValidationError

CONFIDENCE = 0.95
MIN_REFERENCE_ROWS = 200  # fewer labelled rows than this: the calibration is not trusted (say so)
MIN_ROWS = 30  # fewer rows to estimate than this: not trusted
MAX_OUTSIDE_SHARE = 0.10  # more rows than this with a top probability outside the reference's range: not trusted
REFERENCE_PERCENTILES = (1.0, 99.0)  # the range of the top probability the history covers
FOLDS = 5  # chunks of the history for the cross-fitted error
CAVEAT = (
    "The estimate assumes that P(label | features) has not changed since the labelled history (no concept "
    "drift): a change of meaning of a column or of the label is invisible to it, only labels reveal it."
)
_CLASS_METRICS = ("precision", "recall", "f1")


@dataclass(frozen=True)
class Calibration:
    """Per class, an isotonic map from the model's probability to the observed frequency, learnt on
    labelled history (rows the model predicted and whose labels arrived), and the error the estimate
    made on that history (cross-fitted: learnt on some folds, measured on the others).

    ``maps``: {class: {"x": thresholds, "y": values}} (scikit-learn's ``X_thresholds_`` and
    ``y_thresholds_``; between them the map is linear, outside them flat). ``metric_errors``: the
    cross-fitted error of the other metrics, the same way as ``accuracy_error``
    ("balanced_accuracy", "precision[c]", "recall[c]", "f1[c]", c the class's position); a metric
    missing there is taken as unknown (an error of 1)."""

    classes: tuple  # labels as strings, in the order of the proba columns
    maps: dict
    reference_rows: int
    accuracy_error: float  # the cross-fitted error of the estimated accuracy on reference chunks (rms)
    reference_confidence: tuple[float, float]  # the range of the top probability seen in the reference
    metric_errors: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "classes": list(self.classes),
            "maps": {name: {"x": list(m["x"]), "y": list(m["y"])} for name, m in self.maps.items()},
            "reference_rows": self.reference_rows,
            "accuracy_error": self.accuracy_error,
            "reference_confidence": list(self.reference_confidence),
            "metric_errors": dict(self.metric_errors),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        missing = [
            key
            for key in ("classes", "maps", "reference_rows", "accuracy_error", "reference_confidence")
            if key not in d
        ]
        if missing:
            raise DataValidationError(f"A calibration record lacks {', '.join(missing)}.")
        low, high = d["reference_confidence"]
        return cls(
            classes=tuple(d["classes"]),
            maps={
                name: {"x": [float(v) for v in m["x"]], "y": [float(v) for v in m["y"]]}
                for name, m in d["maps"].items()
            },
            reference_rows=int(d["reference_rows"]),
            accuracy_error=float(d["accuracy_error"]),
            reference_confidence=(float(low), float(high)),
            metric_errors={key: float(value) for key, value in d.get("metric_errors", {}).items()},
        )


@dataclass(frozen=True)
class Estimate:
    """The metrics estimated on rows without labels, each with the half-width of its interval at
    ``CONFIDENCE`` (``errors``), and whether the estimate can be trusted (``warnings`` say why not)."""

    rows: int
    values: dict[str, float]
    errors: dict[str, float]
    trusted: bool
    warnings: list[str]

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "values": dict(self.values),
            "errors": dict(self.errors),
            "confidence": CONFIDENCE,
            "trusted": self.trusted,
            "warnings": list(self.warnings),
            "caveat": CAVEAT,
        }


def _text(value) -> str:
    """A label as text: 1.0 (an int label in a column pandas made float by a missing value) reads "1"."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _texts(values) -> np.ndarray:
    codes, uniques = pd.factorize(np.asarray(values), use_na_sentinel=False)  # each distinct value once
    return np.array([_text(value) for value in uniques], dtype=object)[codes]


def _codes(values: np.ndarray, classes: tuple, what: str) -> np.ndarray:
    """The position of each value among ``classes``; a value not among them is an error."""
    position = {name: index for index, name in enumerate(classes)}
    unknown = sorted({value for value in values if value not in position})
    if unknown:
        raise DataValidationError(
            f"{what} {', '.join(unknown[:5])} {'is' if len(unknown) == 1 else 'are'} not among the probability "
            f"columns ({', '.join(classes)})."
        )
    return np.array([position[value] for value in values], dtype=np.int64)


def _matrix(probabilities: pd.DataFrame) -> np.ndarray:
    """The probabilities as floats; a missing one is an error."""
    matrix = probabilities.to_numpy(dtype=np.float64)
    if np.isnan(matrix).any():
        raise DataValidationError("The probabilities hold missing values: every row needs one per class.")
    return matrix


def _checked_lengths(probabilities: pd.DataFrame, predictions, labels=None) -> None:
    if not isinstance(probabilities, pd.DataFrame) or len(probabilities) == 0:
        raise DataValidationError("There are no rows: the probabilities table is empty.")
    lengths = {"probabilities": len(probabilities), "predictions": len(predictions)}
    if labels is not None:
        lengths["labels"] = len(labels)
    if len(set(lengths.values())) > 1:
        said = ", ".join(f"{len_} {name}" for name, len_ in lengths.items())
        raise DataValidationError(f"The rows do not line up: {said}; each row needs all of them.")


def fit_calibration(probabilities: pd.DataFrame, predictions, labels, seed: int = 0) -> Calibration:
    """Learn the calibration of a model from its labelled history. ``probabilities``: one column per
    class (column names are the class labels, as strings or not); ``predictions`` and ``labels``:
    array-likes of the same length. Rows whose label is missing (None/NaN) are dropped. ``seed``
    shuffles the rows into the chunks of the cross-fitted error."""
    _checked_lengths(probabilities, predictions, labels)
    classes = tuple(_text(name) for name in probabilities.columns)
    if len(set(classes)) < 2 or len(set(classes)) < len(classes):
        raise DataValidationError(
            f"A calibration needs at least 2 classes, each in one column; the probabilities have {', '.join(classes)}."
        )
    known = ~pd.isna(pd.Series(list(labels), dtype=object)).to_numpy()
    if not known.any():
        raise DataValidationError("There are no rows with a label: nothing to calibrate on.")
    matrix = _matrix(probabilities)[known]
    true = _codes(_texts(np.asarray(list(labels), dtype=object)[known]), classes, "The label")
    predicted = _codes(_texts(np.asarray(list(predictions), dtype=object)[known]), classes, "The prediction")
    errors = _cross_fitted_errors(matrix, predicted, true, seed)
    top = matrix.max(axis=1)
    low, high = np.percentile(top, REFERENCE_PERCENTILES)
    return Calibration(
        classes=classes,
        maps=_fit_maps(matrix, true, classes),
        reference_rows=len(true),
        accuracy_error=errors.pop("accuracy"),
        reference_confidence=(float(low), float(high)),
        metric_errors=errors,
    )


def _fit_maps(matrix: np.ndarray, true: np.ndarray, classes: tuple) -> dict:
    maps = {}
    for index, name in enumerate(classes):
        isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        isotonic.fit(matrix[:, index], (true == index).astype(np.float64))
        maps[name] = {"x": isotonic.X_thresholds_.tolist(), "y": isotonic.y_thresholds_.tolist()}
    return maps


def calibrated(maps: dict, classes: tuple, matrix: np.ndarray) -> np.ndarray:
    """Each class's map applied to its column (what IsotonicRegression.predict gives), rows renormalised
    to sum to 1; a row the maps send to all zeros keeps its raw probabilities."""
    mapped = np.column_stack(
        [np.interp(matrix[:, index], maps[name]["x"], maps[name]["y"]) for index, name in enumerate(classes)]
    )
    sums = mapped.sum(axis=1, keepdims=True)
    return np.where(sums > 0, mapped / np.where(sums > 0, sums, 1.0), matrix)


def _cross_fitted_errors(matrix: np.ndarray, predicted: np.ndarray, true: np.ndarray, seed: int) -> dict:
    """Per metric, the root mean square of (estimated - real) over the history's chunks, each
    estimated with maps learnt on the other chunks. Too few rows to cut: 1.0 (nothing is known)."""
    classes = tuple(str(index) for index in range(matrix.shape[1]))
    keys = _metric_keys(len(classes))
    if len(true) < 2:
        return dict.fromkeys(keys, 1.0)
    chunks = np.array_split(np.random.default_rng(seed).permutation(len(true)), min(FOLDS, len(true)))
    differences: dict[str, list[float]] = {key: [] for key in keys}
    for chunk in chunks:
        rest = np.setdiff1d(np.arange(len(true)), chunk)
        maps = _fit_maps(matrix[rest], true[rest], classes)
        guessed = _all_metrics(_expected_matrix(calibrated(maps, classes, matrix[chunk]), predicted[chunk]))
        real = _all_metrics(_real_matrix(true[chunk], predicted[chunk], len(classes)))
        for key in keys:
            if np.isfinite(guessed[key]) and np.isfinite(real[key]):
                differences[key].append(guessed[key] - real[key])
    return {key: float(np.sqrt(np.mean(np.square(found)))) if found else 1.0 for key, found in differences.items()}


def _metric_keys(count: int) -> list[str]:
    return ["accuracy", "balanced_accuracy"] + [f"{name}[{index}]" for index in range(count) for name in _CLASS_METRICS]


def _expected_matrix(probabilities: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """E[CM[i, j]] = sum over the rows predicted j of p(true = i | row)."""
    by_prediction = np.zeros((probabilities.shape[1], probabilities.shape[1]))
    np.add.at(by_prediction, predicted, probabilities)  # row j: the sum of the probabilities of the rows predicted j
    return by_prediction.T


def _real_matrix(true: np.ndarray, predicted: np.ndarray, count: int) -> np.ndarray:
    """CM[i, j]: the rows of true class i predicted j."""
    return np.bincount(true * count + predicted, minlength=count * count).reshape(count, count).astype(np.float64)


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else float("nan")


def _all_metrics(cm: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, and every class's precision, recall and F1 ("recall[2]": of the
    class at position 2) from a confusion matrix (rows: true class, columns: predicted); NaN where a
    ratio has nothing to divide by."""
    support = cm.sum(axis=1)
    diagonal = np.diag(cm)
    out = {"accuracy": float(diagonal.sum() / cm.sum())}
    out["balanced_accuracy"] = float(np.mean(diagonal[support > 0] / support[support > 0]))
    for index in range(len(cm)):
        predicted = cm[:, index].sum()
        out[f"precision[{index}]"] = _ratio(diagonal[index], predicted)
        out[f"recall[{index}]"] = _ratio(diagonal[index], support[index])
        out[f"f1[{index}]"] = _ratio(2 * diagonal[index], predicted + support[index])
    return out


def _gradient(cm: np.ndarray, metric: str, index: int) -> np.ndarray:
    """d metric / d CM[i, j]: how much one more row of true class i predicted j moves the metric."""
    count = len(cm)
    same = np.eye(count)
    support = cm.sum(axis=1)
    if metric == "accuracy":
        return same / cm.sum()
    if metric == "balanced_accuracy":
        present = support > 0
        safe = np.where(present, support, 1.0)
        rows = (same / safe[:, None] - (np.diag(cm) / safe**2)[:, None]) * present[:, None]
        return rows / max(int(present.sum()), 1)
    hit = np.outer(same[index], same[index])  # the cell (index, index)
    predicted, true_count, tp = cm[:, index].sum(), support[index], cm[index, index]
    if metric == "precision":
        return hit / predicted if predicted > 0 else np.zeros_like(cm)
    if metric == "recall":
        if true_count <= 0:
            return np.zeros_like(cm)
        return np.outer(same[index], np.ones(count)) * (-tp / true_count**2) + hit / true_count
    whole = predicted + true_count  # f1 = 2 tp / (predicted + true)
    if whole <= 0:
        return np.zeros_like(cm)
    into = np.add.outer(same[index], same[index])  # the cell adds to the predicted count, the true count or both
    return 2 * hit / whole - 2 * tp * into / whole**2


def _sampling_variance(gradient: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray) -> float:
    """The variance of the linearised metric when each row's true class is drawn from its probabilities."""
    moves = gradient[:, predicted].T  # per row: how much the metric moves for each true class
    mean = (probabilities * moves).sum(axis=1)
    return float(((probabilities * moves**2).sum(axis=1) - mean**2).clip(min=0).sum())


def estimate(calibration: Calibration, probabilities: pd.DataFrame, predictions, positive=None) -> Estimate:
    """Estimate the metrics of rows without labels from the model's probabilities and predictions:
    the expected confusion matrix of the calibrated probabilities, E[CM[i, j]] = sum over rows of
    p_cal(true = i | row) * [prediction == j], and the metrics computed from it: "accuracy",
    "balanced_accuracy", and the "precision", "recall" and "f1" of ``positive`` (of two classes
    without it: the second in sorted order). Errors: z * sqrt(sampling variance + calibration error²),
    the sampling variance of accuracy sum p(1 - p) / n² (p: the calibrated probability of the predicted
    class), of the others the delta method's (see the module's docstring)."""
    _checked_lengths(probabilities, predictions)
    classes = tuple(_text(name) for name in probabilities.columns)
    if sorted(classes) != sorted(calibration.classes) or len(set(classes)) != len(classes):
        raise DataValidationError(
            f"The probabilities are of classes {', '.join(classes)}, the calibration's of "
            f"{', '.join(calibration.classes)}: a different model's calibration."
        )
    frame = probabilities.set_axis(list(classes), axis=1)[list(calibration.classes)]
    matrix = _matrix(frame)
    predicted = _codes(_texts(predictions), calibration.classes, "The prediction")
    p = calibrated(calibration.maps, calibration.classes, matrix)
    values, errors, notes = _values_and_errors(
        calibration, p, predicted, _chosen_metrics(calibration.classes, positive)
    )
    reasons = _untrusted(calibration, matrix)
    return Estimate(len(matrix), values, errors, trusted=not reasons, warnings=reasons + notes)


def _values_and_errors(calibration: Calibration, p: np.ndarray, predicted: np.ndarray, metrics: list) -> tuple:
    """Each metric's value on the expected confusion matrix and its error; a note for a metric with
    nothing to divide by (reported as 0, as scikit-learn does)."""
    cm = _expected_matrix(p, predicted)
    computed = _all_metrics(cm)
    z = float(norm.ppf(0.5 + CONFIDENCE / 2))
    values, errors, notes = {}, {}, []
    for name, key, index in metrics:
        value = computed[key]
        if not np.isfinite(value):
            notes.append(
                f"No row is predicted or expected to be {calibration.classes[index]}: its {name} is undefined, "
                "reported as 0."
            )
            value = 0.0
        known = calibration.accuracy_error if key == "accuracy" else calibration.metric_errors.get(key, 1.0)
        sampling = _sampling_variance(_gradient(cm, name, index), p, predicted)
        values[name] = float(value)
        errors[name] = float(z * np.sqrt(sampling + known**2))
    return values, errors, notes


def _chosen_metrics(classes: tuple, positive) -> list[tuple[str, str, int]]:
    """(name, key of _all_metrics, class position) of the metrics to report: accuracy, balanced
    accuracy, and those of the positive class (given, or the second sorted of two)."""
    chosen = [("accuracy", "accuracy", -1), ("balanced_accuracy", "balanced_accuracy", -1)]
    if positive is None and len(classes) != 2:
        return chosen
    name = _text(positive) if positive is not None else sorted(classes)[1]
    if name not in classes:
        raise DataValidationError(f"The positive class {name} is not among the classes ({', '.join(classes)}).")
    index = classes.index(name)
    return chosen + [(metric, f"{metric}[{index}]", index) for metric in _CLASS_METRICS]


def _untrusted(calibration: Calibration, matrix: np.ndarray) -> list[str]:
    """A sentence for each reason the estimate cannot be trusted."""
    reasons = []
    if calibration.reference_rows < MIN_REFERENCE_ROWS:
        reasons.append(
            f"The calibration was learnt on {calibration.reference_rows} labelled rows, fewer than "
            f"{MIN_REFERENCE_ROWS}: its maps and its error are not reliable."
        )
    if len(matrix) < MIN_ROWS:
        reasons.append(f"Only {len(matrix)} rows to estimate, fewer than {MIN_ROWS}: the estimate is mostly noise.")
    top = matrix.max(axis=1)
    low, high = calibration.reference_confidence
    below, above = float(np.mean(top < low)), float(np.mean(top > high))
    if below + above > MAX_OUTSIDE_SHARE:
        reasons.append(
            f"{below + above:.0%} of the rows have a top probability outside the range of the labelled history "
            f"({low:.3f} to {high:.3f}; {below:.0%} less sure, {above:.0%} more sure), more than "
            f"{MAX_OUTSIDE_SHARE:.0%}: the model is used where it was not calibrated (covariate shift beyond the "
            "reference)."
        )
    return reasons
