"""Two versions of one model behind one route: a rollout's strategy as the server applies it, and
the canary's routing.

- ``direct``: production answers every request (no candidate is followed);
- ``shadow``: production answers every request; the candidate predicts the same rows off the
  request path, and its rows go to the prediction log (``role`` candidate, not ``answered``);
- ``canary``: a stable share of requests is answered by the candidate, chosen by a hash of the
  routing key: the request id, or the value of the ``route_by`` column in the request's *first*
  row (a request of several rows is routed as a whole, by its first row). With ``mirror``, the model
  that did not answer predicts the request off the request path as well.

The hash is ``sha256(key)``'s first 8 bytes as a number in [0, 1): a key goes to the candidate when
it is below ``share``; the same key always meets the same model while the share stays.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from ml_platform.quality.kinds import category_text

STRATEGIES = ("direct", "shadow", "canary")


@dataclass(frozen=True)
class Rollout:
    """One model's rollout, as the server needs it (``RolloutSpec`` of its pipeline)."""

    strategy: str = "direct"
    share: float = 0.1
    route_by: str | None = None
    mirror: bool = False

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Rollout:
        data = data or {}
        strategy = str(data.get("strategy") or "direct")
        if strategy not in STRATEGIES:
            raise ValueError(f"a rollout's strategy is one of {', '.join(STRATEGIES)}, not {strategy!r}")
        share = float(data["share"]) if data.get("share") is not None else cls.share
        return cls(strategy, share, data.get("route_by") or None, bool(data.get("mirror", False)))

    @property
    def uses_candidate(self) -> bool:
        return self.strategy in ("shadow", "canary")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_value(rows: Any, column: str) -> Any:
    """The value of ``column`` in the first row of a request's rows (records, ``{"columns", "data"}``
    or a DataFrame); None when it has no such column or no row."""
    if isinstance(rows, pd.DataFrame):
        return rows[column].iloc[0] if column in rows.columns and len(rows) else None
    if isinstance(rows, dict) and set(rows) == {"columns", "data"}:
        columns, data = list(rows["columns"]), rows["data"]
        if column not in columns or not data or len(data[0]) != len(columns):
            return None
        return data[0][columns.index(column)]
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        return rows[0].get(column)
    return None


def routing_key(rows: Any, route_by: str | None, request_id: str) -> str:
    """What routes a request: the request id, or the first row's ``route_by`` value as the category's
    text (``17``, ``17.0`` and ``"17"`` are one entity); the request id when the row lacks it."""
    if route_by is None:
        return request_id
    value = first_value(rows, route_by)
    if value is None or isinstance(value, (dict, list)):
        return request_id
    text = category_text(pd.Series([value], dtype=object)).iloc[0]
    return request_id if text is None or text != text else str(text)


def to_candidate(key: str, share: float) -> bool:
    """Whether the request of ``key`` is the candidate's (a stable share of keys)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64 < share
