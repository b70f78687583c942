"""The data contract as plain pandas rules, shared by the raw_data checks and training_data.

Each rule returns a ``RuleResult`` (ml_platform.quality.results): whether it passed, one line saying
why, the severity of a failure (``block`` keeps the day out of training, ``warn`` does not), numbers
for the UI and, where a rule judges columns one by one, a row per column and rule (observed, limit,
passed). What a day is judged against is the pipeline's ``Contract`` (pipelines.yaml ``quality:``)
and its ``Schema`` (ml_platform.quality.schema).

The rules are vectorized pandas, measured once per column: every rule's observed value is in the
check's table whether it passed or not (docs/design.md says why this is not pandera).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml_platform import constants
from ml_platform.quality.kinds import cardinality_problem, category_text, column_kind, datetimes
from ml_platform.quality.results import LISTED_NAMES, RuleResult, Severity
from ml_platform.quality.schema import Schema, columns_used, feature_columns_of, schema_matches

# Separators that make a CSV parse as one column when they stand where commas should.
OTHER_CSV_SEPARATORS = (";", "\t", "|")
# Rows of a rule's table in the UI (the failed ones first).
TABLE_ROWS = 200


@dataclass(frozen=True)
class Rule:
    """One declared rule: its value and what its failure does (``block`` or ``warn``)."""

    value: Any
    severity: Severity = "block"


@dataclass(frozen=True)
class ColumnRules:
    """The rules pipelines.yaml declares for one column (``quality.columns.<column>``)."""

    max_null_ratio: Rule | None = None
    min: Rule | None = None
    max: Rule | None = None
    allowed: Rule | None = None  # value: a tuple of values
    unique: Rule | None = None
    max_categories: Rule | None = None

    def value_rules(self) -> list[tuple[str, Rule]]:
        """The rules of ``declared_rules_met`` (everything but the null share), in a stable order."""
        return [
            (name, rule)
            for name in ("min", "max", "allowed", "unique", "max_categories")
            if (rule := getattr(self, name)) is not None
        ]


@dataclass(frozen=True)
class Contract:
    """What each day of a pipeline is checked against, beyond its schema: the null share of its
    feature columns, its rows, its labels and the rules declared per column. Frozen and made of
    tuples: two contracts are equal when they check the same."""

    max_null_ratio: Rule = Rule(constants.DEFAULT_MAX_NULL_RATIO)
    min_rows: Rule | None = None
    target_missing: Rule = Rule(constants.DEFAULT_MAX_TARGET_MISSING)
    columns: tuple[tuple[str, ColumnRules], ...] = ()

    @classmethod
    def of(cls, contract: Contract | float | None) -> Contract:
        """A contract, or the default one with this pipeline-wide ``max_null_ratio``."""
        if isinstance(contract, Contract):
            return contract
        return cls() if contract is None else cls(max_null_ratio=Rule(float(contract)))

    def column(self, name: str) -> ColumnRules | None:
        return dict(self.columns).get(name)

    @property
    def declares_values(self) -> bool:
        """Whether ``declared_rules_met`` has anything to judge (min_rows, or a value rule)."""
        return self.min_rows is not None or any(rules.value_rules() for _, rules in self.columns)


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


def _row(column: str, rule: str, observed: Any, limit: Any, passed: bool, severity: str) -> dict[str, Any]:
    return {
        "Column": column,
        "Rule": rule,
        "Observed": _shown(observed),
        "Limit": _shown(limit),
        "Passed": passed,
        "Severity": severity,
    }


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value[:LISTED_NAMES])) + (f" … ({len(value)})" if len(value) > LISTED_NAMES else "")
    return str(value)


def _failure_severity(rows: Sequence[dict[str, Any]]) -> Severity:
    """``block`` when any failed row blocks, else ``warn``."""
    return "block" if any(not r["Passed"] and r["Severity"] == "block" for r in rows) else "warn"


def _table_rows(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The rows a check shows: the failed ones first, at most TABLE_ROWS."""
    return tuple(sorted(rows, key=lambda r: r["Passed"])[:TABLE_ROWS])


def _warn_note(severity: str) -> str:
    return " (severity warn: the day is still used)" if severity == "warn" else ""


def null_ratio(features: pd.DataFrame, contract: Contract | float) -> RuleResult:
    """No feature column has a larger share of empty values than its limit: its own
    (``quality.columns.<c>.max_null_ratio``) or the pipeline's (``quality.max_null_ratio``). The
    label is not judged here (``target_missing``)."""
    contract = Contract.of(contract)
    default = contract.max_null_ratio
    name = "null_ratio_below_threshold"
    if features.empty:
        return RuleResult(name, False, "no rows to measure", {"Threshold": float(default.value)})
    ratios = features.isna().mean()
    rows, over = [], []
    for column, ratio in ratios.items():
        own = contract.column(str(column))
        rule = own.max_null_ratio if own is not None and own.max_null_ratio is not None else default
        passed = float(ratio) <= float(rule.value)
        rows.append(_row(str(column), "max_null_ratio", float(ratio), float(rule.value), passed, rule.severity))
        if not passed:
            over.append((str(column), float(ratio), float(rule.value)))
    worst_column = str(ratios.idxmax()) if len(ratios) else ""
    worst = float(ratios.max()) if len(ratios) else 0.0
    if not over:
        limit = f" <= {default.value}" if worst_column and contract.column(worst_column) is None else ""
        message = f"largest null ratio {worst:.3f} ({worst_column}){limit}" if worst_column else "no feature columns"
        severity: Severity = "block"
    else:
        limits = {limit for _, _, limit in over}
        if len(limits) == 1:
            message = f"null ratio above {limits.pop()} in: " + ", ".join(f"{c} ({r:.3f})" for c, r, _ in over)
        else:
            message = "null ratio above its limit in: " + ", ".join(f"{c} ({r:.3f} > {lim})" for c, r, lim in over)
        severity = _failure_severity(rows)
        message += _warn_note(severity)
    return RuleResult(
        name,
        not over,
        message,
        {"Max null ratio": worst, "Worst column": worst_column, "Threshold": float(default.value)},
        severity=severity,
        rows=_table_rows(rows),
    )


def _kind_problem(column: str, series: pd.Series, declared: str | None) -> tuple[str | None, str | None]:
    """(problem, warning) of one feature column, given the kind it is declared (or pinned) as."""
    kind, problem = column_kind(series)
    if declared == "datetime":
        if kind == "datetime" or not series.notna().any():
            return None, None
        if kind == "categorical":
            distinct = series.dropna().drop_duplicates()
            bad = distinct[datetimes(distinct).isna().to_numpy()]
            if len(bad):
                return f"is declared datetime but holds values that are not dates, such as {bad.tolist()[:3]}", None
            return None, None
        return f"is declared datetime but holds {problem or kind + ' values'}", None
    if kind == "datetime":
        return (
            f"holds dates and times ({series.dtype}): declare it `{{{column}: datetime}}` under features"
            " (its hour, weekday and month become inputs) or leave it out of the data"
        ), None
    if declared == "categorical":
        # Kept whatever its number of values; numbers and numbers stored as text are categories too.
        if kind in ("numeric", "boolean", "categorical") or (problem and "number" in problem):
            return None, None
        return problem, None
    if kind == "categorical":
        crowded = cardinality_problem(series)
        if crowded:
            return None, (
                f"{crowded} declare it `{{{column}: categorical}}` under features to keep it (its rare"
                " values grouped), or leave it out of the data"
            )
        return None, None
    return problem, None


def feature_types(frame: pd.DataFrame, target: str, kinds: Mapping[str, str] | None = None) -> RuleResult:
    """Every feature column (every column but the target: ``columns_used`` leaves out what the
    schema ignores) is numeric, boolean, categorical text or a declared datetime. ``kinds``: the
    kinds declared in pipelines.yaml or pinned by the production model: a declared categorical is
    kept whatever its number of values, a declared datetime must hold dates. A text column with a
    value on most rows and no declared kind is a warning; which columns must be there is
    ``schema_matches``' concern."""
    kinds = kinds or {}
    features = feature_columns_of(frame, target)
    problems, warnings = [], []
    if not features:
        problems.append("there are no feature columns besides the target")
    for column in features:
        problem, warning = _kind_problem(str(column), frame[column], kinds.get(str(column)))
        if problem:
            problems.append(f"column {column!r} {problem}")
        if warning:
            warnings.append(f"column {column!r} {warning}")
    message = (
        "; ".join(problems + warnings)
        if problems or warnings
        else f"{len(features)} numeric, boolean, categorical or datetime feature columns"
    )
    return RuleResult(
        "feature_columns_valid",
        not problems,
        message,
        {"Feature columns": len(features)},
        warning=bool(warnings) and not problems,
    )


def target_missing(frame: pd.DataFrame, target: str, contract: Contract | float | None = None) -> RuleResult:
    """The share of rows without a label is at most ``quality.target_missing.max_ratio``: such
    rows are dropped before training (and counted), and a day of mostly unlabelled rows says
    something is wrong upstream."""
    rule = Contract.of(contract).target_missing
    name = "target_missing_below_threshold"
    if target not in frame.columns:
        return RuleResult(name, False, f"target column {target!r} is missing", {"Threshold": float(rule.value)})
    if frame.empty:
        return RuleResult(name, False, "no rows to measure", {"Threshold": float(rule.value)})
    missing = int(frame[target].isna().sum())
    share = missing / len(frame)
    passed = share <= float(rule.value)
    message = f"{missing} of {len(frame)} rows ({share:.3f}) have no label" + (
        f" <= {rule.value}" if passed else f", above {rule.value}{_warn_note(rule.severity)}"
    )
    return RuleResult(
        name,
        passed,
        message,
        {"Rows without a label": missing, "Share": float(share), "Threshold": float(rule.value)},
        severity=rule.severity,
        rows=(_row(target, "target_missing", float(share), float(rule.value), passed, rule.severity),),
    )


def declared_rules(frame: pd.DataFrame, contract: Contract) -> RuleResult:
    """The rules pipelines.yaml declares beyond null shares: ``min_rows``, and per column ``min``,
    ``max``, ``allowed``, ``unique``, ``max_categories`` (nulls are the null rule's concern). A
    declared column missing from the day fails its rules."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    if contract.min_rows is not None:
        rule = contract.min_rows
        passed = len(frame) >= rule.value
        rows.append(_row("(day)", "min_rows", len(frame), rule.value, passed, rule.severity))
        if not passed:
            problems.append(f"{len(frame)} rows, fewer than min_rows {rule.value}")
    for column, rules in contract.columns:
        checks = rules.value_rules()
        if not checks:
            continue
        if column not in frame.columns:
            for rule_name, rule in checks:
                rows.append(_row(column, rule_name, "column missing", _limit(rule_name, rule), False, rule.severity))
            problems.append(f"{column!r} is missing")
            continue
        values = frame[column].dropna()
        for rule_name, rule in checks:
            observed, passed, problem = _judge(rule_name, rule.value, values)
            rows.append(_row(column, rule_name, observed, _limit(rule_name, rule), passed, rule.severity))
            if not passed:
                problems.append(f"{column!r} {problem}")
    severity = _failure_severity(rows)
    failed = [r for r in rows if not r["Passed"]]
    message = ("; ".join(problems) + _warn_note(severity)) if failed else f"all {len(rows)} declared rules hold"
    return RuleResult(
        "declared_rules_met",
        not failed,
        message,
        {"Rules": len(rows), "Rules failed": len(failed)},
        severity=severity,
        rows=_table_rows(rows),
    )


def _limit(rule_name: str, rule: Rule) -> Any:
    return {"unique": "unique", "allowed": list(rule.value) if rule_name == "allowed" else rule.value}.get(
        rule_name, rule.value
    )


def _judge(rule_name: str, limit: Any, values: pd.Series) -> tuple[Any, bool, str]:
    """(observed, passed, what is wrong) of one declared rule on a column's non-null values."""
    if rule_name in ("min", "max"):
        numbers = pd.to_numeric(values, errors="coerce") if not pd.api.types.is_numeric_dtype(values.dtype) else values
        if pd.api.types.is_bool_dtype(numbers.dtype):
            numbers = numbers.astype("float64")
        if numbers.isna().any():
            return (
                "not numbers",
                False,
                f"holds values that are not numbers, such as {values[numbers.isna()].tolist()[:3]}",
            )
        if not len(numbers):
            return "no values", True, ""
        if rule_name == "min":
            outside = numbers < limit
            seen = float(numbers.min())
            return seen, not outside.any(), f"has {int(outside.sum())} value(s) below min {limit:g} (lowest {seen:g})"
        outside = numbers > limit
        seen = float(numbers.max())
        return seen, not outside.any(), f"has {int(outside.sum())} value(s) above max {limit:g} (highest {seen:g})"
    if rule_name == "allowed":
        # Judged on the distinct values (each once, weighted by its count): a 1M-row day has a few.
        counts = values.value_counts(sort=False)
        text = category_text(pd.Series(counts.index, dtype=object))
        other = ~text.isin(set(category_text(pd.Series(list(limit), dtype=object)))).to_numpy()
        rows = int(counts.to_numpy()[other].sum())
        found = sorted(text[other])
        observed = f"{rows} row(s) outside" if rows else "all allowed"
        return observed, not rows, f"has {rows} value(s) outside allowed, such as {found[:3]}"
    if rule_name == "unique":
        repeated = values[values.duplicated(keep=False)]
        if not limit:
            return "not required", True, ""
        count = int(repeated.nunique())
        observed = f"{count} repeated value(s)" if count else "unique"
        return observed, count == 0, f"repeats {count} value(s), such as {repeated.drop_duplicates().tolist()[:3]}"
    if rule_name == "max_categories":
        distinct = int(values.nunique())
        return distinct, distinct <= limit, f"has {distinct} distinct values, more than max_categories {limit}"
    raise ValueError(f"unknown rule {rule_name!r}")


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
        return RuleResult(
            name,
            False,
            f"target column {target!r} has {distinct} distinct value(s): nothing to learn",
            {"Distinct targets": distinct},
        )
    return RuleResult(name, True, f"numeric target, {distinct} distinct values", {"Distinct targets": distinct})


def _hashable(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with numbers and booleans as floats: a row hashes the same on a day whose column
    is int and on one where it is float (a null made it so)."""
    converted = {
        c: frame[c].astype("float64")
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c].dtype) or pd.api.types.is_bool_dtype(frame[c].dtype)
    }
    if not converted:
        return frame
    out = frame.copy(deep=False)
    for column, values in converted.items():
        out[column] = values
    return out


# Columns repeated_rows adds to the rows it compares: which landing columns they had, and where they are.
_COLUMNS, _POSITION = "\x00columns", "\x00position"


def repeated_rows(frames: Mapping[str, pd.DataFrame], key: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Per day, a mask of its rows that repeat an earlier row of the window (of an earlier day, or
    earlier in the same day; the first of each stays unmasked): equal in *every* column of the
    landing file (``key`` None: those outside the schema too, so rows that differ only there are
    distinct events), or equal in the ``key`` columns. Rows are hashed first and only rows whose
    hashes repeat are compared, which keeps this cheap on large windows; the comparison is exact."""
    days = sorted(frames)
    if key is not None:
        lacking = [f"{column!r} is not in {day}" for day in days for column in key if column not in frames[day].columns]
        if lacking:
            from ml_platform.errors import DataValidationError

            raise DataValidationError(f"quality.dedupe.key: {'; '.join(lacking[:LISTED_NAMES])}")
        parts = {day: frames[day][list(key)] for day in days}
    else:
        parts = {day: frames[day][sorted(frames[day].columns, key=str)] for day in days}
    # Rows of days with other columns never repeat each other: the column names are part of the hash.
    hashes = []
    for day in days:
        part = parts[day]
        if not len(part.columns):  # rows of no columns hold nothing to repeat (as pandas sees it)
            hashes.append(np.arange(len(part), dtype="uint64") + np.uint64(hash(day) % 2**32) * np.uint64(2**32))
            continue
        names = pd.util.hash_array(np.array(["\x1f".join(map(str, part.columns))], dtype=object))[0]
        hashes.append(pd.util.hash_pandas_object(_hashable(part), index=False).to_numpy() ^ names)
    sizes = [len(parts[day]) for day in days]
    candidates = pd.Series(np.concatenate(hashes) if hashes else np.empty(0, "uint64")).duplicated(keep=False)
    repeated = np.zeros(sum(sizes), dtype=bool)
    if candidates.any():
        offsets = np.cumsum([0, *sizes])
        chosen = []
        for index, day in enumerate(days):
            mask = candidates.to_numpy()[offsets[index] : offsets[index + 1]]
            if mask.any():
                rows = _hashable(parts[day])[mask]
                rows = (
                    rows.set_axis([f"{i}\x1f{c}" for i, c in enumerate(rows.columns)], axis=1)
                    if key is None
                    else rows.set_axis(list(map(str, rows.columns)), axis=1)
                )
                chosen.append(
                    rows.assign(
                        **{
                            _COLUMNS: hash(tuple(map(str, parts[day].columns))),
                            _POSITION: np.flatnonzero(mask) + offsets[index],
                        }
                    )
                )
        together = pd.concat(chosen, ignore_index=True)
        compared = [c for c in together.columns if c != _POSITION]
        repeated[together[_POSITION].to_numpy()[together.duplicated(subset=compared).to_numpy()]] = True
    offsets = np.cumsum([0, *sizes])
    return {day: repeated[offsets[i] : offsets[i + 1]] for i, day in enumerate(days)}


def evaluate(
    frame: pd.DataFrame,
    target: str,
    schema: Schema | None,
    contract: Contract | float | None = None,
    task: str = "classification",
) -> list[RuleResult]:
    """Every rule of the data contract of a task, in a stable order (``rule_names(task, contract)``).
    Nulls and kinds are judged on the columns training will use (``columns_used``); the rules
    declared per column on every column of the day."""
    contract = Contract.of(contract)
    used = frame[columns_used(frame, target, schema)]
    results = [
        not_empty(frame),
        target_present(frame, target),
        schema_matches(frame, target, schema),
        null_ratio(used.drop(columns=[target], errors="ignore"), contract),
        feature_types(used, target, schema.kinds if schema else None),
        target_classes(frame, target) if task == "classification" else numeric_target(frame, target),
        target_missing(frame, target, contract),
    ]
    if contract.declares_values:
        results.append(declared_rules(frame, contract))
    return results


RULE_NAMES = (
    "not_empty",
    "target_column_present",
    "schema_matches",
    "null_ratio_below_threshold",
    "feature_columns_valid",
    "at_least_two_classes",
    "target_missing_below_threshold",
)
REGRESSION_RULE_NAMES = (*RULE_NAMES[:5], "target_is_numeric", RULE_NAMES[6])
DECLARED_RULES = "declared_rules_met"


def rule_names(task: str, contract: Contract | None = None) -> tuple[str, ...]:
    """The raw_data checks of a pipeline: the contract's fixed rules, and ``declared_rules_met`` when
    pipelines.yaml declares rules beyond null shares."""
    names = RULE_NAMES if task == "classification" else REGRESSION_RULE_NAMES
    return (*names, DECLARED_RULES) if contract is not None and contract.declares_values else names


def blocking_failures(results: Sequence[RuleResult]) -> list[str]:
    """The names of the rules that failed with severity ``block`` (a ``warn`` failure lets the day in)."""
    return [r.name for r in results if not r.passed and r.severity == "block"]


RULE_DESCRIPTIONS = {
    "not_empty": "The day's data has at least one row.",
    "target_column_present": "The target column is present.",
    "schema_matches": (
        "The day's columns are the pipeline's schema (pipelines.yaml features, or the production"
        " model's signature): none missing, none of another kind, none unexpected with"
        " schema.extra_columns: fail."
    ),
    "null_ratio_below_threshold": (
        "No feature column has more empty values than its limit (quality.max_null_ratio, or its column's)."
    ),
    "feature_columns_valid": (
        "Every feature column is numeric, boolean, categorical text or a declared datetime (a column of dates"
        " must be declared; a text column with a value per row is a warning)."
    ),
    "at_least_two_classes": "The target has at least two classes.",
    "target_is_numeric": "The target is finite numbers with at least two distinct values.",
    "target_missing_below_threshold": (
        "The share of rows without a label is within quality.target_missing.max_ratio (those rows are dropped"
        " before training)."
    ),
    DECLARED_RULES: (
        "The rules pipelines.yaml declares under quality: hold: min_rows, and per column min, max, allowed,"
        " unique, max_categories."
    ),
}
