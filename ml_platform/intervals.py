"""Bootstrap intervals of the test scores, and the paired bootstrap of two models on the same rows.

Resampling the test rows with replacement, ``RESAMPLES`` times from a fixed seed (an interval is the
same on every run), two ways that scale to a million rows:

- The counting metrics (accuracy, balanced accuracy, precision, recall, F1: weighted, macro, per
  class) depend on the rows only through the confusion matrix, so a resample is one multinomial
  draw of the n rows over its cells (for two models on the same rows: over the cells of true,
  challenger's and champion's label): the classic bootstrap, exactly, at the cost of the cells.
- The others (ROC AUC, average precision, log loss, Brier; R2, RMSE, MAE, MAPE, median absolute
  error) weigh each row by a Poisson(1) draw (the Poisson bootstrap), on at most ``MAX_ROWS`` rows
  drawn once from the test rows; with more rows than that, the resamples' spread is scaled by
  sqrt(MAX_ROWS / rows) around the value on all rows (these metrics vary as 1/sqrt(rows)).

For one set of row weights each metric is what scikit-learn's own function gives with
``sample_weight`` (a test compares them). Free of Dagster: ml_platform.assets.evaluation calls it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import sparse

from ml_platform.metrics import COUNTING_METRICS

RESAMPLES = 1000
LEVEL = 0.95
SEED = 20260101
MAX_ROWS = 10_000  # rows the Poisson bootstrap weighs, at most
_BLOCK = 50  # resamples computed at once (a block of weights is _BLOCK x rows float64)
_MAX_CELLS = 10_000  # more cells than this (many classes): the counting metrics are weighed too
# One-vs-rest intervals of ROC AUC / average precision for more classes than this are left out.
_MAX_OVR_CLASSES = 20


@dataclass(frozen=True)
class Outputs:
    """What a model said on the test rows: the true values, its predictions, and (a classifier
    with predict_proba) its probabilities, one column per label of ``labels`` (model.classes_)."""

    task: str
    y: np.ndarray
    predicted: np.ndarray
    proba: np.ndarray | None = None
    labels: tuple = ()
    estimator: str = ""  # the estimator's class name (to say which has no predict_proba)

    @property
    def rows(self) -> int:
        return len(self.y)

    def subset(self, rows: np.ndarray) -> Outputs:
        """What the model said on some of the rows (positions, or a boolean mask)."""
        proba = None if self.proba is None else self.proba[rows]
        return replace(self, y=self.y[rows], predicted=self.predicted[rows], proba=proba)


def weight_blocks(rows: int, resamples: int = RESAMPLES, seed: int = SEED) -> Iterator[np.ndarray]:
    """The resamples' row weights, a (resamples in the block x rows) array at a time."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, _BLOCK):
        yield rng.poisson(1.0, size=(min(_BLOCK, resamples - start), rows)).astype(np.float64)


def resampled_scores(outputs: Outputs, keys: list[str], resamples: int = RESAMPLES) -> dict[str, np.ndarray]:
    """Each metric of ``keys`` (``recall[yes]`` for one class's) on every resample: {key: values}."""
    return _resampled([outputs], keys, resamples, None)


def intervals(
    outputs: Outputs, keys: list[str], point: dict[str, float] | None = None, resamples: int = RESAMPLES
) -> dict[str, tuple[float, float]]:
    """The ``LEVEL`` percentile interval of each metric of ``keys`` over the resamples (``point``:
    the values on all the rows, when already known)."""
    tail = (1 - LEVEL) / 2 * 100
    out = {}
    for key, values in _resampled([outputs], keys, resamples, point).items():
        finite = values[np.isfinite(values)]
        if len(finite):
            low, high = np.percentile(finite, [tail, 100 - tail])
            out[key] = (float(low), float(high))
    return out


def paired_differences(
    challenger: Outputs,
    champion: Outputs,
    keys: list[str],
    point: dict[str, float] | None = None,
    resamples: int = RESAMPLES,
) -> dict[str, np.ndarray]:
    """Challenger minus champion on each resample of the same rows (the same draw for both);
    ``point``: the difference on all the rows, when already known."""
    return _resampled([challenger, champion], keys, resamples, point)


def _resampled(
    models: list[Outputs], keys: list[str], resamples: int, point: dict[str, float] | None
) -> dict[str, np.ndarray]:
    """One model's values per resample, or (two models) the first's minus the second's."""
    first = models[0]
    counting = [k for k in keys if _is_counting(k)] if first.task == "classification" else []
    out = _by_cells(models, counting, resamples) if counting else {}
    rest = [k for k in keys if k not in out]
    if rest:
        out.update(_by_weights(models, rest, resamples, point))
    return out


def _is_counting(key: str) -> bool:
    return key in COUNTING_METRICS or key.split("[", 1)[0] in ("precision", "recall", "f1") and "[" in key


def _by_cells(models: list[Outputs], keys: list[str], resamples: int) -> dict[str, np.ndarray]:
    """The counting metrics by multinomial draws over the confusion cells (the classic bootstrap);
    {} when there are too many cells (then they are weighed with the others)."""
    labels = _labels_seen(models[0].labels, models[0].y, *(m.predicted for m in models))
    k = len(labels)
    if k ** (len(models) + 1) + 1 > _MAX_CELLS:
        return {}
    columns = [_positions(labels, models[0].y)] + [_positions(labels, m.predicted) for m in models]
    known = np.all([c >= 0 for c in columns], axis=0)
    cell = np.zeros(len(known), dtype=np.int64)
    for column in columns:
        cell = cell * k + np.where(known, column, 0)
    size = k ** len(columns)
    cell = np.where(known, cell, size)  # one more cell: rows of a class the model does not know
    counts = np.bincount(cell, minlength=size + 1).astype(np.float64)
    rng = np.random.default_rng(SEED)
    draws = rng.multinomial(len(cell), counts / counts.sum(), size=resamples).astype(np.float64)
    joint = draws[:, :size].reshape((resamples,) + (k,) * len(columns))
    total = draws.sum(axis=1)
    present = [np.union1d(columns[0][columns[0] >= 0], c[c >= 0]) for c in columns[1:]]
    values = []
    for position in range(len(models)):
        others = tuple(2 + p for p in range(len(models)) if p != position)
        confusion = joint.sum(axis=others) if others else joint
        values.append(_from_confusion(confusion, total, present[position], labels, keys))
    if len(values) == 1:
        return values[0]
    return {key: values[0][key] - values[1][key] for key in values[0]}


def _by_weights(
    models: list[Outputs], keys: list[str], resamples: int, known: dict[str, float] | None
) -> dict[str, np.ndarray]:
    """The metrics by Poisson row weights on at most MAX_ROWS rows, scaled to all the rows."""
    rows = models[0].rows
    if rows <= MAX_ROWS:
        return _weighted_resamples(models, keys, resamples)
    if known is not None and all(k in known for k in keys):
        point = {k: float(known[k]) for k in keys}
    else:
        point = {
            k: float(v[0])
            for k, v in _difference([weighted_scores(m, keys, np.ones((1, rows))) for m in models]).items()
        }
    chosen = np.sort(np.random.default_rng(SEED).choice(rows, MAX_ROWS, replace=False))
    sample = [m.subset(chosen) for m in models]
    sample_point = _difference([weighted_scores(m, keys, np.ones((1, MAX_ROWS))) for m in sample])
    scale = np.sqrt(MAX_ROWS / rows)
    return {
        key: point[key] + (values - sample_point[key][0]) * scale
        for key, values in _weighted_resamples(sample, keys, resamples).items()
        if key in point and key in sample_point
    }


def _weighted_resamples(models: list[Outputs], keys: list[str], resamples: int) -> dict[str, np.ndarray]:
    """Each metric (or the first model's minus the second's) under each resample's Poisson weights."""
    parts: dict[str, list[np.ndarray]] = {}
    for weights in weight_blocks(models[0].rows, resamples):
        for key, values in _difference([weighted_scores(m, keys, weights) for m in models]).items():
            parts.setdefault(key, []).append(values)
    return {key: np.concatenate(values) for key, values in parts.items()}


def _difference(values: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(values) == 1:
        return values[0]
    return {key: values[0][key] - values[1][key] for key in values[0].keys() & values[1].keys()}


def weighted_scores(outputs: Outputs, keys: list[str], weights: np.ndarray) -> dict[str, np.ndarray]:
    """The metrics of ``keys`` under each row of ``weights`` (one resample per row)."""
    if outputs.task == "classification":
        return _classification(outputs, keys, weights)
    return _regression(outputs, keys, weights)


# -- classification --------------------------------------------------------------------------------
def _classification(outputs: Outputs, keys: list[str], weights: np.ndarray) -> dict[str, np.ndarray]:
    labels = list(outputs.labels)
    out = _counting(outputs, labels, keys, weights) if any(_is_counting(k) for k in keys) else {}
    proba = outputs.proba
    if proba is None:
        return out
    y = outputs.y
    if "log_loss" in keys:
        out["log_loss"] = _mean(weights, _row_log_loss(y, proba, labels))
    binary = len(labels) == 2
    if binary and "brier_score_loss" in keys:
        out["brier_score_loss"] = _mean(weights, (proba[:, 1] - (y == labels[1])) ** 2)
    ranked = [k for k in ("roc_auc", "average_precision") if k in keys]
    if ranked and (binary or len(labels) <= _MAX_OVR_CLASSES):
        columns = [1] if binary else range(len(labels))
        per_class = [_ranking(y == labels[c], proba[:, c], weights) for c in columns]
        for name in ranked:
            out[name] = np.mean([values[name] for values in per_class], axis=0)
    return out


def _counting(outputs: Outputs, labels: list, keys: list[str], weights: np.ndarray) -> dict[str, np.ndarray]:
    """The counting metrics from the weighted confusion matrices of the block."""
    labels = _labels_seen(labels, outputs.y, outputs.predicted)
    k = len(labels)
    true, pred = _positions(labels, outputs.y), _positions(labels, outputs.predicted)
    known = (true >= 0) & (pred >= 0)
    cells = sparse.csr_matrix(
        (np.ones(int(known.sum())), (np.flatnonzero(known), true[known] * k + pred[known])),
        shape=(len(true), k * k),
    )
    confusion = np.asarray((cells.T @ weights.T).T).reshape(len(weights), k, k)  # [resample, true, predicted]
    present = np.union1d(true[true >= 0], pred[pred >= 0])
    return _from_confusion(confusion, weights.sum(axis=1), present, labels, keys)


def _from_confusion(
    confusion: np.ndarray, total: np.ndarray, present: np.ndarray, labels: list, keys: list[str]
) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy, precision / recall / F1 (weighted, macro, per class) of
    confusion matrices [resample, true, predicted]; ``present``: the labels in y or the predictions
    (scikit-learn's macro and weighted averages run over those)."""
    k = len(labels)
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    support, predicted = confusion.sum(axis=2), confusion.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        out = {"accuracy": tp.sum(axis=1) / total}
        out["balanced_accuracy"] = np.nanmean(np.where(support > 0, recall, np.nan), axis=1)
    mask = np.isin(np.arange(k), present)
    weight = support[:, mask]
    for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name] = np.where(
                weight.sum(axis=1) > 0, (values[:, mask] * weight).sum(axis=1) / weight.sum(axis=1), 0.0
            )
        out[f"{name}_macro"] = values[:, mask].mean(axis=1)
        for i, label in enumerate(labels):
            key = f"{name}[{label}]"
            if key in keys:
                out[key] = values[:, i]
    return {key: value for key, value in out.items() if key in keys}


def _labels_seen(labels, *columns: np.ndarray) -> list:
    """The model's labels, then any other value of the true labels or the predictions (a class the
    model never learned, on a test row): scikit-learn's averages count those rows too."""
    known = list(labels)
    seen = pd.unique(np.concatenate([np.asarray(c, dtype=object) for c in columns]))
    return known + [v for v in seen if v not in known]


def _positions(labels: list, values: np.ndarray) -> np.ndarray:
    """Each value's position in ``labels``; -1 for a value that is not one of them."""
    return pd.Index(labels).get_indexer(values)


def _row_log_loss(y: np.ndarray, proba: np.ndarray, labels: list) -> np.ndarray:
    columns = _positions(labels, y)
    eps = np.finfo(proba.dtype).eps
    picked = np.clip(proba[np.arange(len(y)), columns], eps, 1 - eps)
    return -np.log(picked)


def _ranking(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted ROC AUC (ties count half, as the trapezoid of scikit-learn's curve) and average
    precision (scikit-learn's step sum over the distinct scores) of one class against the rest."""
    distinct, group = np.unique(score, return_inverse=True)  # ascending scores
    groups = len(distinct)
    rows = np.arange(len(score))

    def by_group(mask: np.ndarray) -> np.ndarray:
        matrix = sparse.csr_matrix((np.ones(int(mask.sum())), (rows[mask], group[mask])), shape=(len(score), groups))
        return np.asarray((matrix.T @ weights.T).T)  # [resample, group]

    pos, neg = by_group(positive), by_group(~positive)
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives with a lower score
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
        # Thresholds from the highest score down: true and false positives at or above each.
        tp = np.cumsum(pos[:, ::-1], axis=1)
        fp = np.cumsum(neg[:, ::-1], axis=1)
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        ap = (pos[:, ::-1] * precision).sum(axis=1) / total_pos
    return {"roc_auc": auc, "average_precision": ap}


# -- regression ------------------------------------------------------------------------------------
def _regression(outputs: Outputs, keys: list[str], weights: np.ndarray) -> dict[str, np.ndarray]:
    y = outputs.y.astype(np.float64)
    residual = y - outputs.predicted.astype(np.float64)
    total = weights.sum(axis=1)
    out: dict[str, np.ndarray] = {}
    if "mae" in keys:
        out["mae"] = _mean(weights, np.abs(residual))
    if "rmse" in keys or "r2" in keys:
        squared = weights @ residual**2
        out["rmse"] = np.sqrt(squared / total)
        centered = y - y.mean()
        spread = weights @ centered**2 - (weights @ centered) ** 2 / total
        with np.errstate(divide="ignore", invalid="ignore"):
            out["r2"] = 1 - squared / spread
    if "mape" in keys:
        out["mape"] = _mean(weights, np.abs(residual) / np.maximum(np.abs(y), np.finfo(np.float64).eps))
    if "median_absolute_error" in keys:
        out["median_absolute_error"] = _weighted_median(np.abs(residual), weights)
    return {key: value for key, value in out.items() if key in keys}


def _mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    return (weights @ values) / weights.sum(axis=1)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted median per resample, as scikit-learn's median_absolute_error takes it with
    sample_weight ("averaged inverted CDF": the first value whose cumulative weight reaches half
    the total, averaged with the next weighted value when it lands on half exactly)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    cumulative = np.cumsum(weights[:, order], axis=1)
    half = 0.5 * cumulative[:, -1:]
    last = len(values) - 1
    position = np.minimum((cumulative < half).sum(axis=1), last)
    reached = np.take_along_axis(cumulative, position[:, None], axis=1)
    following = np.minimum((cumulative <= reached).sum(axis=1), last)
    exact = np.isclose(reached[:, 0], half[:, 0])
    return np.where(exact, (ordered[position] + ordered[following]) / 2, ordered[position])
