"""A pointer of a model, as one typed record: which version it names, its sha256, since when, the
version before it, why and who moved it. ``<model>/production.json`` holds the production pointer
and ``<model>/candidate.json`` the rollout's candidate (a version that must earn production on live
traffic); each move is kept in ``<model>/history/`` and ``<model>/candidate_history/``. The model
store writes them (``ModelStore.promote``, ``ModelStore.close_candidate``) and every reader (the
server, the CLI, deploy, the rollout sensor) gets a ``Pointer`` back, never a dict read by key.

A candidate pointer ends ``closed``: "promoted" (production moved to it) or "aborted" (it never
did); a closed candidate names no candidate. A production pointer is never closed.

Pointers written by older platforms load (a key they lack takes its default); a key this version
does not know is kept in ``others`` and written back as it was. Free of Dagster.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, fields
from typing import Any

from ml_platform.errors import ModelStoreError


@dataclass(frozen=True)
class Pointer:
    version: str
    promoted_at: str  # ISO 8601, UTC
    sha256: str | None = None  # of the version's model file, as the pointer promised it
    previous: str | None = None  # the version it replaced (None: the first promotion)
    reason: str | None = None
    actor: str | None = None
    closed: str | None = None  # a candidate's end: "promoted" or "aborted" (None: open)
    others: dict[str, Any] = field(default_factory=dict)

    @property
    def promoted_time(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.promoted_at)

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "others"}
        if values["closed"] is None:  # an open pointer is written as every earlier platform wrote it
            del values["closed"]
        return {**self.others, **values}

    def to_bytes(self) -> bytes:
        """As production.json and the history hold it."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pointer:
        if not isinstance(data, dict) or not data.get("version") or not data.get("promoted_at"):
            raise ModelStoreError(f"a pointer must name a version and when it was promoted, not {data!r}")
        known = {f.name for f in fields(cls)} - {"others"}
        values = {k: v for k, v in data.items() if k in known}
        return cls(**values, others={k: v for k, v in data.items() if k not in known})

    @classmethod
    def from_bytes(cls, data: bytes) -> Pointer:
        try:
            return cls.from_dict(json.loads(data))
        except ValueError as exc:  # not JSON
            raise ModelStoreError(f"a pointer is not JSON: {exc}") from None
