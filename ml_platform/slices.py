"""Slices: the model's scores on the rows of each value of a column (``region=north``), or of each
quantile bin of a numeric one (``tenure=(12.0, 24.0]``), with the rows behind each score (its
support). Free of Dagster: ml_platform.assets.evaluation calls it.

The scores of a slice are those of ``intervals.weighted_scores`` with every weight 1: the same
vectorised code as the intervals, equal to scikit-learn's own functions on the slice's rows (a test
compares them). A slice's predictions are the model's on the whole test split, subset: nothing is
predicted twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.intervals import Outputs, weighted_scores

MISSING = "(missing)"
WORST = 5  # the worst slices listed over every categorical feature
# A declared slice column with more values than this: its largest slices are scored, the rest left out.
MAX_VALUES = 100


@dataclass(frozen=True)
class Slice:
    """One slice: the column, its value (or bin) and its test rows."""

    column: str
    value: str
    rows: int

    @property
    def name(self) -> str:
        """As people read it: ``region=north``."""
        return f"{self.column}={self.value}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return cls(**data)


@dataclass(frozen=True)
class SliceScores(Slice):
    """A slice and the model's scores there."""

    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SliceComparison(Slice):
    """A slice of the fresh test rows with the champion's and the challenger's scores there."""

    champion: dict[str, float] = field(default_factory=dict)
    challenger: dict[str, float] = field(default_factory=dict)


def is_categorical(column: pd.Series, kind: str | None = None) -> bool:
    """Whether a column's values are slices themselves (a category, a string, a boolean; or declared
    ``categorical`` / ``boolean`` in features) rather than numbers binned by quantiles."""
    if kind is not None:
        return kind in ("categorical", "boolean")
    if pd.api.types.is_datetime64_any_dtype(column):
        return False
    return not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def slice_labels(column: pd.Series, bins: int, kind: str | None = None) -> pd.Series:
    """Each row's slice of ``column`` as a string: its value, or for numbers with more distinct
    values than ``bins`` its quantile bin (``(12.0, 24.0]``); ``(missing)`` where it is missing."""
    missing = column.isna().to_numpy()
    numeric = pd.api.types.is_numeric_dtype(column) and not is_categorical(column, kind)
    if numeric and column.nunique(dropna=True) > bins:
        binned = pd.qcut(column.astype("float64"), q=bins, duplicates="drop", precision=3)
        labels = binned.astype(str)
    else:
        labels = column.astype(str)
    labels = pd.Series(np.where(missing, MISSING, labels.to_numpy(dtype=object)), index=column.index, dtype=object)
    return labels


def scores_of_slices(
    outputs: Outputs, column: str, labels: pd.Series, keys: list[str], min_rows: int = 1, most: int | None = None
) -> list[SliceScores]:
    """The scores of ``keys`` on each slice of ``labels`` (one label per test row, in the order of
    ``outputs``) with at least ``min_rows`` rows; the ``most`` largest slices only, when given.
    A score a slice cannot define (ROC AUC of a slice of one class) is left out."""
    groups = _groups(labels, min_rows, most)
    out = []
    for value, positions in groups:
        scores = _scores(outputs.subset(positions), keys)
        out.append(SliceScores(column, value, len(positions), scores))
    return out


def compare_slices(
    challenger: Outputs, champion: Outputs, column: str, labels: pd.Series, keys: list[str], most: int | None = None
) -> list[SliceComparison]:
    """Both models' scores of ``keys`` on each slice of the same rows (``labels``: each row's slice)."""
    out = []
    for value, positions in _groups(labels, 1, most):
        out.append(
            SliceComparison(
                column,
                value,
                len(positions),
                _scores(champion.subset(positions), keys),
                _scores(challenger.subset(positions), keys),
            )
        )
    return out


def worst_slices(
    outputs: Outputs,
    frame: pd.DataFrame,
    columns: list[str],
    metric: str,
    higher_is_better: bool,
    min_rows: int,
    count: int = WORST,
) -> list[SliceScores]:
    """The ``count`` slices with the worst ``metric`` over the values of every one of ``columns``
    (categorical features) with at least ``min_rows`` test rows."""
    found = []
    for column in columns:
        labels = slice_labels(frame[column], bins=0, kind="categorical")
        found += [s for s in scores_of_slices(outputs, column, labels, [metric], min_rows) if metric in s.scores]
    found.sort(key=lambda s: (s.scores[metric] if higher_is_better else -s.scores[metric], -s.rows, s.name))
    return found[:count]


def _groups(labels: pd.Series, min_rows: int, most: int | None) -> list[tuple[str, np.ndarray]]:
    """(slice, the positions of its rows) with at least ``min_rows`` rows, largest first (then by name)."""
    codes, uniques = pd.factorize(pd.Series(labels).to_numpy(dtype=object), sort=False)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    order = sorted((i for i in range(len(uniques)) if counts[i] >= min_rows), key=lambda i: (-counts[i], uniques[i]))
    if most is not None:
        order = order[:most]
    by_code = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes[codes >= 0], minlength=len(uniques)))])
    return [(str(uniques[i]), np.sort(by_code[starts[i] : starts[i + 1]])) for i in order]


def _scores(outputs: Outputs, keys: list[str]) -> dict[str, float]:
    values = weighted_scores(outputs, keys, np.ones((1, outputs.rows)))
    return {k: float(v[0]) for k, v in values.items() if np.isfinite(v[0])}
