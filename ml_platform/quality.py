"""The data contract as plain pandas rules, shared by the raw_data checks and training_data.

Each rule returns a ``RuleResult``: whether it passed, one line saying why, the severity of a
failure (``block`` keeps the day out of training, ``warn`` does not), numbers for the UI and, where
a rule judges columns one by one, a row per column and rule (observed, limit, passed). What a day
is judged against is the pipeline's ``Contract`` (pipelines.yaml ``quality:``) and its ``Schema``:
the columns a day must have, declared in pipelines.yaml (``features``) or pinned by the production
model's signature (ml_platform.signature).

The rules are vectorized pandas, measured once per column: every rule's observed value is in the
check's table whether it passed or not (docs/design.md says why this is not pandera).
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
# HIGH_CARDINALITY_SHARE of its rows, looks like an identifier or free text rather than a category:
# a warning names it (declare it categorical to keep it, with a bounded encoding).
HIGH_CARDINALITY_VALUES = 50
HIGH_CARDINALITY_SHARE = 0.5
# Separators that make a CSV parse as one column when they stand where commas should.
OTHER_CSV_SEPARATORS = (";", "\t", "|")
# Text that is a date or a time of day (ISO 8601, or day/month/year with / or .): a column of such
# text is a datetime column, to be declared as one.
_DATE_TEXT = re.compile(
    r"^\s*(\d{4}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?"
    r"|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}( \d{1,2}:\d{2}(:\d{2})?)?)\s*$"
)
# Distinct values of a text column looked at to tell dates, and the share of them that must be dates.
_DATE_SAMPLE = 200
_DATE_SHARE = 0.9
# Rows of a rule's table in the UI (the failed ones first).
TABLE_ROWS = 200

Severity = Literal["block", "warn"]


@dataclass(frozen=True)
class RuleResult:
    name: str
    passed: bool
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)
    warning: bool = False  # passed, but with something a person should see (logged as a warning)
    # A failure's severity: "block" (any of its failing rules blocks) or "warn" (all of them warn).
    severity: Severity = "block"
    # One row per column and rule: Column, Rule, Observed, Limit, Passed, Severity (the check's table).
    rows: tuple[dict[str, Any], ...] = ()


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
    return [c for c in dict.fromkeys(schema.features) if c in present] + ([target] if target in present else [])


def _normalized(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def likely_renames(
    missing: Sequence[str], extra: Sequence[str], kinds: Mapping[str, str], extra_kinds: Mapping[str, str]
) -> list[tuple[str, str]]:
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
        return RuleResult(name, True, "no schema yet: the first model's signature pins it", {"Schema": "none yet"})
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
            if got in VALUE_KINDS and not kind_accepts(want, got):
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
    metadata = {
        "Schema": schema.source,
        "Feature columns": len(schema.features),
        "Missing columns": len(missing),
        "Unexpected columns": len(extra),
        "Re-kinded columns": len(rekinded),
    }
    if not schema.enforced:
        message = (
            f"differs from {schema.source}: {'; '.join(problems)} (schema.evolve: true lets the"
            " next model take the data's columns)"
            if problems
            else f"the {len(schema.features)} feature columns of {schema.source}"
        )
        return RuleResult(name, True, message, metadata, warning=bool(problems))
    if missing or rekinded or (extra and schema.extra_columns == "fail"):
        hint = " (schema.extra_columns: fail)" if extra and not missing and not rekinded else ""
        return RuleResult(
            name, False, f"{'; '.join(problems)}{hint}; expected the columns of {schema.source}", metadata
        )
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
        f" … and {len(problems) - LISTED_NAMES} more columns" if len(problems) > LISTED_NAMES else ""
    )
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


def _is_boolean(series: pd.Series) -> bool:
    """A bool dtype, or text-free values that are all True / False (booleans with nulls, as parquet
    and pandas give them: an object column of True, False and None)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return True
    if series.dtype != object:
        return False
    values = series.dropna()
    return bool(len(values)) and bool(values.map(lambda v: isinstance(v, (bool, np.bool_))).all())


def _looks_like_dates(distinct: pd.Series) -> bool:
    """Whether text values are dates or times (a sample of the distinct values is looked at)."""
    sample = distinct.iloc[:_DATE_SAMPLE]
    if not len(sample):
        return False
    return float(sample.map(lambda v: bool(_DATE_TEXT.match(v))).mean()) >= _DATE_SHARE


def column_kind(series: pd.Series) -> tuple[str, str | None]:
    """('numeric' | 'boolean' | 'categorical' | 'datetime' | 'invalid', problem) for one feature
    column: what it holds, and why it is invalid."""
    dtype = series.dtype
    if _is_boolean(series):
        return "boolean", None
    if pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_float_dtype(dtype):
            # scikit-learn refuses infinity without naming the column: say which one here.
            infinite = int(np.isinf(series.to_numpy(dtype="float64", na_value=np.nan)).sum())
            if infinite:
                return "invalid", f"holds {infinite} infinite value(s); replace them or leave them empty"
        return "numeric", None
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical", None
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime", None
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "invalid", f"has type {dtype}; convert durations to numbers first"
    if not pd.api.types.is_string_dtype(dtype):
        return "invalid", f"has unsupported type {dtype}"
    counts, distinct = _distinct(series)
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
                return "invalid", (f"is {share:.0%} numbers with non-numeric values such as {bad}")
            return "invalid", "holds numbers stored as text"
        if _looks_like_dates(distinct):
            return "datetime", None
    return "categorical", None


def _distinct(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(count of each distinct non-null value, the distinct values): the checks look at each
    distinct value once (weighted by its count), so a category column of 50k rows costs a handful."""
    values = series.dropna()
    try:
        counts = values.value_counts(sort=False)
    except TypeError:  # unhashable values (lists, dicts): check them one by one
        counts = pd.Series(1, index=pd.Index(values.to_list(), dtype=object))
    return counts, counts.index.to_series(index=range(len(counts)))


def cardinality_problem(series: pd.Series) -> str | None:
    """Why a text column looks too fine-grained to be a category (an id, free text), or None."""
    values = series.dropna()
    distinct = int(values.nunique())
    if distinct > HIGH_CARDINALITY_VALUES and distinct > HIGH_CARDINALITY_SHARE * len(values):
        return f"has {distinct} distinct values in {len(values)} rows: an identifier or free text?"
    return None


def category_text(values: pd.Series) -> pd.Series:
    """A categorical column's values as the text the model and the signature compare: text as it
    is, whole numbers without a fraction (``7`` and ``7.0`` are the category ``"7"``), booleans as
    ``True`` / ``False``; missing values stay missing (NaN)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(object).map(str).where(values.notna(), np.nan)
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype(object).map(lambda v: str(int(v)), na_action="ignore").astype(object)
    if pd.api.types.is_float_dtype(values.dtype):
        return values.astype(object).map(_number_text, na_action="ignore").astype(object)
    present = values.notna()
    out = values.astype(object)
    if present.all() and (pd.api.types.is_string_dtype(values.dtype) and not values.dtype == object):
        return out
    return out.map(_value_text, na_action="ignore").where(present, np.nan).astype(object)


def datetimes(series: pd.Series) -> pd.Series:
    """A column as datetimes (UTC); what cannot be read as one is missing (NaT). ISO 8601 text is
    read at once; other text value by value."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
    text = series.astype(object).where(series.notna(), None)
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    if (parsed.isna() & series.notna()).any():
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    return parsed


def _number_text(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _number_text(value)
    return str(value)


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


VALUE_KINDS = ("numeric", "boolean", "categorical", "datetime")
# What a column of one kind may hold when the schema says another: a declared categorical takes
# numbers and booleans too (a store id), a declared datetime takes text (its dates are checked by
# feature_columns_valid).
ACCEPTED_KINDS = {"categorical": {"numeric", "boolean"}, "datetime": {"categorical"}}


def kind_accepts(declared: str, got: str) -> bool:
    return got == declared or got in ACCEPTED_KINDS.get(declared, ())


def value_kind(series: pd.Series) -> str:
    """What a column holds, as far as concatenating days goes: 'boolean', 'numeric',
    'categorical', 'datetime', or its dtype."""
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
        f"column {column!r} is " + " but ".join(f"{kind} on {', '.join(days)}" for kind, days in kinds.items())
        for column, kinds in drifting.items()
    )
    return RuleResult(
        "consistent_schema",
        not drifting,
        message or f"every column has one kind on all {len(frames)} days",
        {"Drifting columns": len(drifting)},
    )


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


# -- a contract suggested from the data (`ml-platform contract`) -----------------------------------
# At most this many distinct values make `allowed`; more make `max_categories`.
SUGGESTED_ALLOWED_VALUES = 30
# Headroom over what was seen: null shares and label shares get this much more (then rounded up
# to two decimals); a per-day category count this factor.
SUGGESTED_NULL_MARGIN = 0.05
SUGGESTED_CATEGORY_FACTOR = 1.5


def _round_up(share: float) -> float:
    return min(1.0, float(np.ceil(round(share * 100, 6)) / 100))


def _outward(value: float, up: bool) -> float:
    """``value`` in six significant digits, rounded away from the range's inside when it has more."""
    if value == 0 or not np.isfinite(value):
        return float(value)
    tidy = float(f"{value:.6g}")
    if tidy == value or (tidy > value if up else tidy < value):
        return tidy
    scale = 10.0 ** (int(np.floor(np.log10(abs(value)))) - 5)
    return float(f"{(np.ceil if up else np.floor)(value / scale) * scale:.6g}")


def suggest_contract(
    frames: Mapping[str, pd.DataFrame], target: str, task: str, kinds: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """A ``quality:`` mapping that the days ``frames`` meet (as TFX's SchemaGen infers a schema),
    and a note per column worth a comment: what was seen, each with some headroom: null shares and
    the unlabelled share a little above the largest day's, ranges as seen, the values of a
    categorical column when there are few (else a bound on their number a day), ``unique`` for a
    text or integer column that never repeats within a day, ``min_rows`` half the smallest day."""
    kinds = dict(kinds or {})
    days = [frames[day] for day in sorted(frames)]
    contract: dict[str, Any] = {"max_null_ratio": constants.DEFAULT_MAX_NULL_RATIO}
    notes: dict[str, str] = {}
    if not days:
        return contract, notes
    contract["min_rows"] = max(1, min(len(day) for day in days) // 2)
    missing = max((float(day[target].isna().mean()) if target in day and len(day) else 0.0) for day in days)
    contract["target_missing"] = {
        "max_ratio": max(
            constants.DEFAULT_MAX_TARGET_MISSING, _round_up(missing + SUGGESTED_NULL_MARGIN) if missing else 0.0
        )
    }
    columns: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(str(c) for day in days for c in day.columns):
        rules, note = _suggested_rules(
            name, [day[name] for day in days if name in day.columns], target, task, kinds.get(name)
        )
        if rules:
            columns[name] = rules
        if note:
            notes[name] = note
    if columns:
        contract["columns"] = columns
    return contract, notes


def _suggested_rules(
    name: str, present: list[pd.Series], target: str, task: str, declared: str | None
) -> tuple[dict[str, Any], str | None]:
    """(the rules one column's days meet, a note worth a comment) for ``suggest_contract``."""
    together = pd.concat(present, ignore_index=True)
    rules: dict[str, Any] = {}
    note = None
    kind = declared or value_kind(together)
    if name != target:
        worst = max((float(series.isna().mean()) for series in present if len(series)), default=0.0)
        if worst > constants.DEFAULT_MAX_NULL_RATIO:
            rules["max_null_ratio"] = _round_up(worst + SUGGESTED_NULL_MARGIN)
            note = f"up to {worst:.0%} empty on a day"
    values = together.dropna()
    if kind == "numeric" and len(values) and not (name == target and task == "classification"):
        numbers = values.to_numpy(dtype="float64")
        rules["min"], rules["max"] = _outward(float(numbers.min()), False), _outward(float(numbers.max()), True)
        if pd.api.types.is_integer_dtype(together.dtype):
            rules["min"], rules["max"] = int(rules["min"]), int(rules["max"])
    elif kind in ("categorical", "numeric") and len(values):
        distinct = sorted(set(category_text(values)))
        per_day = max(int(series.dropna().nunique()) for series in present)
        if len(distinct) <= SUGGESTED_ALLOWED_VALUES:
            rules["allowed"] = [_plain_value(v, values) for v in distinct]
        elif name != target:
            rules["max_categories"] = int(np.ceil(per_day * SUGGESTED_CATEGORY_FACTOR))
            if cardinality_problem(present[-1]) and declared != "categorical":
                note = (
                    f"{per_day} values a day: declare it `{{{name}: categorical}}` under features to keep it,"
                    " or leave it out of the data"
                )
    elif kind == "datetime":
        note = "dates and times: declare it `{" + name + ": datetime}` under features to use it"
    if name != target and kind in ("categorical", "numeric") and len(values) and _unique_every_day(present):
        rules = {k: v for k, v in rules.items() if k not in ("min", "max", "max_categories")}
        rules["unique"] = True
        note = "no value repeats within a day: an id? (`quality.dedupe: {key: [" + name + "]}`)"
    return rules, note


def _plain_value(text: str, values: pd.Series) -> Any:
    """A category as YAML should write it: a number for a column of numbers, else the text."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        number = float(text)
        return int(number) if number.is_integer() else number
    if pd.api.types.is_bool_dtype(values.dtype):
        return text == "True"
    return text


def _unique_every_day(present: Sequence[pd.Series]) -> bool:
    """A text or integer column whose values never repeat within a day (of at least two values)."""
    for series in present:
        if not (pd.api.types.is_integer_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)):
            return False
        values = series.dropna()
        if len(values) < 2 or values.duplicated().any():
            return False
    return True
