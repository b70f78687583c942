"""Feature drift between a day of raw_data and the data the production model was trained on.

The training data is summarised once, when trained_model is fitted, as a *reference profile*
(stored with each model version in the model store, ``drift_profile.json``): for each numeric
feature its decile edges and the share of rows in each bin (and a sample of values for the KS
test); for each categorical feature the share of each category. A day is compared with it by

- PSI, the population stability index: sum over bins of (p - q) * ln(p / q), per feature
  (rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large), or
- KS, the Kolmogorov-Smirnov statistic for numeric features: the largest distance between the
  day's empirical distribution function and the training data's (read off its percentiles, so
  within about 0.01), 0..1. Categorical features use PSI either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml_platform.quality.kinds import column_kind

BINS = 10
PERCENTILES = np.linspace(0, 1, 101)  # kept per numeric feature, for the KS statistic
DEFAULT_THRESHOLDS = {"psi": 0.2, "ks": 0.15}
# Small days are noisy: a threshold never goes below what sampling noise alone reaches between a
# day of n rows and m training rows (KS: the critical value at alpha = 0.001; PSI: four times the
# expected PSI of two samples of one distribution, (bins - 1) * (1/n + 1/m)).
KS_CRITICAL = 1.95
PSI_NOISE_FACTOR = 4.0
EPSILON = 1e-4  # an empty bin counts as this share, so that ln(p / q) stays finite
OTHER = "(other)"


def _round(values: np.ndarray) -> list[float]:
    return [float(f"{v:.6g}") for v in values]


def profile(frame: pd.DataFrame, target: str) -> dict[str, Any]:
    """The reference profile of a training frame (JSON-serialisable, a few KB per feature)."""
    features: dict[str, Any] = {}
    for column in frame.columns:
        if column == target:
            continue
        series = frame[column]
        kind, _ = column_kind(series)
        values = series.dropna()
        if kind == "numeric":
            numbers = values.to_numpy(dtype="float64")
            if len(numbers) == 0:
                continue
            edges = np.unique(np.quantile(numbers, np.linspace(0, 1, BINS + 1)[1:-1]))
            features[str(column)] = {
                "kind": "numeric",
                "edges": _round(edges),
                "shares": _round(np.asarray(_numeric_shares(numbers, edges))),
                "percentiles": _round(np.quantile(numbers, PERCENTILES)),
            }
        elif kind in ("categorical", "boolean"):  # booleans are categories here (dates are not profiled)
            shares = values.astype(str).value_counts(normalize=True)
            features[str(column)] = {"kind": "categorical", "shares": {str(k): float(v) for k, v in shares.items()}}
    return {"rows": int(len(frame)), "features": features}


def _numeric_shares(numbers: np.ndarray, edges: np.ndarray) -> list[float]:
    counts = np.bincount(np.searchsorted(edges, numbers, side="right"), minlength=len(edges) + 1)
    return (counts / max(1, counts.sum())).tolist()


def psi(
    expected: list[float] | np.ndarray, actual: list[float] | np.ndarray, n_expected: int = 0, n_actual: int = 0
) -> float:
    """PSI of two share vectors. With the row counts, shares are smoothed (half a row added to
    every bin), so a bin that happens to be empty in a small day does not count as drift."""
    q = np.asarray(expected, dtype="float64")
    p = np.asarray(actual, dtype="float64")
    if n_expected and n_actual:
        q = (q * n_expected + 0.5) / (n_expected + 0.5 * len(q))
        p = (p * n_actual + 0.5) / (n_actual + 0.5 * len(p))
    p, q = np.clip(p, EPSILON, None), np.clip(q, EPSILON, None)
    return float(np.sum((p - q) * np.log(p / q)))


def ks(percentiles: list[float] | np.ndarray, numbers: np.ndarray) -> float:
    """KS statistic between the reference (its percentiles) and the day's values."""
    reference = np.asarray(percentiles, dtype="float64")
    day = np.sort(numbers)
    if len(day) == 0:
        return 0.0
    grid = np.concatenate([reference, day])
    # The reference CDF, linear between its percentiles (a flat run of equal values jumps at once).
    cdf_reference = np.interp(grid, reference, PERCENTILES, left=0.0, right=1.0)
    cdf_day = np.searchsorted(day, grid, side="right") / len(day)
    return float(np.max(np.abs(cdf_reference - cdf_day)))


def noise_floor(statistic: str, bins: int, n_day: int, n_reference: int) -> float:
    n, m = max(1, n_day), max(1, n_reference)
    if statistic == "KS":
        return KS_CRITICAL * float(np.sqrt((n + m) / (n * m)))
    return PSI_NOISE_FACTOR * (bins - 1) * (1 / n + 1 / m)


def compare(reference: dict[str, Any], frame: pd.DataFrame, method: str, threshold: float) -> list[dict[str, Any]]:
    """One row per reference feature: its statistic, and whether it is over the threshold
    (categorical features: PSI against the PSI default when the method is KS)."""
    rows = []
    for column, ref in reference["features"].items():
        if column not in frame.columns:
            rows.append(
                {
                    "Feature": column,
                    "Statistic": "missing",
                    "Value": float("nan"),
                    "Threshold": threshold,
                    "Drifted": True,
                }
            )
            continue
        values = frame[column].dropna()
        if ref["kind"] == "numeric":
            try:
                numbers = values.to_numpy(dtype="float64")
            except (TypeError, ValueError):
                rows.append(
                    {
                        "Feature": column,
                        "Statistic": "not numeric",
                        "Value": float("nan"),
                        "Threshold": threshold,
                        "Drifted": True,
                    }
                )
                continue
            if method == "ks":
                value, statistic = ks(ref["percentiles"], numbers), "KS"
            else:
                value = psi(
                    ref["shares"], _numeric_shares(numbers, np.asarray(ref["edges"])), reference["rows"], len(numbers)
                )
                statistic = "PSI"
        else:
            shares = values.astype(str).value_counts(normalize=True)
            categories = list(ref["shares"])
            expected = [ref["shares"][c] for c in categories] + [0.0]
            actual = [float(shares.get(c, 0.0)) for c in categories]
            actual.append(float(shares[~shares.index.isin(categories)].sum()))  # unseen categories
            value, statistic = psi(expected, actual, reference["rows"], len(values)), "PSI"
        limit = threshold if statistic == method.upper() else DEFAULT_THRESHOLDS["psi"]
        bins = len(ref["shares"]) + (1 if ref["kind"] == "categorical" else 0)
        limit = round(max(limit, noise_floor(statistic, bins, len(values), reference["rows"])), 6)
        rows.append(
            {
                "Feature": column,
                "Statistic": statistic,
                "Value": round(value, 6),
                "Threshold": limit,
                "Drifted": bool(value > limit),
            }
        )
    return sorted(rows, key=lambda r: (-1 if np.isnan(r["Value"]) else 0, -np.nan_to_num(r["Value"])))
