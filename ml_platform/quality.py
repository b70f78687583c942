"""The data contract as plain pandas rules, shared by the raw_data checks and training_data.

Each rule returns a ``RuleResult``: whether it passed, one line saying why, and numbers for the UI.
The columns a day must have are the pipeline's ``Schema``: declared in pipelines.yaml
(``features``), or pinned by the production model's signature (ml_platform.signature).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

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
    warning: bool = False  # passed, but with something a person should see (logged as a warning)


ExtraColumns = Literal["ignore", "fail"]
# Column names listed in one message before "… and N more".
LISTED_NAMES = 10


@dataclass(frozen=True)
class Schema:
    """The feature columns a pipeline's data must have, in order, with their kinds where known.

    ``source`` says where it comes from, for messages: pipelines.yaml (``features``) or the
    production model's signature. ``enforced`` is False when ``schema.evolve`` lets the data's
    columns replace a pinned schema: differences are then reported, not failed.
    ``extra_columns``: what a column outside the schema does to a day (``ignore``: it is left out
    of training, with a warning; ``fail``: the day fails ``schema_matches``).
    """

    features: tuple[str, ...]
    kinds: Mapping[str, str]
    source: str
    enforced: bool = True
    extra_columns: ExtraColumns = "ignore"


def names_text(names: Sequence[str]) -> str:
    """'a', 'b', 'c' … and 4 more."""
    shown = ", ".join(repr(str(n)) for n in names[:LISTED_NAMES])
    return shown + (f" … and {len(names) - LISTED_NAMES} more" if len(names) > LISTED_NAMES else "")


def columns_used(frame: pd.DataFrame, target: str, schema: Schema | None) -> list[str]:
    """The columns a day gives training: the schema's features (in the schema's order) and the
    target when the schema is enforced; every column otherwise (no schema yet, or evolving)."""
    if schema is None or not schema.enforced:
        return list(frame.columns)
    present = set(frame.columns)
    return [c for c in schema.features if c in present] + ([target] if target in present else [])


def _normalized(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def likely_renames(missing: Sequence[str], extra: Sequence[str], kinds: Mapping[str, str],
                   extra_kinds: Mapping[str, str]) -> list[tuple[str, str]]:
    """(missing, extra) pairs that look like one column renamed: the same name but for case and
    punctuation, a close spelling, or the only missing and the only new column of the same kind."""
    pairs, left = [], list(extra)
    for old in missing:
        same = [new for new in left if _normalized(new) == _normalized(old)]
        close = same or difflib.get_close_matches(old, left, n=1, cutoff=0.75)
        if close:
            pairs.append((old, close[0]))
            left.remove(close[0])
    unmatched = [old for old in missing if old not in {p[0] for p in pairs}]
    if len(unmatched) == 1 and len(left) == 1 and kinds.get(unmatched[0]) == extra_kinds.get(left[0]):
        pairs.append((unmatched[0], left[0]))
    return pairs


def schema_matches(frame: pd.DataFrame, target: str, schema: Schema | None) -> RuleResult:
    """The day's columns are the schema's: no feature missing, none of another kind, and (with
    ``extra_columns: fail``) no column outside it. Column order does not matter."""
    name = "schema_matches"
    if schema is None:
        return RuleResult(name, True, "no schema yet: the first model's signature pins it",
                          {"Schema": "none yet"})
    present = set(frame.columns)
    missing = [c for c in schema.features if c not in present]
    expected = set(schema.features)
    extra = [c for c in frame.columns if c != target and c not in expected]
    rekinded = []
    for column in schema.features:
        want = schema.kinds.get(column)
        if column in present and want and frame[column].notna().any():
            got = value_kind(frame[column])
            # A column of no valid kind (garbage in numbers, dates) is feature_columns_valid's to name.
            if got != want and got in VALUE_KINDS:
                rekinded.append((column, want, got))
    extra_kinds = {str(c): value_kind(frame[c]) for c in extra}
    extra = [str(c) for c in extra]
    renames = likely_renames(missing, extra, schema.kinds, extra_kinds)
    problems = []
    if missing:
        problems.append(f"missing feature column(s) {names_text(missing)}")
    if extra:
        problems.append(f"unexpected column(s) {names_text(extra)}")
    if renames:
        problems.append("likely renamed: " + ", ".join(f"{old!r} -> {new!r}" for old, new in renames))
    problems += [f"column {c!r} is {got}, the schema says {want}" for c, want, got in rekinded]
    metadata = {"Schema": schema.source, "Feature columns": len(schema.features),
                "Missing columns": len(missing), "Unexpected columns": len(extra),
                "Re-kinded columns": len(rekinded)}
    if not schema.enforced:
        message = (f"differs from {schema.source}: {'; '.join(problems)} (schema.evolve: true lets the"
                   " next model take the data's columns)" if problems
                   else f"the {len(schema.features)} feature columns of {schema.source}")
        return RuleResult(name, True, message, metadata, warning=bool(problems))
    if missing or rekinded or (extra and schema.extra_columns == "fail"):
        hint = (" (schema.extra_columns: fail)" if extra and not missing and not rekinded else "")
        return RuleResult(name, False, f"{'; '.join(problems)}{hint}; expected the columns of {schema.source}",
                          metadata)
    message = f"the {len(schema.features)} feature columns of {schema.source}"
    if extra:
        message += f"; ignored unexpected column(s) {names_text(extra)} (schema.extra_columns: ignore)"
    return RuleResult(name, True, message, metadata, warning=bool(extra))


def columns_agree(columns_by_day: Mapping[str, Sequence[str]]) -> RuleResult:
    """Every day has the same set of columns (in any order)."""
    days = sorted(columns_by_day)
    sets = {day: set(columns_by_day[day]) for day in days}
    union = sorted(set().union(*sets.values()), key=str) if sets else []
    problems = []
    for column in union:
        lacking = [day for day in days if column not in sets[day]]
        if lacking:
            having = [day for day in days if column in sets[day]]
            problems.append(f"{column!r} is in {_days_text(having)} but not in {_days_text(lacking)}")
    message = "; ".join(problems[:LISTED_NAMES]) + (
        f" … and {len(problems) - LISTED_NAMES} more columns" if len(problems) > LISTED_NAMES else "")
    return RuleResult(
        "consistent_columns",
        not problems,
        message or f"the same {len(union)} columns on all {len(days)} days",
        {"Differing columns": len(problems)},
    )


def _days_text(days: Sequence[str]) -> str:
    return ", ".join(days) if len(days) <= 3 else f"{days[0]} … {days[-1]} ({len(days)} days)"


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


def feature_types(frame: pd.DataFrame, target: str) -> RuleResult:
    """Every feature column (every column but the target: ``columns_used`` leaves out what the
    schema ignores) is numeric, boolean or categorical text; which columns must be there is
    ``schema_matches``' concern."""
    features = feature_columns_of(frame, target)
    problems = []
    if not features:
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


VALUE_KINDS = ("numeric", "boolean", "categorical")


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
    schema: Schema | None,
    max_null_ratio: float,
    task: str = "classification",
) -> list[RuleResult]:
    """Every rule of the data contract of a task, in a stable order (``rule_names(task)``). Nulls
    and kinds are judged on the columns training will use (``columns_used``)."""
    used = frame[columns_used(frame, target, schema)]
    return [
        not_empty(frame),
        target_present(frame, target),
        schema_matches(frame, target, schema),
        null_ratio(used, max_null_ratio),
        feature_types(used, target),
        target_classes(frame, target) if task == "classification" else numeric_target(frame, target),
    ]


RULE_NAMES = (
    "not_empty",
    "target_column_present",
    "schema_matches",
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
    "schema_matches": (
        "The day's columns are the pipeline's schema (pipelines.yaml features, or the production"
        " model's signature): none missing, none of another kind, none unexpected with"
        " schema.extra_columns: fail."
    ),
    "null_ratio_below_threshold": "No column has more nulls than the configured ratio.",
    "feature_columns_valid": (
        "Every feature column is numeric, boolean or categorical text (not an identifier)."
    ),
    "at_least_two_classes": "The target has at least two classes.",
    "target_is_numeric": "The target is finite numbers with at least two distinct values.",
}
