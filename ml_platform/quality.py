"""The data contract as plain pandas rules, shared by the raw_data checks and training_data.

Each rule returns a ``RuleResult``: whether it passed, one line saying why, and numbers for the UI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_platform import constants

# A text column with more distinct values than HIGH_CARDINALITY_VALUES, that are also more than
# HIGH_CARDINALITY_SHARE of its rows, is an identifier or free text rather than a category:
# one-hot encoding it would add a model input per row and learn nothing that generalises.
HIGH_CARDINALITY_VALUES = 50
HIGH_CARDINALITY_SHARE = 0.5
# Separators that make a CSV parse as one column when they stand where commas should.
OTHER_CSV_SEPARATORS = (";", "\t", "|")


@dataclass(frozen=True)
class RuleResult:
    name: str
    passed: bool
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)


def feature_columns_of(frame: pd.DataFrame, target: str) -> list[str]:
    """Every column but the target."""
    return [c for c in frame.columns if c != target]


def column_kind(series: pd.Series) -> tuple[str, str | None]:
    """('numeric' | 'categorical' | 'invalid', problem) for one feature column."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_float_dtype(dtype):
            # scikit-learn refuses infinity without naming the column: say which one here.
            infinite = int(np.isinf(series.to_numpy(dtype="float64", na_value=np.nan)).sum())
            if infinite:
                return "invalid", f"holds {infinite} infinite value(s); replace them or leave them empty"
        return "numeric", None
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical", None
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "invalid", f"has type {dtype}; convert dates to numbers or categories first"
    if not pd.api.types.is_string_dtype(dtype):
        return "invalid", f"has unsupported type {dtype}"
    values = series.dropna()
    # The checks below look at each distinct value once (weighted by its count): a category
    # column of 50k rows has a handful, and a day is checked in milliseconds instead of 0.1 s.
    try:
        counts = values.value_counts(sort=False)
    except TypeError:  # unhashable values (lists, dicts): check them one by one
        counts = pd.Series(1, index=pd.Index(values.to_list(), dtype=object))
    distinct = counts.index.to_series(index=range(len(counts)))
    if len(distinct) and not distinct.map(lambda v: isinstance(v, str)).all():
        kinds = sorted({type(v).__name__ for v in distinct})
        if len(kinds) == 1:
            return "invalid", f"holds {kinds[0]} values, not numbers or text"
        return "invalid", f"mixes Python types ({', '.join(kinds)})"
    if len(distinct):
        numeric = pd.to_numeric(distinct, errors="coerce")
        share = float(counts.to_numpy()[numeric.notna().to_numpy()].sum() / counts.sum())
        if share >= constants.NUMERIC_LIKE_SHARE:
            bad = distinct[numeric.isna()].tolist()[:3]
            if bad:
                return "invalid", (
                    f"is {share:.0%} numbers with non-numeric values such as {bad}"
                )
            return "invalid", "holds numbers stored as text"
    return "categorical", None


def cardinality_problem(series: pd.Series) -> str | None:
    """Why a categorical column is too fine-grained to be a category, or None."""
    values = series.dropna()
    distinct = int(values.nunique())
    if distinct > HIGH_CARDINALITY_VALUES and distinct > HIGH_CARDINALITY_SHARE * len(values):
        return (
            f"has {distinct} distinct values in {len(values)} rows: an identifier or free text,"
            " not a category; drop it or group its values"
        )
    return None


def not_empty(frame: pd.DataFrame) -> RuleResult:
    rows = len(frame)
    return RuleResult(
        "not_empty",
        rows > 0,
        f"{rows} rows" if rows else "the data has no rows",
        {"Rows": rows},
    )


def target_present(frame: pd.DataFrame, target: str) -> RuleResult:
    present = target in frame.columns
    message = (
        f"target column {target!r} present"
        if present
        else f"target column {target!r} is missing (columns: {', '.join(map(str, frame.columns))})"
    )
    if not present and len(frame.columns) == 1:
        separator = next((s for s in OTHER_CSV_SEPARATORS if s in str(frame.columns[0])), None)
        if separator:
            message += f"; the header is one column holding {separator!r}: a CSV must be comma-separated"
    return RuleResult("target_column_present", present, message, {"Target column": target})


def null_ratio(frame: pd.DataFrame, max_null_ratio: float) -> RuleResult:
    if frame.empty:
        return RuleResult(
            "null_ratio_below_threshold", False, "no rows to measure", {"Threshold": max_null_ratio}
        )
    ratios = frame.isna().mean()
    worst_column = str(ratios.idxmax()) if len(ratios) else ""
    worst = float(ratios.max()) if len(ratios) else 0.0
    over = {str(c): float(r) for c, r in ratios.items() if r > max_null_ratio}  # rounded once, below
    message = (
        f"largest null ratio {worst:.3f} ({worst_column}) <= {max_null_ratio}"
        if not over
        else f"null ratio above {max_null_ratio} in: "
        + ", ".join(f"{c} ({r:.3f})" for c, r in over.items())
    )
    return RuleResult(
        "null_ratio_below_threshold",
        not over,
        message,
        {"Max null ratio": worst, "Worst column": worst_column, "Threshold": float(max_null_ratio)},
    )


def feature_types(
    frame: pd.DataFrame, target: str, expected: Sequence[str] | None
) -> RuleResult:
    features = feature_columns_of(frame, target)
    problems = []
    if expected:
        missing = [c for c in expected if c not in frame.columns]
        if missing:
            problems.append(f"expected feature columns missing: {', '.join(missing)}")
        features = [c for c in expected if c in frame.columns]
    if not features and not problems:
        problems.append("there are no feature columns besides the target")
    for column in features:
        kind, problem = column_kind(frame[column])
        if kind == "categorical":
            problem = cardinality_problem(frame[column])
        if problem:
            problems.append(f"column {column!r} {problem}")
    return RuleResult(
        "feature_columns_valid",
        not problems,
        "; ".join(problems) if problems else f"{len(features)} numeric or categorical feature columns",
        {"Feature columns": len(features)},
    )


def target_classes(frame: pd.DataFrame, target: str) -> RuleResult:
    if target not in frame.columns:
        return RuleResult("at_least_two_classes", False, f"target column {target!r} is missing")
    classes = int(frame[target].nunique(dropna=True))
    enough = classes >= constants.MIN_TARGET_CLASSES
    return RuleResult(
        "at_least_two_classes",
        enough,
        f"{classes} target class{'' if classes == 1 else 'es'}"
        + ("" if enough else f"; need at least {constants.MIN_TARGET_CLASSES}"),
        {"Target classes": classes},
    )


def numeric_target(frame: pd.DataFrame, target: str) -> RuleResult:
    """Regression: the target is numbers (finite), and not all the same."""
    name = "target_is_numeric"
    if target not in frame.columns:
        return RuleResult(name, False, f"target column {target!r} is missing")
    series = frame[target]
    if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
        return RuleResult(name, False, f"target column {target!r} has type {series.dtype}, not numbers")
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    infinite = int(np.isinf(values).sum())
    if infinite:
        return RuleResult(name, False, f"target column {target!r} holds {infinite} infinite value(s)")
    distinct = int(series.nunique(dropna=True))
    if distinct < 2:
        return RuleResult(name, False, f"target column {target!r} has {distinct} distinct value(s): nothing"
                          " to learn", {"Distinct targets": distinct})
    return RuleResult(name, True, f"numeric target, {distinct} distinct values",
                      {"Distinct targets": distinct})


def value_kind(series: pd.Series) -> str:
    """What a column holds, as far as concatenating days goes: 'boolean', 'numeric',
    'categorical', or its dtype."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "numeric"
    kind, _ = column_kind(series)
    return kind if kind != "invalid" else str(series.dtype)


def schema_drift(frames: Mapping[str, pd.DataFrame]) -> RuleResult:
    """Columns whose kind differs between days (say numeric on one day, text on another).

    Concatenated, such a column would silently become text, and the model would one-hot encode
    the numbers. A column that is all null on a day has no kind there.
    """
    days_by_kind: dict[str, dict[str, list[str]]] = {}
    for day, frame in sorted(frames.items()):
        for column in frame.columns:
            if frame[column].notna().any():
                kinds = days_by_kind.setdefault(str(column), {})
                kinds.setdefault(value_kind(frame[column]), []).append(day)
    drifting = {column: kinds for column, kinds in days_by_kind.items() if len(kinds) > 1}
    message = "; ".join(
        f"column {column!r} is "
        + " but ".join(f"{kind} on {', '.join(days)}" for kind, days in kinds.items())
        for column, kinds in drifting.items()
    )
    return RuleResult(
        "consistent_schema",
        not drifting,
        message or f"every column has one kind on all {len(frames)} days",
        {"Drifting columns": len(drifting)},
    )


def duplicate_rows(frame: pd.DataFrame) -> np.ndarray:
    """Mask of the rows that repeat an earlier row exactly (the first of each stays unmasked).

    Rows are hashed first and only rows whose hashes repeat are compared, which keeps this
    cheap on large frames; the comparison itself is exact.
    """
    mask = np.zeros(len(frame), dtype=bool)
    if len(frame):
        candidates = pd.util.hash_pandas_object(frame, index=False).duplicated(keep=False).to_numpy()
        if candidates.any():
            mask[np.flatnonzero(candidates)] = frame[candidates].duplicated().to_numpy()
    return mask


def evaluate(
    frame: pd.DataFrame,
    target: str,
    expected_features: Sequence[str] | None,
    max_null_ratio: float,
    task: str = "classification",
) -> list[RuleResult]:
    """Every rule of the data contract of a task, in a stable order (``rule_names(task)``)."""
    return [
        not_empty(frame),
        target_present(frame, target),
        null_ratio(frame, max_null_ratio),
        feature_types(frame, target, expected_features),
        target_classes(frame, target) if task == "classification" else numeric_target(frame, target),
    ]


RULE_NAMES = (
    "not_empty",
    "target_column_present",
    "null_ratio_below_threshold",
    "feature_columns_valid",
    "at_least_two_classes",
)
REGRESSION_RULE_NAMES = (*RULE_NAMES[:-1], "target_is_numeric")


def rule_names(task: str) -> tuple[str, ...]:
    return RULE_NAMES if task == "classification" else REGRESSION_RULE_NAMES

RULE_DESCRIPTIONS = {
    "not_empty": "The day's data has at least one row.",
    "target_column_present": "The target column is present.",
    "null_ratio_below_threshold": "No column has more nulls than the configured ratio.",
    "feature_columns_valid": (
        "Expected feature columns are present and numeric or categorical (not an identifier)."
    ),
    "at_least_two_classes": "The target has at least two classes.",
    "target_is_numeric": "The target is finite numbers with at least two distinct values.",
}
