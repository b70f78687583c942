"""A version's rows compiled, free of Dagster: the signature check (``signature.check_rows``) and the
table encoding (``encoding.TableEncoder``) of one version turned once into a plan that takes JSON
rows (records, or ``{"columns", "data"}``) to the encoded NumPy matrix its estimator reads, and
the same report, without pandas.

The plan takes the values requests usually hold: numbers and missing values in numeric columns,
text (and, for a category learnt from numbers, numbers and booleans) in categorical columns, booleans
and missing values in boolean columns. Whatever else a request holds (numeric text, a boolean given
as 0/1 or "yes", a word in a numeric column, an infinite or absurd number, a missing or doubled
column, no rows) is not the plan's to judge: it raises ``Unplanned`` and the caller takes the pandas
path, whose answer or refusal is the contract. A model with a declared datetime column or its own
feature step has no plan (``NoPlan``, with why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.encoding import MISSING, OTHER, TableEncoder
from ml_platform.signature import OUT_OF_RANGE_FACTOR, FeatureSpec, InputReport, Signature, of_numbers

# Integers beyond this lose digits as float64, which pandas turns them into beside a missing value.
_EXACT_INT = 2**53
_NUMBER_TYPES = frozenset({int, float, type(None)})
_BOOLEAN_TYPES = frozenset({bool, type(None)})
_TEXT_TYPES = frozenset({str, type(None)})
_CATEGORY_OF_NUMBERS_TYPES = frozenset({str, bool, int, float, type(None)})


class Unplanned(Exception):
    """Rows the plan leaves to the pandas path (which answers them or refuses them with its sentence)."""


class NoPlan(Exception):
    """A model whose rows cannot be planned (why, in one sentence)."""


@dataclass
class PlannedRows:
    """Rows the plan let through: the checked values (as ``check_rows`` gives them: the numeric
    columns as one block, the others one array each), the encoded matrix the estimator reads, and
    the report."""

    names: list[str]  # the signature's columns, in order
    numbers: np.ndarray  # the numeric columns' checked values, (rows, len(number_names))
    number_names: list[str]
    others: dict[str, np.ndarray]  # every other column's checked values
    matrix: np.ndarray
    report: InputReport

    def __len__(self) -> int:
        return self.report.rows

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """Each column's checked values, in the signature's order."""
        found = {**{n: self.numbers[:, j] for j, n in enumerate(self.number_names)}, **self.others}
        return {name: found[name] for name in self.names}

    def frame(self) -> pd.DataFrame:
        """The checked rows as ``check_rows`` returns them (for the prediction log)."""
        return pd.DataFrame(self.columns)


@dataclass(frozen=True)
class _Range:
    """A numeric column's training range, and how far beyond it a value is absurd (refused)."""

    low: float
    high: float
    reach: float


@dataclass(frozen=True)
class _Column:
    """How one feature column is checked and where it goes in the matrix."""

    spec: FeatureSpec
    kind: str
    number: int | None = None  # its column among the numbers (numeric, boolean)
    category: int | None = None  # its place among the categorical columns
    known: frozenset[str] | None = None  # the signature's categories (None: too many to record)
    of_numbers: bool = False  # a category learnt from numbers: numbers and booleans are its text too
    bounds: _Range | None = None


class RowPlan:
    """The plan of one version's rows (see the module's docstring): ``rows(body_rows)`` gives
    ``PlannedRows`` or raises ``Unplanned``."""

    def __init__(self, signature: Signature, encoder: TableEncoder):
        kinds = getattr(encoder, "kinds_", None)
        if kinds is None:
            raise NoPlan("its encoder is not a fitted TableEncoder")
        if list(kinds) != signature.columns:
            raise NoPlan("its encoder does not take the signature's columns in their order")
        wrong = [f.name for f in signature.features if f.kind != kinds[f.name]]
        if wrong:
            raise NoPlan(f"the signature and the encoder disagree on the kind of {wrong[0]!r}")
        if "datetime" in kinds.values():
            raise NoPlan("a datetime column is read by pandas")
        self.signature = signature
        self.native = bool(encoder.native)
        numbers = [c for c, k in kinds.items() if k in ("numeric", "boolean")]
        categories = list(encoder.categorical_)
        self.columns = [_column(f, kinds[f.name], numbers, categories) for f in signature.features]
        self.names = signature.columns
        self.wanted = frozenset(self.names)
        self.n_numbers = len(numbers)
        self.numeric = _NumericBlock([c for c in self.columns if c.kind == "numeric"])
        self.numbers_are_block = self.numeric.positions == list(range(self.n_numbers))  # no booleans among them
        self.others = [c for c in self.columns if c.kind != "numeric"]
        self.encoding = _NativeCodes(encoder) if self.native else _OneHot(encoder, self.n_numbers)

    @property
    def width(self) -> int:
        return self.encoding.width

    # -- rows --------------------------------------------------------------------------------------
    def rows(self, rows: Any) -> PlannedRows:
        """The rows checked and encoded; ``Unplanned`` for what the pandas path must judge."""
        given, values = _columns_of(rows)
        count = len(next(iter(values.values()))) if values else 0
        if count == 0 or any(name not in values for name in self.names):
            raise Unplanned  # no rows, or a column missing: the pandas path says which
        report = InputReport(rows=count, dropped_columns=[c for c in given if c not in self.wanted])
        block = self.numeric.check(values, count, report)
        numbers = self._numbers_of(block)
        checked: dict[str, np.ndarray] = {}
        codes: list[np.ndarray] = []
        for column in self.others:
            found = values[column.spec.name]
            if column.kind == "categorical":
                checked[column.spec.name], text = _categorical(column, found, report)
                codes.append(self.encoding.codes(column.category, text))
            else:
                checked[column.spec.name], numbers[:, column.number] = _boolean(column, found, report)
        matrix = self.encoding.matrix(numbers, codes)
        return PlannedRows(self.names, block, self.numeric.names, checked, matrix, report)

    def _numbers_of(self, block: np.ndarray) -> np.ndarray:
        """The encoder's number columns with the numeric block in place (the booleans' filled after):
        a copy, as the encoding imputes and scales in place and the log keeps the block."""
        if self.numbers_are_block:
            return block.copy()
        numbers = np.empty((len(block), self.n_numbers))
        numbers[:, self.numeric.positions] = block
        return numbers

    def encoded(self, planned: PlannedRows) -> PlannedRows:
        """Rows another plan of the same signature checked, encoded by this plan's encoder: a rollout's
        candidate predicts production's checked rows without checking them again."""
        numbers = self._numbers_of(planned.numbers)
        codes: list[np.ndarray] = []
        for column in self.others:
            found = planned.others[column.spec.name]
            if column.kind == "categorical":
                codes.append(self.encoding.codes(column.category, [t if type(t) is str else None for t in found]))
            else:
                numbers[:, column.number] = np.array([math.nan if v != v else float(v) for v in found.tolist()])
        matrix = self.encoding.matrix(numbers, codes)
        return PlannedRows(self.names, planned.numbers, self.numeric.names, planned.others, matrix, planned.report)


def _column(spec: FeatureSpec, kind: str, numbers: list[str], categories: list[str]) -> _Column:
    if kind == "categorical":
        known = frozenset(spec.categories) if spec.categories is not None else None
        return _Column(spec, kind, category=categories.index(spec.name), known=known, of_numbers=of_numbers(spec.dtype))
    bounds = None
    if kind == "numeric" and spec.minimum is not None and spec.maximum is not None:
        width = max(spec.maximum - spec.minimum, abs(spec.minimum), abs(spec.maximum), 1.0)
        bounds = _Range(spec.minimum, spec.maximum, OUT_OF_RANGE_FACTOR * width)
    return _Column(spec, kind, number=numbers.index(spec.name), bounds=bounds)


def _columns_of(rows: Any) -> tuple[list[str], dict[str, list]]:
    """The given column names (in the order pandas would give them) and each column's values."""
    if isinstance(rows, Mapping) and set(rows) == {"columns", "data"}:
        names, data = list(rows["columns"]), rows["data"]
        if len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
            raise Unplanned
        if not isinstance(data, list) or any(type(row) is not list or len(row) != len(names) for row in data):
            raise Unplanned  # a row of another width (pandas pads or refuses it), or not a list
        return names, dict(zip(names, zip(*data))) if data else {name: [] for name in names}
    if isinstance(rows, list) and rows and all(type(r) is dict for r in rows):
        if len(rows) == 1:
            only = rows[0]
            return list(only), {k: [v] for k, v in only.items()}
        names = list(dict.fromkeys(k for r in rows for k in r))
        return names, {name: [r.get(name) for r in rows] for name in names}
    raise Unplanned


# -- the checks, one kind each (the same outcome as signature.check_rows, or Unplanned) -----------------
class _NumericBlock:
    """The numeric columns, checked together as one float matrix (as ``check_rows`` checks numbers
    that arrive as numbers): numbers and missing values only, finite, none absurdly far outside the
    training range; nulls and values just outside it counted per column."""

    def __init__(self, columns: list[_Column]):
        self.names = [c.spec.name for c in columns]
        self.positions = [c.number for c in columns]
        known = [c.bounds for c in columns]
        self.low = np.array([b.low if b else -np.inf for b in known])
        self.high = np.array([b.high if b else np.inf for b in known])
        # Beyond these, a value is absurd (or infinite): the pandas path refuses it.
        largest = np.finfo(np.float64).max
        self.floor = np.array([b.low - b.reach if b else -largest for b in known])
        self.ceiling = np.array([b.high + b.reach if b else largest for b in known])

    def check(self, values: dict[str, list], count: int, report: InputReport) -> np.ndarray:
        columns = [values[name] for name in self.names]
        flat = [column[0] for column in columns] if count == 1 else [v for column in columns for v in column]
        types = set(map(type, flat))
        if not types <= _NUMBER_TYPES:
            raise Unplanned  # text, booleans: the pandas path converts or refuses them
        if int in types and any(type(v) is int and abs(v) > _EXACT_INT for v in flat):
            raise Unplanned
        if count == 1:
            array = np.array(flat, dtype=np.float64).reshape(1, len(columns))
        else:
            array = np.array(columns, dtype=np.float64).T.reshape(count, len(columns))
        with np.errstate(invalid="ignore"):
            if ((array < self.floor) | (array > self.ceiling)).any():
                raise Unplanned
            outside = ((array < self.low) | (array > self.high)).sum(axis=0)
        nulls = np.isnan(array).sum(axis=0)
        for j in np.flatnonzero(nulls).tolist():
            report.nulls[self.names[j]] = int(nulls[j])
        for j in np.flatnonzero(outside).tolist():
            report.outside_training_range[self.names[j]] = int(outside[j])
        return array


def _boolean(column: _Column, values: list, report: InputReport) -> tuple[np.ndarray, np.ndarray]:
    """The checked values (bool, or objects with NaN for missing ones) and their numbers (1/0/NaN)."""
    if not set(map(type, values)) <= _BOOLEAN_TYPES:
        raise Unplanned  # 0/1, "yes": the pandas path converts or refuses them
    numbers = np.array([math.nan if v is None else float(v) for v in values])
    nulls = int(np.isnan(numbers).sum())
    if not nulls:
        return np.array(values, dtype=bool), numbers
    report.nulls[column.spec.name] = nulls
    return np.array([math.nan if v is None else v for v in values], dtype=object), numbers


def _categorical(column: _Column, values: list, report: InputReport) -> tuple[np.ndarray, list]:
    """The checked values (text, NaN for missing ones) and the text each row is encoded by."""
    allowed = _CATEGORY_OF_NUMBERS_TYPES if column.of_numbers else _TEXT_TYPES
    others = set(map(type, values)) - allowed
    if others and (others != {float} or not all(v != v for v in values if type(v) is float)):
        raise Unplanned  # the pandas path refuses them, naming the row (a NaN is a missing value)
    texts = [_text(v) for v in values]
    nulls = texts.count(None)
    if nulls:
        report.nulls[column.spec.name] = nulls
    if column.known is not None:
        unseen = sum(1 for t in texts if t is not None and t not in column.known)
        if unseen:
            report.unseen_categories[column.spec.name] = unseen
    checked = np.array([math.nan if t is None else t for t in texts], dtype=object)
    return checked, texts


def _text(value: Any) -> str | None:
    """A value's category text, as ``quality.kinds.category_text`` makes it (None: missing): text as
    it is, whole numbers without a fraction, booleans as True / False."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return None
    if kind is float:
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise Unplanned
        return str(int(value)) if value.is_integer() else repr(value)
    if kind is int and abs(value) > _EXACT_INT:
        raise Unplanned
    return str(value)  # an int, or a bool: "True" / "False"


# -- the encodings ------------------------------------------------------------------------------------
class _OneHot:
    """The one-hot encoding's matrix: numbers imputed and scaled as the encoder's imputer and scaler
    do, then each categorical column's text at the output column the encoder puts it in (read off
    the fitted encoder once)."""

    def __init__(self, encoder: TableEncoder, n_numbers: int):
        self.n_numbers = n_numbers
        self.fill = self.mean = self.scale = None
        if n_numbers:
            imputer = encoder.imputer_
            empty = np.full((1, n_numbers), np.nan)
            names = getattr(imputer, "feature_names_in_", None)
            self.fill = imputer.transform(pd.DataFrame(empty, columns=names) if names is not None else empty)[0]
            scaler = encoder.scaler_
            self.mean = scaler.mean_ if scaler.with_mean else None
            self.scale = scaler.scale_ if scaler.with_std else None
        self.tables: list[dict[str, int]] = []
        self.unknown: list[int] = []
        onehot = encoder.onehot_
        self.width = n_numbers + (len(onehot.get_feature_names_out()) if onehot is not None else 0)
        if onehot is not None:
            self._read_tables(encoder)

    def _read_tables(self, encoder: TableEncoder) -> None:
        """Each category's output column, read off the fitted encoder by transforming every category
        it knows and one it cannot know (the unseen values' column: the infrequent one, or none)."""
        onehot, names = encoder.onehot_, encoder.categorical_
        sizes = getattr(onehot, "_n_features_outs", None)
        if sizes is None or len(sizes) != len(names):
            raise NoPlan("its one-hot encoder does not say how many columns each column has")
        seen = [[str(v) for v in values] for values in onehot.categories_]
        unseen = "\x00unseen\x00"
        height = max(len(values) for values in seen) + 1
        probe = pd.DataFrame(
            {n: [*values, *[values[-1]] * (height - 1 - len(values)), unseen] for n, values in zip(names, seen)}
        )
        hot = onehot.transform(probe).tocsr()
        start = 0
        for values, size in zip(seen, sizes):
            mine = range(start, start + size)
            start += size

            def column(i: int, mine: range = mine) -> int:
                return next((int(c) + self.n_numbers for c in hot[i].indices if c in mine), -1)

            self.tables.append({value: column(i) for i, value in enumerate(values)})
            self.unknown.append(column(height - 1))

    def codes(self, category: int, texts: list) -> np.ndarray:
        table, unknown = self.tables[category], self.unknown[category]
        return np.fromiter(
            (table.get(MISSING if t is None else t, unknown) for t in texts), dtype=np.int64, count=len(texts)
        )

    def matrix(self, numbers: np.ndarray, codes: list[np.ndarray]) -> np.ndarray:
        count = len(numbers)
        block = None
        if self.n_numbers:
            block = np.where(np.isnan(numbers), self.fill, numbers)
            if self.mean is not None:
                block -= self.mean
            if self.scale is not None:
                block /= self.scale
            if self.width == self.n_numbers:
                return block  # numbers only
        out = np.zeros((count, self.width))
        if block is not None:
            out[:, : self.n_numbers] = block
        rows = np.arange(count)
        for code in codes:
            hot = code >= 0
            out[rows[hot], code[hot]] = 1.0
        return out


class _NativeCodes:
    """The native encoding's matrix: numbers as they are (missing ones NaN), then each categorical
    column as its category's place among the encoder's kept categories (unseen and rare values
    ``OTHER``'s place, missing ones NaN), as the pandas categoricals' codes."""

    def __init__(self, encoder: TableEncoder):
        self.tables = [
            {value: float(i) for i, value in enumerate(encoder.categories_[c])} for c in encoder.categorical_
        ]
        self.other = [table[OTHER] for table in self.tables]
        self.width = len(encoder.number_names_) + len(self.tables)

    def codes(self, category: int, texts: list) -> np.ndarray:
        table, other = self.tables[category], self.other[category]
        return np.fromiter(
            (math.nan if t is None else table.get(t, other) for t in texts), dtype=np.float64, count=len(texts)
        )

    def matrix(self, numbers: np.ndarray, codes: list[np.ndarray]) -> np.ndarray:
        if not codes:
            return numbers
        return np.column_stack([numbers, *codes])
