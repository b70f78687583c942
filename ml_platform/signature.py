"""A model's signature: the input contract it promises its callers, free of Dagster.

The signature is inferred from the rows a model was fitted on and stored with every version
(``metadata.json``). It lists the feature columns in order, each with its kind (numeric, boolean,
categorical), its dtype, whether nulls were seen, the categories seen (categorical) and the range
seen (numeric); and the target with its classes, or that the model is a regression.

It serves three purposes:

- the pipeline's schema, when pipelines.yaml declares none, is the production model's signature
  (``Signature.schema``): the first model pins it;
- a new model whose signature differs from production's is not deployed unless
  ``schema.evolve`` says so (``SignatureChange``);
- rows to predict are checked against it before scikit-learn sees them (``check_rows``): columns
  put in order, extra columns dropped and reported, values converted to the kinds the model was
  fitted on, and one typed error for what cannot be predicted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.errors import (
    ColumnTypeError,
    EmptyInputError,
    MissingColumnsError,
    SignatureError,
)
from ml_platform.quality.kinds import VALUE_KINDS as KINDS
from ml_platform.quality.kinds import category_text, datetimes, value_kind
from ml_platform.quality.results import names_text
from ml_platform.quality.schema import Schema

FORMAT_VERSION = 1
# A categorical column records at most this many categories (more: unseen ones are not counted).
MAX_CATEGORIES = 1000
# A number further from the range seen in training than this many times the range's width (or
# its magnitude) is refused: it is garbage (a unit or parsing error), and a tree model computing
# in float32 cannot hold values near 1e38 at all.
OUT_OF_RANGE_FACTOR = 1e6
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


@dataclass(frozen=True)
class FeatureSpec:
    """One feature column of a signature."""

    name: str
    kind: str | None  # None: a version stored before signatures (feature names only)
    dtype: str | None = None
    nullable: bool = False
    categories: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Signature:
    features: tuple[FeatureSpec, ...]
    target: str
    task: str
    classes: tuple[Any, ...] | None = None  # classification: the classes; regression: None

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def kinds(self) -> dict[str, str]:
        return {f.name: f.kind for f in self.features if f.kind}

    @property
    def digest(self) -> str:
        """8 hex digits over the columns and kinds: two versions with the same digest take the same input."""
        text = json.dumps([[f.name, f.kind] for f in self.features])
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def schema(self, source: str, enforced: bool = True, extra_columns: str = "ignore") -> Schema:
        return Schema(tuple(self.columns), self.kinds, source, enforced, extra_columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "features": [
                {**asdict(f), "categories": list(f.categories) if f.categories is not None else None}
                for f in self.features
            ],
            "target": self.target,
            "task": self.task,
            "classes": list(self.classes) if self.classes is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        features = tuple(
            FeatureSpec(**{**f, "categories": tuple(f["categories"]) if f.get("categories") is not None else None})
            for f in data["features"]
        )
        classes = data.get("classes")
        return cls(features, data["target"], data["task"], tuple(classes) if classes is not None else None)

    @classmethod
    def of_version(cls, metadata: Mapping[str, Any]) -> Signature | None:
        """The signature recorded with a stored version; a version stored before signatures has
        its feature names only (kinds unknown); None if it has neither."""
        if metadata.get("signature"):
            return cls.from_dict(metadata["signature"])
        names = metadata.get("feature_columns")
        if not names:
            return None
        classes = metadata.get("classes")
        return cls(
            tuple(FeatureSpec(str(n), None) for n in names),
            metadata.get("target", ""),
            metadata.get("task", "classification"),
            tuple(classes) if classes else None,
        )

    def csv_dtypes(self) -> dict[str, type]:
        """How a CSV of rows for this model is read: its categorical columns as text (as they were in
        training: a zip code "01234" keeps its zero), the rest as pandas infers them."""
        return {f.name: str for f in self.features if f.kind == "categorical"}

    def rows(self) -> list[dict[str, Any]]:
        """One row per feature column, for a table (UI metadata, ``ml-platform production``)."""
        rows = []
        for f in self.features:
            if f.categories is not None:
                shown = ", ".join(f.categories[:8]) + (f" … ({len(f.categories)})" if len(f.categories) > 8 else "")
            else:
                shown = ""
            rows.append(
                {
                    "Column": f.name,
                    "Kind": f.kind or "unknown",
                    "Dtype": f.dtype or "",
                    "Nulls seen": f.nullable,
                    "Min": f.minimum,
                    "Max": f.maximum,
                    "Categories": shown,
                }
            )
        return rows

    def describe(self) -> str:
        """One line: 30 columns (30 numeric), target 'target', classes 0, 1."""
        counts = {k: sum(1 for f in self.features if f.kind == k) for k in KINDS}
        kinds = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        outcome = f"classes {', '.join(map(str, self.classes))}" if self.classes is not None else "regression"
        return f"{len(self.features)} columns ({kinds or 'kinds unknown'}), target {self.target!r}, {outcome}"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def infer_signature(
    x: pd.DataFrame,
    target: str,
    task: str,
    classes: Sequence[Any] | None = None,
    kinds: Mapping[str, str] | None = None,
) -> Signature:
    """The signature of a model fitted on the feature columns ``x`` (the target left out);
    ``kinds``: the columns' declared (or pinned) kinds, which win over what a column holds."""
    features = []
    kinds = kinds or {}
    for column in x.columns:
        series = x[column]
        kind = kinds.get(str(column)) or value_kind(series)
        if kind not in KINDS:  # the data contract refuses such columns before training
            raise SignatureError(f"column {column!r} has type {series.dtype}: not numeric, boolean or text")
        values = series.dropna()
        minimum = maximum = None
        categories = None
        if kind == "numeric" and len(values):
            numbers = values.to_numpy(dtype="float64")
            minimum, maximum = float(numbers.min()), float(numbers.max())
        elif kind == "categorical":
            seen = sorted(set(category_text(values).unique()))
            categories = tuple(seen) if len(seen) <= MAX_CATEGORIES else None
        features.append(
            FeatureSpec(
                name=str(column),
                kind=kind,
                dtype=str(series.dtype),
                nullable=bool(series.isna().any()),
                categories=categories,
                minimum=minimum,
                maximum=maximum,
            )
        )
    return Signature(
        tuple(features),
        target,
        task,
        tuple(_plain(c) for c in classes) if task == "classification" and classes is not None else None,
    )


@dataclass(frozen=True)
class SignatureChange:
    """How a new signature differs from an old one, as a caller sees it."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rekinded: tuple[tuple[str, str, str], ...] = ()  # (column, old kind, new kind)
    reordered: bool = False  # callers may send columns in any order: not a change that breaks

    @property
    def breaking(self) -> bool:
        return bool(self.added or self.removed or self.rekinded)

    def describe(self) -> str:
        parts = []
        if self.added:
            parts.append(f"columns added: {names_text(self.added)}")
        if self.removed:
            parts.append(f"columns removed: {names_text(self.removed)}")
        if self.rekinded:
            parts.append("re-kinded: " + ", ".join(f"{c!r} {old} -> {new}" for c, old, new in self.rekinded))
        if self.reordered and not parts:
            parts.append("the same columns in another order")
        return "; ".join(parts) or "the same columns and kinds"

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "rekinded": [list(r) for r in self.rekinded],
            "reordered": self.reordered,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignatureChange:
        return cls(
            tuple(data["added"]),
            tuple(data["removed"]),
            tuple(tuple(r) for r in data["rekinded"]),
            bool(data["reordered"]),
        )


def compare(old: Signature, new: Signature) -> SignatureChange:
    """What changes for a caller of ``old`` when ``new`` replaces it (kinds unknown on either side
    are not compared)."""
    old_kinds, new_kinds = {f.name: f.kind for f in old.features}, {f.name: f.kind for f in new.features}
    added = tuple(c for c in new.columns if c not in old_kinds)
    removed = tuple(c for c in old.columns if c not in new_kinds)
    rekinded = tuple(
        (c, old_kinds[c], new_kinds[c])
        for c in new.columns
        if c in old_kinds and old_kinds[c] and new_kinds[c] and old_kinds[c] != new_kinds[c]
    )
    common = [c for c in old.columns if c in new_kinds]
    reordered = common != [c for c in new.columns if c in old_kinds]
    return SignatureChange(added, removed, rekinded, reordered)


# -- rows to predict ----------------------------------------------------------------------------
@dataclass
class InputReport:
    """What the signature check did to rows it let through."""

    rows: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    nulls: dict[str, int] = field(default_factory=dict)  # column -> rows (imputed as in training)
    unseen_categories: dict[str, int] = field(default_factory=dict)  # column -> rows
    outside_training_range: dict[str, int] = field(default_factory=dict)  # column -> rows

    def to_dict(self) -> dict[str, Any]:
        # By hand, not dataclasses.asdict: it runs for every answered request.
        return {
            "rows": self.rows,
            "dropped_columns": list(self.dropped_columns),
            "nulls": dict(self.nulls),
            "unseen_categories": dict(self.unseen_categories),
            "outside_training_range": dict(self.outside_training_range),
        }

    def lines(self) -> list[str]:
        """What a person should know, one line each (nothing when the rows were plain)."""
        lines = []
        if self.dropped_columns:
            lines.append(
                f"dropped {len(self.dropped_columns)} column(s) the model does not take:"
                f" {names_text(self.dropped_columns)}"
            )
        for what, counts in (
            ("nulls (imputed as in training)", self.nulls),
            ("unseen categories (encoded as none of the known ones)", self.unseen_categories),
            ("values outside the training range", self.outside_training_range),
        ):
            if counts:
                lines.append(f"{what}: " + ", ".join(f"{c!r} {n} row(s)" for c, n in counts.items()))
        return lines


def as_frame(rows: Any) -> pd.DataFrame:
    """Rows as a DataFrame: a DataFrame, a list of records, ``{"columns": [...], "data": [[...]]}``,
    or a mapping of column -> values."""
    if isinstance(rows, pd.DataFrame):
        return rows
    try:
        if isinstance(rows, Mapping) and set(rows) == {"columns", "data"}:
            return pd.DataFrame(list(rows["data"]), columns=list(rows["columns"]))
        if isinstance(rows, Mapping):
            return pd.DataFrame(dict(rows))
        if isinstance(rows, list) and all(isinstance(r, Mapping) for r in rows):
            return pd.DataFrame.from_records(rows)
    except (TypeError, ValueError) as exc:
        raise SignatureError(f"the rows cannot form a table: {exc}") from None
    raise SignatureError(
        f"expected rows as a DataFrame, a list of records or {{'columns': [...], 'data': [[...]]}},"
        f" got {type(rows).__name__}"
    )


def _first_bad(series: pd.Series, bad: np.ndarray) -> tuple[int, Any, int]:
    """(row position, value, how many) of the rows a mask marks."""
    positions = np.flatnonzero(bad)
    return int(positions[0]), series.iloc[positions[0]], int(len(positions))


def _refuse(column: str, what: str, series: pd.Series, bad: np.ndarray) -> ColumnTypeError:
    row, value, count = _first_bad(series, bad)
    more = f" ({count} rows like it)" if count > 1 else ""
    return ColumnTypeError(f"column {column!r} {what}: row {row} holds {value!r}{more}")


def _numeric(spec: FeatureSpec, series: pd.Series, report: InputReport) -> pd.Series:
    column, dtype = spec.name, series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise ColumnTypeError(f"column {column!r} is numeric in the signature; got booleans ({dtype})")
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise ColumnTypeError(f"column {column!r} is numeric in the signature; got {dtype}")
    numbers = series.astype("float64") if pd.api.types.is_numeric_dtype(dtype) else _numbers_of_text(column, series)
    array = numbers.to_numpy()
    infinite = np.isinf(array)
    if infinite.any():
        raise _refuse(column, "expects finite numbers (leave a value empty to have it imputed)", series, infinite)
    _check_range(spec, series, array, report)
    nulls = int(np.isnan(array).sum())
    if nulls:
        report.nulls[column] = nulls
    return pd.Series(array, index=series.index, name=column)


def _numbers_of_text(column: str, series: pd.Series) -> pd.Series:
    """An object column of a numeric feature as float64: numbers and numeric text; anything else
    (a bool, a list, a word) refused naming the row."""
    values = series.astype(object)
    present = values.notna().to_numpy()
    wrong_type = (
        present
        & values.map(lambda v: isinstance(v, bool) or not isinstance(v, (str, int, float, np.number))).to_numpy()
    )
    if wrong_type.any():
        row, value, _ = _first_bad(values, wrong_type)
        raise ColumnTypeError(
            f"column {column!r} is numeric in the signature; row {row} holds a {type(value).__name__} ({value!r})"
        )
    numbers = pd.to_numeric(values.map(lambda v: v.strip() if isinstance(v, str) else v), errors="coerce").astype(
        "float64"
    )
    text = present & numbers.isna().to_numpy()
    if text.any():
        raise _refuse(column, "expects numbers", values, text)
    return numbers


def _check_range(spec: FeatureSpec, series: pd.Series, array: np.ndarray, report: InputReport) -> None:
    """Values far outside the training range are refused; those just outside it are counted."""
    column = spec.name
    if spec.minimum is not None and spec.maximum is not None:
        width = max(spec.maximum - spec.minimum, abs(spec.minimum), abs(spec.maximum), 1.0)
        reach = OUT_OF_RANGE_FACTOR * width
        with np.errstate(invalid="ignore"):
            absurd = (array < spec.minimum - reach) | (array > spec.maximum + reach)
            outside = int(((array < spec.minimum) | (array > spec.maximum)).sum())
        if absurd.any():
            raise _refuse(column, f"is out of range (trained on {spec.minimum:g} .. {spec.maximum:g})", series, absurd)
        if outside:
            report.outside_training_range[column] = outside


def _categorical(spec: FeatureSpec, series: pd.Series, report: InputReport) -> pd.Series:
    """Text; or, for a category the model learnt from numbers (a store id declared categorical),
    numbers and booleans too, as their text."""
    column = spec.name
    values = series.astype(object)
    present = values.notna().to_numpy()
    if not present.any():
        values = pd.Series(np.nan, index=series.index, dtype=object)
    else:
        numbers = of_numbers(spec.dtype)
        accepted = values.map(_category_like) if numbers else values.map(lambda v: isinstance(v, str))
        not_category = present & ~accepted.to_numpy()
        if not_category.any():
            row, value, count = _first_bad(values, not_category)
            more = f" ({count} rows like it)" if count > 1 else ""
            what = "categorical" if numbers else "categorical (text)"
            raise ColumnTypeError(
                f"column {column!r} is {what} in the signature; row {row} holds a"
                f" {type(value).__name__} ({value!r}){more}"
            )
        values = category_text(values.where(present, np.nan))
    nulls = int((~present).sum())
    if nulls:
        report.nulls[column] = nulls
    if spec.categories is not None:
        unseen = int((present & ~values.isin(spec.categories).to_numpy()).sum())
        if unseen:
            report.unseen_categories[column] = unseen
    return values.rename(column)


def of_numbers(dtype: str | None) -> bool:
    """Whether a training dtype (as the signature recorded it) held numbers or booleans."""
    try:
        return dtype is not None and (
            pd.api.types.is_numeric_dtype(pd.api.types.pandas_dtype(dtype))
            or pd.api.types.is_bool_dtype(pd.api.types.pandas_dtype(dtype))
        )
    except TypeError:
        return False


def _category_like(value: Any) -> bool:
    if isinstance(value, (str, bool, np.bool_, int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isfinite(value))


def _datetime(spec: FeatureSpec, series: pd.Series, report: InputReport) -> pd.Series:
    column = spec.name
    moments = datetimes(series)
    bad = (moments.isna() & series.notna()).to_numpy()
    if bad.any():
        raise _refuse(column, "expects dates and times", series, bad)
    nulls = int(moments.isna().sum())
    if nulls:
        report.nulls[column] = nulls
    return moments.rename(column)


def _boolean(spec: FeatureSpec, series: pd.Series, report: InputReport) -> pd.Series:
    column = spec.name
    values = series.astype(object)
    present = values.notna().to_numpy()

    def as_bool(v: Any) -> Any:
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, float, np.number)) and v in (0, 1):
            return bool(v)
        if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
            return v.strip().lower() in _TRUE
        return None

    converted = pd.Series(
        [as_bool(v) if p else None for v, p in zip(values, present)], index=series.index, dtype=object
    )
    bad = present & converted.isna().to_numpy()
    if bad.any():
        raise _refuse(column, "expects booleans (true/false)", values, bad)
    nulls = int((~present).sum())
    if nulls:
        report.nulls[column] = nulls
        return converted.where(present, np.nan).rename(column)
    return converted.astype(bool).rename(column)


_CONVERT = {"numeric": _numeric, "categorical": _categorical, "boolean": _boolean, "datetime": _datetime}


def check_rows(rows: Any, signature: Signature) -> tuple[pd.DataFrame, InputReport]:
    """The rows as the model takes them (signature's columns, in its order, of its kinds), and
    what was done to them. Raises EmptyInputError, MissingColumnsError, ColumnTypeError or
    SignatureError, each naming the column (and the first bad row, counted from 0)."""
    frame = as_frame(rows)
    duplicated = frame.columns[frame.columns.duplicated()]
    if len(duplicated):
        raise SignatureError(f"column {duplicated[0]!r} appears more than once in the input")
    if len(frame) == 0:
        raise EmptyInputError("the input has no rows: nothing to predict")
    names = signature.columns
    missing = [c for c in names if c not in frame.columns]
    if missing:
        given = [str(c) for c in frame.columns]
        hint = ""
        if len(given) == 1 and any(s in given[0] for s in (";", "\t", "|")):
            hint = "; the header is one column: a CSV must be comma-separated"
        raise MissingColumnsError(
            f"missing feature column(s) {names_text(missing)} of the model's {len(names)}"
            f" (the input has {names_text(given) or 'no columns'}){hint}"
        )
    wanted = set(names)
    report = InputReport(rows=len(frame), dropped_columns=[str(c) for c in frame.columns if c not in wanted])
    # Numeric columns that arrive as numbers are checked together, as one float matrix (the common
    # case, and where a one-row request would otherwise spend most of its check); the rest one by one.
    together = [f for f in signature.features if f.kind == "numeric" and _plain_numbers(frame[f.name])]
    matrix = _numeric_block(together, frame, report)
    if len(together) == len(signature.features):
        return pd.DataFrame(matrix, index=frame.index, columns=names), report
    columns = {f.name: matrix[:, j] for j, f in enumerate(together)}
    for spec in signature.features:
        if spec.name not in columns:
            series = frame[spec.name]
            columns[spec.name] = _CONVERT[spec.kind](spec, series, report) if spec.kind in _CONVERT else series
    return pd.DataFrame({name: columns[name] for name in names}, index=frame.index), report


def _plain_numbers(series: pd.Series) -> bool:
    dtype = series.dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _numeric_block(specs: list[FeatureSpec], frame: pd.DataFrame, report: InputReport) -> np.ndarray:
    """``_numeric`` over many number columns at once, as one float matrix (a column each); a column
    with a problem goes through ``_numeric`` itself, for its message."""
    if not specs:
        return np.empty((len(frame), 0))
    names = [f.name for f in specs]
    matrix = frame[names].to_numpy(dtype="float64", na_value=np.nan)
    low = np.array([f.minimum if f.minimum is not None else -np.inf for f in specs])
    high = np.array([f.maximum if f.maximum is not None else np.inf for f in specs])
    known = np.isfinite(low) & np.isfinite(high)
    width = np.where(known, np.maximum.reduce([high - low, np.abs(low), np.abs(high), np.ones(len(specs))]), 0.0)
    reach = OUT_OF_RANGE_FACTOR * width
    with np.errstate(invalid="ignore"):
        bad = np.isinf(matrix) | (known & ((matrix < low - reach) | (matrix > high + reach)))
        outside = (known & ((matrix < low) | (matrix > high))).sum(axis=0)
    if bad.any():
        column = int(np.flatnonzero(bad.any(axis=0))[0])
        _numeric(specs[column], frame[names[column]], InputReport())  # raises, naming column and row
    nulls = np.isnan(matrix).sum(axis=0)
    for name, count in zip(names, nulls):
        if count:
            report.nulls[name] = int(count)
    for name, count in zip(names, outside):
        if count:
            report.outside_training_range[name] = int(count)
    return matrix
