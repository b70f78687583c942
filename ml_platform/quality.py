"""The data contract as plain pandas rules, shared by the raw_data checks and training_data.

Each rule returns a ``RuleResult``: whether it passed, one line saying why, and numbers for the UI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ml_platform import constants


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
        return "numeric", None
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical", None
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "invalid", f"has type {dtype}; convert dates to numbers or categories first"
    values = series.dropna()
    if not pd.api.types.is_string_dtype(dtype):
        return "invalid", f"has unsupported type {dtype}"
    if len(values) and not values.map(lambda v: isinstance(v, str)).all():
        kinds = sorted({type(v).__name__ for v in values})
        if len(kinds) == 1:
            return "invalid", f"holds {kinds[0]} values, not numbers or text"
        return "invalid", f"mixes Python types ({', '.join(kinds)})"
    if len(values):
        numeric = pd.to_numeric(values, errors="coerce")
        share = float(numeric.notna().mean())
        if share >= constants.NUMERIC_LIKE_SHARE:
            bad = values[numeric.isna()].unique()[:3].tolist()
            if bad:
                return "invalid", (
                    f"is {share:.0%} numbers with non-numeric values such as {bad}"
                )
            return "invalid", "holds numbers stored as text"
    return "categorical", None


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
    return RuleResult(
        "target_column_present",
        present,
        f"target column {target!r} present"
        if present
        else f"target column {target!r} is missing (columns: {', '.join(map(str, frame.columns))})",
        {"Target column": target},
    )


def null_ratio(frame: pd.DataFrame, max_null_ratio: float) -> RuleResult:
    if frame.empty:
        return RuleResult(
            "null_ratio_below_threshold", False, "no rows to measure", {"Threshold": max_null_ratio}
        )
    ratios = frame.isna().mean()
    worst_column = str(ratios.idxmax()) if len(ratios) else ""
    worst = float(ratios.max()) if len(ratios) else 0.0
    over = {str(c): round(float(r), 4) for c, r in ratios.items() if r > max_null_ratio}
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
        if kind == "invalid":
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


def evaluate(
    frame: pd.DataFrame,
    target: str,
    expected_features: Sequence[str] | None,
    max_null_ratio: float,
) -> list[RuleResult]:
    """Every rule of the data contract, in a stable order."""
    return [
        not_empty(frame),
        target_present(frame, target),
        null_ratio(frame, max_null_ratio),
        feature_types(frame, target, expected_features),
        target_classes(frame, target),
    ]


RULE_NAMES = (
    "not_empty",
    "target_column_present",
    "null_ratio_below_threshold",
    "feature_columns_valid",
    "at_least_two_classes",
)

RULE_DESCRIPTIONS = {
    "not_empty": "The day's data has at least one row.",
    "target_column_present": "The target column is present.",
    "null_ratio_below_threshold": "No column has more nulls than the configured ratio.",
    "feature_columns_valid": "Expected feature columns are present and numeric or categorical.",
    "at_least_two_classes": "The target has at least two classes.",
}
