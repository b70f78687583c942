"""Each sensor's cursor as a typed record, read from and written to the JSON the sensors have
always stored (so a sensor keeps its place across an upgrade). One per kind:

- ``LandingCursor``: each landing day's fingerprint, and the days ingested since the last retraining
  (a cursor of an older version named one day to retrain: ``retrain``);
- ``FilesCursor``: each day's fingerprint, for the scoring files and the served log's days;
- ``FeedbackCursor``: each outcome file's fingerprint, and the newest outcomes materialization read;
- ``VariantsCursor``: the newest train split and variant_model materializations read;
- ``DayCursor``: the day a retraining was last requested for (drift, decay);
- ``StorageIdCursor``: the newest materialization announced (deploy notifications).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


def _json(raw: str | None) -> dict:
    return json.loads(raw) if raw else {}


@dataclass
class LandingCursor:
    files: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, raw: str | None) -> LandingCursor:
        cursor = _json(raw)
        pending = cursor.get("pending")
        if pending is None:
            pending = [cursor["retrain"]] if cursor.get("retrain") else []
        return cls(dict(cursor.get("files", {})), sorted(pending))

    def dump(self) -> str:
        return json.dumps({"files": self.files, "pending": self.pending}, sort_keys=True)


@dataclass
class FilesCursor:
    """{day: fingerprint} of what was read last."""

    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, raw: str | None) -> FilesCursor:
        return cls(dict(_json(raw)))

    def dump(self) -> str:
        return json.dumps(self.seen, sort_keys=True)


@dataclass
class FeedbackCursor:
    files: dict[str, str] = field(default_factory=dict)
    after: int | None = None  # the storage id of the newest outcomes materialization read

    @classmethod
    def load(cls, raw: str | None) -> FeedbackCursor:
        cursor = _json(raw)
        return cls(dict(cursor.get("files", {})), cursor.get("after"))

    def dump(self) -> str:
        return json.dumps({"files": self.files, "after": self.after})


@dataclass
class VariantsCursor:
    splits: int | None = None  # storage ids of the newest train_split / variant_model read
    variants: int | None = None
    started: bool = False  # False: the sensor has never ticked (it starts from the newest split)

    @classmethod
    def load(cls, raw: str | None) -> VariantsCursor:
        cursor = _json(raw)
        return cls(cursor.get("splits"), cursor.get("variants"), bool(cursor))

    def dump(self) -> str:
        return json.dumps({"splits": self.splits, "variants": self.variants})


@dataclass
class DayCursor:
    day: str | None = None

    @classmethod
    def load(cls, raw: str | None) -> DayCursor:
        return cls(raw or None)

    def dump(self) -> str:
        return self.day or ""


@dataclass
class StorageIdCursor:
    storage_id: int = 0

    @classmethod
    def load(cls, raw: str | None) -> StorageIdCursor:
        return cls(int(raw or 0))

    def dump(self) -> str:
        return str(self.storage_id)
