"""Request bodies to rows: JSON records, JSON ``{"columns": [...], "data": [[...]]}``, or CSV.

Each problem is a ``RequestError`` with the HTTP status it answers and one line saying what is
wrong; the rows themselves are checked against the signature afterwards (``CheckedModel.check``).
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd

from ml_platform.signature import Signature

JSON_TYPES = ("application/json", "")
CSV_TYPES = ("text/csv", "application/csv")


class RequestError(Exception):
    """A request the server refuses: ``status`` and one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def content_type(headers: Any) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def flag(value: str | None, name: str) -> bool:
    """A query flag: true/false, 1/0, yes/no; absent is false."""
    if value is None:
        return False
    text = value.strip().lower()
    if text in ("true", "1", "yes", ""):
        return True
    if text in ("false", "0", "no"):
        return False
    raise RequestError(400, f"query parameter {name}={value!r} is not true or false")


def parse_rows(body: bytes, kind: str, signature: Signature) -> Any:
    """The rows of a request body, as ``ml_platform.signature.as_frame`` takes them."""
    if not body.strip():
        raise RequestError(400, 'the request body is empty: send rows as JSON records, {"columns", "data"} or CSV')
    if kind in CSV_TYPES:
        try:
            return pd.read_csv(io.BytesIO(body), dtype=signature.csv_dtypes())
        except (ValueError, pd.errors.ParserError) as exc:
            raise RequestError(400, f"the CSV body cannot be read: {str(exc).strip().splitlines()[0]}") from None
    if kind not in JSON_TYPES:
        raise RequestError(415, f"content type {kind!r} is not application/json or text/csv")
    try:
        rows = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None
    if isinstance(rows, dict) and set(rows) == {"columns", "data"}:
        if (
            not isinstance(rows["columns"], list)
            or not isinstance(rows["data"], list)
            or not all(isinstance(r, list) for r in rows["data"])
        ):
            raise RequestError(400, '"columns" must be a list of names and "data" a list of rows (lists)')
        width = len(rows["columns"])
        uneven = next((i for i, r in enumerate(rows["data"]) if len(r) != width), None)
        if uneven is not None:
            raise RequestError(
                400, f'row {uneven} of "data" has {len(rows["data"][uneven])} values for {width} columns'
            )
        return rows
    if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
        return rows
    raise RequestError(400, 'expected a JSON list of records or {"columns": [...], "data": [[...]]}')
