"""A contract suggested from the data (``ml-platform contract``): a ``quality:`` block that the
ingested days meet, as TFX's SchemaGen infers a schema, and its text to paste into pipelines.yaml.

Days are a window of the year, and what a window shows of the values may be one season's: December's
``month`` is 12 all month, a summer's temperatures are not January's, a product sold only in winter
is not in a summer's categories, and a holiday's rows are not a quiet week's. So what is measured
from the days' values (a numeric range, the allowed values, the categories a day, the rows a day)
blocks only when the days span a year (``YEAR_DAYS`` from the first to the last); from a shorter
window the same rule is suggested with ``severity: warn``: a day outside it is named in the check's
table and still trains. Ranges get headroom either way (``SUGGESTED_RANGE_MARGIN`` of what was seen,
on each side, without crossing zero where no value did). What a season does not change still
blocks: a null share or an unlabelled share above the defaults (a suggested one is never below
them), ``unique`` for a column that never repeats within a day, and a closed set of values (two that
are a yes / no pair: no season brings a third).

A column named as a calendar field (``month``, ``day_of_week``, ``pickup_hour``: ``CALENDAR_FIELDS``)
whose values are whole numbers inside that field's range gets the calendar's whole range, blocking,
whatever the window saw: the calendar is known, and a month of 13 is broken data, while a month of 1
in a December window is January. Name and values must both agree (a column ``month`` of 0..500 is
not a month); a day of the week is 0..6 when a 0 was seen, 1..7 when a 7 was, else 0..7 (both
conventions). A calendar field not recognized by its name is a numeric column like any other: a
warning from a short window.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ml_platform import constants
from ml_platform.quality.kinds import cardinality_problem, category_text, value_kind
from ml_platform.quality.results import Severity

# At most this many distinct values make `allowed`; more make `max_categories`.
SUGGESTED_ALLOWED_VALUES = 30
# Headroom over what was seen: null shares and label shares get this much more (then rounded up
# to two decimals); a per-day category count this factor; a numeric range this share of its width
# on each side.
SUGGESTED_NULL_MARGIN = 0.05
SUGGESTED_CATEGORY_FACTOR = 1.5
SUGGESTED_RANGE_MARGIN = 0.1
# Days from the first to the last (both counted) that make what they show of the values a year's.
YEAR_DAYS = 365
# Calendar fields by the words a column's name ends in (lower case, without separators): the
# field's whole range. A day of the week has two conventions (0..6 and 1..7): see _calendar_range.
CALENDAR_FIELDS: dict[str, tuple[str, int, int]] = {
    "month": ("month", 1, 12),
    "quarter": ("quarter", 1, 4),
    "week": ("week of the year", 1, 53),
    "weekofyear": ("week of the year", 1, 53),
    "dayofyear": ("day of the year", 1, 366),
    "day": ("day of the month", 1, 31),
    "dayofmonth": ("day of the month", 1, 31),
    "dayofweek": ("day of the week", 0, 7),
    "weekday": ("day of the week", 0, 7),
    "dow": ("day of the week", 0, 7),
    "hour": ("hour", 0, 23),
    "hourofday": ("hour", 0, 23),
    "minute": ("minute", 0, 59),
}
# Two values that are all a column can hold: a suggested `allowed` of them blocks from any window.
CLOSED_VALUES = ({"true", "false"}, {"0", "1"}, {"yes", "no"}, {"y", "n"})


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


def days_spanned(days: Sequence[str]) -> int:
    """Calendar days from the first to the last of ``days`` (YYYY-MM-DD), both counted; the number
    of days when they are not dates."""
    if not days:
        return 0
    try:
        first, last = dt.date.fromisoformat(min(days)), dt.date.fromisoformat(max(days))
    except ValueError:
        return len(days)
    return (last - first).days + 1


def _rule(value: Any, severity: Severity) -> Any:
    """A rule as pipelines.yaml writes it: plainly when it blocks, else with its severity."""
    return value if severity == "block" else {"value": value, "severity": severity}


def suggest_contract(
    frames: Mapping[str, pd.DataFrame], target: str, task: str, kinds: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """A ``quality:`` mapping that the days ``frames`` ({YYYY-MM-DD: frame}) meet, and a note per
    column worth a comment: null shares and the unlabelled share a little above the largest day's,
    ranges as seen with headroom (a calendar field's whole range), the values of a categorical
    column when there are few (else a bound on their number a day), ``unique`` for a text or
    integer column that never repeats within a day, ``min_rows`` half the smallest day. What is
    measured from the values warns unless the days span a year (the module's docstring says why)."""
    kinds = dict(kinds or {})
    days = [frames[day] for day in sorted(frames)]
    contract: dict[str, Any] = {"max_null_ratio": constants.DEFAULT_MAX_NULL_RATIO}
    notes: dict[str, str] = {}
    if not days:
        return contract, notes
    measured: Severity = "block" if days_spanned(list(frames)) >= YEAR_DAYS else "warn"
    contract["min_rows"] = _rule(max(1, min(len(day) for day in days) // 2), measured)
    missing = max((float(day[target].isna().mean()) if target in day and len(day) else 0.0) for day in days)
    contract["target_missing"] = {
        "max_ratio": max(
            constants.DEFAULT_MAX_TARGET_MISSING, _round_up(missing + SUGGESTED_NULL_MARGIN) if missing else 0.0
        )
    }
    columns: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(str(c) for day in days for c in day.columns):
        present = [day[name] for day in days if name in day.columns]
        rules, note = _suggested_rules(name, present, target, task, kinds.get(name), measured)
        if rules:
            columns[name] = rules
        if note:
            notes[name] = note
    if columns:
        contract["columns"] = columns
    return contract, notes


def _suggested_rules(
    name: str, present: list[pd.Series], target: str, task: str, declared: str | None, measured: Severity
) -> tuple[dict[str, Any], str | None]:
    """(the rules one column's days meet, a note worth a comment) for ``suggest_contract``;
    ``measured``: the severity of what is measured from the values."""
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
    calendar = _calendar_range(name, values) if name != target and kind in ("categorical", "numeric") else None
    if calendar is not None:
        field, low, high = calendar
        if kind == "numeric":
            rules["min"], rules["max"] = low, high
        else:
            rules["allowed"] = list(range(low, high + 1))
        note = f"a {field}: the calendar's {low}..{high}, whatever the days held"
    elif kind == "numeric" and len(values) and not (name == target and task == "classification"):
        rules.update(_suggested_range(values, pd.api.types.is_integer_dtype(together.dtype), measured))
    elif kind in ("categorical", "numeric") and len(values):
        categories, crowded = _suggested_categories(name, present, values, target, measured)
        rules.update(categories)
        if crowded and declared != "categorical":
            note = crowded
    elif kind == "datetime":
        note = "dates and times: declare it `{" + name + ": datetime}` under features to use it"
    if name != target and kind in ("categorical", "numeric") and len(values) and _unique_every_day(present):
        rules = {k: v for k, v in rules.items() if k not in ("min", "max", "max_categories")}
        rules["unique"] = True
        note = "no value repeats within a day: an id? (`quality.dedupe: {key: [" + name + "]}`)"
    return rules, note


def _suggested_range(values: pd.Series, integers: bool, measured: Severity) -> dict[str, Any]:
    """``min`` and ``max`` around the finite values seen, ``SUGGESTED_RANGE_MARGIN`` of their width
    further out on each side (not past zero where no value was), rounded outward."""
    numbers = values.to_numpy(dtype="float64")
    numbers = numbers[np.isfinite(numbers)]
    if not len(numbers):
        return {}
    low, high = float(numbers.min()), float(numbers.max())
    margin = SUGGESTED_RANGE_MARGIN * ((high - low) or abs(high) or 1.0)
    wide_low = low - margin if low < 0 or low - margin >= 0 else 0.0
    wide_high = high + margin if high > 0 or high + margin <= 0 else 0.0
    bounds: list[float | int] = [_outward(wide_low, False), _outward(wide_high, True)]
    if integers:
        bounds = [int(np.floor(bounds[0])), int(np.ceil(bounds[1]))]
    return {"min": _rule(bounds[0], measured), "max": _rule(bounds[1], measured)}


def _suggested_categories(
    name: str, present: list[pd.Series], values: pd.Series, target: str, measured: Severity
) -> tuple[dict[str, Any], str | None]:
    """(``allowed`` for up to SUGGESTED_ALLOWED_VALUES values, blocking when they are a closed pair,
    else ``max_categories``; a note when there are too many to be categories)."""
    distinct = sorted(set(category_text(values)))
    if len(distinct) <= SUGGESTED_ALLOWED_VALUES:
        closed = {value.lower() for value in distinct} in CLOSED_VALUES
        allowed = [_plain_value(v, values) for v in distinct]
        return {"allowed": _rule(allowed, "block" if closed else measured)}, None
    if name == target:
        return {}, None
    per_day = max(int(series.dropna().nunique()) for series in present)
    rules = {"max_categories": _rule(int(np.ceil(per_day * SUGGESTED_CATEGORY_FACTOR)), measured)}
    if cardinality_problem(present[-1]):
        return rules, (
            f"{per_day} values a day: declare it `{{{name}: categorical}}` under features to keep it,"
            " or leave it out of the data"
        )
    return rules, None


def _calendar_range(name: str, values: pd.Series) -> tuple[str, int, int] | None:
    """(field, first, last) when ``name`` ends in a calendar field's words (CALENDAR_FIELDS) and
    every value is a whole number inside that field's range; None otherwise."""
    if not len(values) or pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
        return None
    words = re.findall(r"[a-z]+|\d+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower())
    if not words or words[0] in ("is", "has"):
        return None
    endings = ["".join(words[-n:]) for n in (3, 2, 1) if n <= len(words)]
    field, low, high = next((CALENDAR_FIELDS[end] for end in endings if end in CALENDAR_FIELDS), ("", 0, -1))
    if not field:
        return None
    numbers = values.to_numpy(dtype="float64")
    if not (np.isfinite(numbers).all() and (numbers == np.round(numbers)).all()):
        return None
    seen_low, seen_high = int(numbers.min()), int(numbers.max())
    if seen_low < low or seen_high > high:
        return None
    if field == "day of the week":
        low, high = (0, 6) if seen_low == 0 else (1, 7) if seen_high == 7 else (0, 7)
    return field, low, high


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


# -- the block to paste ------------------------------------------------------------------------------


def contract_yaml(
    frames: Mapping[str, pd.DataFrame],
    target: str,
    task: str,
    kinds: Mapping[str, str] | None = None,
    *,
    pipeline: str,
    ingested: int,
    indent: int = 4,
) -> str:
    """The ``quality:`` block ``suggest_contract`` makes of ``frames``, indented by ``indent`` spaces
    to paste into the entry of ``pipeline``, under a comment naming the days it read (of
    ``ingested`` in all), the days they span and their rows, and what a shorter span than a year
    makes warnings. It loads as pipelines.yaml's ``quality:`` and every day of ``frames`` meets it."""
    contract, notes = suggest_contract(frames, target, task, kinds)
    head = " " * indent
    inner = head + "  "
    lines = [*(f"{head}# {line}" for line in _header(frames, pipeline, ingested)), f"{head}quality:"]
    for field in ("max_null_ratio", "min_rows", "target_missing"):
        value = contract.get(field)
        if value is not None:
            lines.append(f"{inner}{field}: {_flow(value)}")
    if contract.get("columns"):
        lines.append(f"{inner}columns:")
        for name, rules in contract["columns"].items():
            note = f"   # {notes[name]}" if name in notes else ""
            lines.append(f"{inner}  {_flow_key(name)}: {_flow(rules)}{note}")
    for name, note in notes.items():
        if name not in contract.get("columns", {}):
            lines.append(f"{inner}# {name}: {note}")
    lines.append(
        f"{inner}# dedupe: true (the default) drops rows equal in every landing column; {{key: [event_id]}} or false"
    )
    return "\n".join(lines)


def _header(frames: Mapping[str, pd.DataFrame], pipeline: str, ingested: int) -> list[str]:
    """The comment above the block: which days, their span and rows, and what a short span does."""
    days = sorted(frames)
    span = days_spanned(days)
    rows = sum(len(frame) for frame in frames.values())
    which = (
        f"all its {len(days)} ingested days"
        if len(days) >= ingested
        else f"its {len(days)} newest ingested days (of {ingested})"
    )
    lines = [
        f"The data contract of {pipeline}, as {which} meet it",
        f"({days[0]} … {days[-1]}: {span} days spanned, {rows} rows). Paste it into its entry of pipelines.yaml",
        "and tighten what you know better (docs/assets-and-checks.md, the data contract).",
    ]
    if span < YEAR_DAYS:
        lines += [
            f"Less than a year ({span} of {YEAR_DAYS} days): the ranges, values and counts these days show may",
            "be one season's, so they warn (severity: warn) and a day outside them still trains; suggest",
            "again from a year of days (--days left out reads every ingested day) to make them block.",
        ]
    return lines


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
    return text.removesuffix("\n...\n").strip()  # a scalar is dumped as a document: no end marker


def _flow_key(name: str) -> str:
    return _flow({name: 0}).strip("{}").rsplit(":", 1)[0]
