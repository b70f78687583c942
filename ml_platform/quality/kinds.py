"""Column kinds: what a column holds (numbers, booleans, categories, dates, or nothing usable),
its categories as text and its dates as datetimes. The bottom of ``ml_platform.quality``: the
schema, the rules and the suggestion read kinds from here, and it imports none of them."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ml_platform import constants

# A text column with more distinct values than HIGH_CARDINALITY_VALUES, that are also more than
# HIGH_CARDINALITY_SHARE of its rows, looks like an identifier or free text rather than a category:
# a warning names it (declare it categorical to keep it, with a bounded encoding).
HIGH_CARDINALITY_VALUES = 50
HIGH_CARDINALITY_SHARE = 0.5
# Text that is a date or a time of day (ISO 8601, or day/month/year with / or .): a column of such
# text is a datetime column, to be declared as one.
_DATE_TEXT = re.compile(
    r"^\s*(\d{4}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?"
    r"|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}( \d{1,2}:\d{2}(:\d{2})?)?)\s*$"
)
# Distinct values of a text column looked at to tell dates, and the share of them that must be dates.
_DATE_SAMPLE = 200
_DATE_SHARE = 0.9


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
        return _numbers_kind(series)
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical", None
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime", None
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "invalid", f"has type {dtype}; convert durations to numbers first"
    if not pd.api.types.is_string_dtype(dtype):
        return "invalid", f"has unsupported type {dtype}"
    return _text_kind(series)


def _numbers_kind(series: pd.Series) -> tuple[str, str | None]:
    if pd.api.types.is_float_dtype(series.dtype):
        # scikit-learn refuses infinity without naming the column: say which one here.
        infinite = int(np.isinf(series.to_numpy(dtype="float64", na_value=np.nan)).sum())
        if infinite:
            return "invalid", f"holds {infinite} infinite value(s); replace them or leave them empty"
    return "numeric", None


def _text_kind(series: pd.Series) -> tuple[str, str | None]:
    """The kind of an object column: text that is categories, dates, or numbers in disguise; or
    values that are not text at all."""
    counts, distinct = _distinct(series)
    if not len(distinct):
        return "categorical", None
    if not distinct.map(lambda v: isinstance(v, str)).all():
        kinds = sorted({type(v).__name__ for v in distinct})
        if len(kinds) == 1:
            return "invalid", f"holds {kinds[0]} values, not numbers or text"
        return "invalid", f"mixes Python types ({', '.join(kinds)})"
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
