"""Request bodies to rows: JSON records, JSON ``{"columns": [...], "data": [[...]]}``, CSV, or the
bodies MLflow's scoring server takes (``mlflow models serve``): ``{"dataframe_records": [...]}``,
``{"dataframe_split": {"columns", "data"}}``, ``{"instances": [...]}`` and ``{"inputs": ...}``.

Each problem is a ``RequestError`` with the HTTP status it answers and one line saying what is
wrong; the rows themselves are checked against the signature afterwards (``CheckedModel.check``).
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import orjson
import pandas as pd

from ml_platform.signature import Signature

JSON_TYPES = ("application/json", "")
CSV_TYPES = ("text/csv", "application/csv")


class RequestError(Exception):
    """A request the server refuses: ``status`` and one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


REQUEST_ID_HEADER = "X-Request-ID"
_MAX_REQUEST_ID = 128


def request_id_of(headers: Any) -> str:
    """The request's id: the caller's ``X-Request-ID`` (printable, at most 128 characters), or a new one."""
    given = headers.get(REQUEST_ID_HEADER.lower(), "").strip()
    if not given:
        return uuid.uuid4().hex
    if len(given) > _MAX_REQUEST_ID or not given.isprintable():
        raise RequestError(400, f"{REQUEST_ID_HEADER} must be printable and at most {_MAX_REQUEST_ID} characters")
    return given


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


def json_body(body: bytes) -> Any:
    """A request body's JSON; a RequestError (400) saying where it breaks. Read by orjson (fast); what
    it refuses (invalid JSON, and what Python's json takes beyond the standard: NaN, integers over 64
    bits) is read by json, whose message says where it breaks."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None


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
    rows = json_body(body)
    if isinstance(rows, dict) and set(rows) & set(MLFLOW_KEYS):
        rows = _mlflow_body(rows, signature)
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
    raise RequestError(
        400,
        'expected a JSON list of records, {"columns": [...], "data": [[...]]}, or MLflow\'s {"dataframe_records": ...},'
        ' {"dataframe_split": ...}, {"instances": ...}, {"inputs": ...}',
    )


# The keys of MLflow's scoring-server bodies (beside them MLflow allows "params", which a
# scikit-learn model has no use for).
MLFLOW_KEYS = ("dataframe_records", "dataframe_split", "instances", "inputs")


def _mlflow_body(body: dict, signature: Signature) -> Any:
    """The rows of an MLflow body: records, ``{"columns", "data"}`` (an ``index`` is ignored: the
    answer keeps the rows' order), or instances / inputs as records, as rows of values in the
    signature's column order, or as columns (``{"age": [..], ...}``)."""
    keys = [k for k in MLFLOW_KEYS if k in body]
    others = sorted(set(body) - {*keys, "params"})
    if len(keys) > 1 or others:
        raise RequestError(400, f"an MLflow body has one of {', '.join(MLFLOW_KEYS)} (and params); got {sorted(body)}")
    key, value = keys[0], body[keys[0]]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not {"columns", "data"} <= set(value):
            raise RequestError(
                400, 'dataframe_split must be {"columns": [...], "data": [[...]]} (an "index" is ignored)'
            )
        return {"columns": value["columns"], "data": value["data"]}
    if key == "dataframe_records" or (isinstance(value, list) and value and all(isinstance(r, dict) for r in value)):
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise RequestError(400, "dataframe_records must be a list of records (objects)")
        return value
    if isinstance(value, dict):  # columnar: {"age": [...], "plan": [...]}
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise RequestError(400, f"{key} as columns must map each column to a list of values of the same length")
        return {"columns": list(value), "data": [list(row) for row in zip(*value.values())]}
    if isinstance(value, list) and all(isinstance(r, list) for r in value):
        return {"columns": signature.columns, "data": value}  # rows of values, in the signature's column order
    raise RequestError(400, f"{key} must be a list of records, a list of rows (lists) or a mapping of columns")
