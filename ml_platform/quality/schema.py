"""The schema: the feature columns a pipeline's data must have, with their kinds, declared in
pipelines.yaml (``features``) or pinned by the production model's signature (ml_platform.signature),
and the rules that compare a day's columns with it, and the days of a window with each other."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from ml_platform.quality.kinds import VALUE_KINDS, kind_accepts, value_kind
from ml_platform.quality.results import LISTED_NAMES, RuleResult, names_text

ExtraColumns = Literal["ignore", "fail"]


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


def _rekinded(frame: pd.DataFrame, schema: Schema) -> list[tuple[str, str, str]]:
    """(column, the schema's kind, the day's kind) of each feature whose values changed kind."""
    found = []
    for column in schema.features:
        want = schema.kinds.get(column)
        if column in frame.columns and want and frame[column].notna().any():
            got = value_kind(frame[column])
            # A column of no valid kind (garbage in numbers, dates) is feature_columns_valid's to name.
            if got in VALUE_KINDS and not kind_accepts(want, got):
                found.append((column, want, got))
    return found


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
    rekinded = _rekinded(frame, schema)
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
