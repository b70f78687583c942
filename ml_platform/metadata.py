"""Helpers that turn frames and dicts into Dagster metadata people can read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, str)):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _column_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "int"
    if pd.api.types.is_float_dtype(series.dtype):
        return "float"
    return "string"


def frame_table(frame: pd.DataFrame) -> dg.MetadataValue:
    """A small DataFrame as a UI table."""
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    schema = dg.TableSchema(columns=[dg.TableColumn(name=c, type=_column_type(frame[c])) for c in frame.columns])
    records = [
        dg.TableRecord({c: _cell(v) for c, v in zip(frame.columns, row)})
        for row in frame.itertuples(index=False, name=None)
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def rows_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> dg.MetadataValue:
    """Rows of plain values as a UI table; ``columns`` is (name, type) pairs."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name=n, type=t) for n, t in columns])
    records = [dg.TableRecord({n: _cell(row.get(n)) for n, _ in columns}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=schema)


def column_schema(frame: pd.DataFrame) -> dg.TableSchema:
    """Column names and pandas dtypes, for the standard ``dagster/column_schema`` entry."""
    return dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in frame.dtypes.items()])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v).replace("|", "\\|")

    lines = [
        "| " + " | ".join(fmt(h) for h in headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def signature_metadata(signature) -> dict[str, Any]:
    """A model's signature for the UI: a table of its columns, and one line with its digest."""
    return {
        "Signature": rows_table(
            signature.rows(),
            [
                ("Column", "string"),
                ("Kind", "string"),
                ("Dtype", "string"),
                ("Nulls seen", "bool"),
                ("Min", "float"),
                ("Max", "float"),
                ("Categories", "string"),
            ],
        ),
        "Signature digest": f"{signature.digest}: {signature.describe()}",
    }
