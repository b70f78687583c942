"""The prediction log: what `ml-platform serve` answered, kept.

Each answered request becomes rows of the log, one per predicted row: its request id, when, the
model and the version that answered, the row as the model saw it (after the signature's coercion;
columns of ``serving.log.exclude`` left out), the prediction, the class probabilities (classifiers)
and the request's latency. A request refused by the signature check is logged too, one row per
row it sent, with the refusal in ``refused`` and no prediction (its rows are not kept: they did not
meet the contract), so the share of traffic that met the signature is known.

During a rollout (shadow, canary) both versions of a model may predict one request: each row says
its model's ``role`` ("production" or "candidate") and whether its prediction ``answered`` the
request (False: it predicted the request off the request path, as a shadow or a canary's mirror).
A request's rows of both roles are kept or left out of the sample together (``draw``).

The request path only puts them on a bounded queue (a full queue drops the request's rows and
counts them); one background thread writes them, in batches, as parquet parts per model and day in
the model store the server reads (a local folder, or S3):

    <model>/prediction_log/<YYYY-MM-DD>/<UTC time>-<pid>-<n>.parquet

at least every ``flush_s`` seconds and when the server stops. The day is the one the request was
answered on (by the platform's clock, ``ml_platform.clock``) in the
pipeline's time zone (``schedule.timezone``; UTC for a model the server has no pipeline of), so a
folder is exactly one of the pipeline's daily partitions (served[day]). A part that cannot be written (a full
disk, S3 down) is dropped and counted; predictions go on. Parts are written whole (the store's
atomic write), so a reader never sees half a part; a process killed hard loses at most what it had
not flushed yet.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pyarrow.lib import ArrowException

from ml_platform import constants
from ml_platform.clock import Clock
from ml_platform.clock import now as platform_time
from ml_platform.row_plan import PlannedRows

logger = logging.getLogger("ml_platform.serving")

FOLDER = constants.PREDICTION_LOG_FOLDER
COLUMNS = constants.PREDICTION_LOG_COLUMNS
DEFAULT_FLUSH_S = 1.0
DEFAULT_QUEUE_REQUESTS = 10_000
PRUNE_EVERY_S = 3600.0
# How often the writer takes the queued entries (it is never woken per entry: at thousands of requests
# a second, a wake-up per entry made the request path wait for the GIL).
TAKE_EVERY_S = 0.1


@dataclass(frozen=True)
class LogSettings:
    """One model's log: on or off, the share of requests kept, the columns never written, the time
    zone of its days and how many days are kept."""

    enabled: bool = True
    sample: float = 1.0
    exclude: tuple[str, ...] = ()
    timezone: str = "UTC"
    retention_days: int | None = None  # the days kept, today's included; None: every day

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> LogSettings:
        data = data or {}
        return cls(
            bool(data.get("enabled", True)),
            float(data.get("sample", 1.0)),
            tuple(data.get("exclude") or ()),
            str(data.get("timezone") or "UTC"),
            int(data["retention_days"]) if data.get("retention_days") else None,
        )

    def day(self, moment: dt.datetime) -> str:
        """The day of ``moment`` in the log's time zone: the folder it is written to."""
        return moment.astimezone(ZoneInfo(self.timezone)).date().isoformat()

    def first_kept(self, moment: dt.datetime) -> str | None:
        """The oldest day folder the retention keeps at ``moment`` (its day and the
        ``retention_days - 1`` days before, in the log's time zone); None: every day is kept."""
        if not self.retention_days:
            return None
        today = dt.date.fromisoformat(self.day(moment))
        return (today - dt.timedelta(days=self.retention_days - 1)).isoformat()


@dataclass
class Entry:
    """One answered request, as the log keeps it; or, with ``refused``, a request of ``count`` rows
    the signature check refused, or a rollout's candidate failed on (no rows, no predictions).
    ``role`` and ``answered``: which of a rollout's models predicted it, and whether that was the answer."""

    model: str
    version: str
    request_id: str
    logged_at: dt.datetime
    latency_ms: float
    rows: pd.DataFrame | PlannedRows  # the checked rows (planned ones become a frame in the writer thread)
    predictions: np.ndarray
    # A DataFrame, or checked_model.Probabilities (an array and the classes), one column per class.
    probabilities: Any = field(default=None, repr=False)
    refused: str | None = None
    role: str = "production"  # "production" | "candidate"
    answered: bool = True  # its prediction (or refusal) was the request's answer

    @classmethod
    def refusal(
        cls,
        model: str,
        version: str,
        request_id: str,
        logged_at: dt.datetime,
        latency_ms: float,
        count: int,
        reason: str,
        role: str = "production",
        answered: bool = True,
    ) -> Entry:
        empty = pd.DataFrame(index=range(count))
        predictions = np.full(count, None, dtype=object)
        return cls(model, version, request_id, logged_at, latency_ms, empty, predictions, None, reason, role, answered)


class PredictionLog:
    """The queue the request path puts answered requests on, and the thread that writes them.
    ``clock`` decides the days the retention keeps (the platform's by default); ``rng`` draws the
    sample (a seeded one makes it repeatable)."""

    def __init__(
        self,
        write: Callable[[str, bytes], None],
        settings: dict[str, LogSettings],
        counted: Callable[[str, str, int], None],
        flush_s: float = DEFAULT_FLUSH_S,
        max_requests: int = DEFAULT_QUEUE_REQUESTS,
        list_children: Callable[[str], list[str]] | None = None,
        delete_tree: Callable[[str], None] | None = None,
        clock: Clock = platform_time,
        rng: random.Random | None = None,
    ):
        self._write_bytes = write  # the model store's atomic write
        self._list_children, self._delete_tree = list_children, delete_tree  # the retention's
        self.clock = clock
        self._rng = rng or random.Random()
        self._pruned_at: dt.datetime | None = None
        self.settings = settings
        self._counted = counted  # (model, outcome "written" / "dropped", rows)
        self.flush_s = flush_s
        self._incoming: deque[Entry] = deque()  # appended by the request path, taken by the writer
        self._max_requests = max_requests
        self._stopping = threading.Event()
        self._sequence = 0
        self._warned_at = 0.0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def draw(self, model: str) -> bool:
        """Whether a request of ``model`` is kept (its log enabled, and the sample's draw): drawn once
        per request, so that the rows of both models of a rollout are kept or left out together."""
        chosen = self.settings.get(model, LogSettings())
        return chosen.enabled and (chosen.sample >= 1.0 or self._rng.random() < chosen.sample)

    def record(self, entry: Entry, kept: bool | None = None) -> None:
        """Queue an answered request (never blocks: a full queue drops it, counted). ``kept``: the
        request's ``draw``; None draws for this entry."""
        if not (self.draw(entry.model) if kept is None else kept):
            return
        chosen = self.settings.get(entry.model, LogSettings())
        if chosen.exclude:
            rows = _frame_of(entry.rows)
            entry.rows = rows.drop(columns=[c for c in chosen.exclude if c in rows.columns])
        if len(self._incoming) >= self._max_requests:
            self._counted(entry.model, "dropped", len(entry.rows))
            self._warn(f"the prediction log's queue is full: {len(entry.rows)} row(s) of {entry.model} dropped")
            return
        self._incoming.append(entry)  # atomic: no lock, and no wake-up of the writer

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        self._stopping.set()
        self._thread.join(timeout_s)

    # -- the writing thread -------------------------------------------------------------------------
    def _run(self) -> None:
        self._prune()  # when the server starts, before the first part
        pending: list[Entry] = []
        deadline = time.monotonic() + self.flush_s
        while True:
            stopping = self._stopping.wait(timeout=min(TAKE_EVERY_S, max(0.0, deadline - time.monotonic())))
            pending.extend(self._take())
            if stopping:
                self._flush(pending)
                return
            if time.monotonic() >= deadline:
                self._flush(pending)
                pending = []
                deadline = time.monotonic() + self.flush_s
                self._prune()

    def _take(self) -> list[Entry]:
        taken = []
        while self._incoming:
            taken.append(self._incoming.popleft())
        return taken

    def _flush(self, entries: list[Entry]) -> None:
        groups: dict[tuple[str, str], list[Entry]] = {}
        for entry in entries:
            day = self.settings.get(entry.model, LogSettings()).day(entry.logged_at)
            groups.setdefault((entry.model, day), []).append(entry)
        for (model, day), group in groups.items():
            rows = sum(len(e.rows) for e in group)
            self._sequence += 1
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
            key = f"{model}/{FOLDER}/{day}/{stamp}-{os.getpid()}-{self._sequence:06d}.parquet"
            try:
                self._write_bytes(key, part_bytes(group))
            except Exception as exc:  # noqa: BLE001 - the log never stops predictions: counted, said
                self._counted(model, "dropped", rows)
                self._warn(f"the prediction log could not write {rows} row(s) of {model}: {type(exc).__name__}: {exc}")
                continue
            self._counted(model, "written", rows)

    def _prune(self) -> None:
        """Delete the day folders older than each model's ``retention_days``, when the server starts
        and then hourly by the clock (a failure is warned about and tried again an hour later)."""
        now = self.clock()
        if self._delete_tree is None or (
            self._pruned_at is not None and abs((now - self._pruned_at).total_seconds()) < PRUNE_EVERY_S
        ):
            return
        self._pruned_at = now
        for model, chosen in self.settings.items():
            first_kept = chosen.first_kept(now)
            if first_kept is None:
                continue
            try:
                for day in self._list_children(f"{model}/{FOLDER}"):
                    if len(day) == 10 and day < first_kept:
                        self._delete_tree(f"{model}/{FOLDER}/{day}")
                        logger.info(
                            f"prediction log of {model}: deleted {day} (retention_days {chosen.retention_days})"
                        )
            except Exception as exc:  # noqa: BLE001 - retention never stops the log: said, tried again
                self._warn(f"the prediction log's retention could not delete old days of {model}: {exc}")

    def _warn(self, message: str) -> None:
        """A warning at most every 10 s (a full disk would otherwise warn on every flush)."""
        now = time.monotonic()
        if now - self._warned_at >= 10:
            self._warned_at = now
            logger.warning(message)


def part_frame(entries: list[Entry]) -> pd.DataFrame:
    """The log's rows of some answered requests: its own columns, then the rows' and probabilities.
    Built column by column for the whole part (one frame per request would cost the writer thread,
    which holds the GIL the request path needs, milliseconds per request)."""
    counts = np.fromiter((len(e.rows) for e in entries), dtype="int64", count=len(entries))
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    own = pd.DataFrame(
        {
            "request_id": np.repeat(np.array([e.request_id for e in entries], dtype=object), counts),
            "row": np.arange(int(counts.sum()), dtype="int64") - starts,
            "logged_at": pd.Series(
                np.repeat(pd.DatetimeIndex([e.logged_at for e in entries]).as_unit("us"), counts),
                dtype="datetime64[us, UTC]",
            ),
            "model": np.repeat(np.array([e.model for e in entries], dtype=object), counts),
            "version": np.repeat(np.array([e.version for e in entries], dtype=object), counts),
            "role": np.repeat(np.array([e.role for e in entries], dtype=object), counts),
            "answered": np.repeat(np.array([e.answered for e in entries], dtype=bool), counts),
            "latency_ms": np.repeat(np.array([e.latency_ms for e in entries], dtype="float64"), counts),
            "prediction": _joined([np.asarray(e.predictions) for e in entries]),
            "refused": pd.Series(
                np.repeat(np.array([e.refused for e in entries], dtype=object), counts), dtype="string"
            ),
        }
    )
    parts = [own]
    # A refusal's rows have no columns: empty there. (A planned request's names, not its columns: those are built.)
    if any(len(e.rows.names if isinstance(e.rows, PlannedRows) else e.rows.columns) for e in entries):
        rows = _feature_rows(entries)
        parts.append(rows.rename(columns={c: f"{c} (feature)" for c in rows.columns if c in COLUMNS}))
    probabilities = [e.probabilities for e in entries]
    if any(p is not None for p in probabilities):
        proba = _stacked(probabilities, entries)
        parts.append(proba.set_axis([f"proba_{c}" for c in proba.columns], axis=1))
    return pd.concat(parts, axis=1)


def _stacked(probabilities: list[Any], entries: list[Entry]) -> pd.DataFrame:
    """Every entry's probabilities, one below the other: as one array when all have the same classes
    (the common case: a concat of hundreds of one-row frames costs the writer thread tens of ms)."""
    first = probabilities[0]
    # Each distinct columns object compared once (a rollout's two models have one each; an Index's
    # equals per entry cost the writer thread a third of its time under a shadow).
    distinct = {id(p.columns): p.columns for p in probabilities if p is not None}
    same = all(p is not None for p in probabilities) and all(
        c is first.columns or c.equals(first.columns) for c in distinct.values()
    )
    if same:
        return pd.DataFrame(np.vstack([p.to_numpy() for p in probabilities]), columns=first.columns)
    blanks = [
        (p if isinstance(p, pd.DataFrame) else p.frame()) if p is not None else pd.DataFrame(index=range(len(e.rows)))
        for p, e in zip(probabilities, entries)
    ]
    return pd.concat(blanks, ignore_index=True)


def _frame_of(rows: pd.DataFrame | PlannedRows) -> pd.DataFrame:
    return rows.frame() if isinstance(rows, PlannedRows) else rows


def _feature_rows(entries: list[Entry]) -> pd.DataFrame:
    """Every entry's checked rows, one below the other: column by column when all were planned
    (``row_plan``: a few arrays per request), else as frames."""
    first = entries[0].rows
    if isinstance(first, PlannedRows) and all(
        isinstance(e.rows, PlannedRows)
        and (e.rows.names is first.names or e.rows.names == first.names)
        and e.rows.number_names == first.number_names
        for e in entries
    ):
        # Plans of the same columns and kinds: the numeric blocks stacked at once, the others one by one.
        numbers = np.vstack([e.rows.numbers for e in entries])
        found = {n: numbers[:, j] for j, n in enumerate(first.number_names)}
        found.update({c: np.concatenate([e.rows.others[c] for e in entries]) for c in first.others})
        return pd.DataFrame({name: found[name] for name in first.names})
    return pd.concat([_frame_of(e.rows) for e in entries], ignore_index=True)


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """One column of every request's values (numbers stay numbers; a refusal's None makes it object)."""
    return np.concatenate(arrays) if arrays else np.array([], dtype=object)


def part_bytes(entries: list[Entry]) -> bytes:
    """The parquet bytes of a part. A column parquet cannot take as it is (text and numbers mixed in
    one column of rows the signature let through) is written as text rather than losing the part."""
    frame = part_frame(entries)
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False)
    except (TypeError, ValueError, ArrowException):
        mixed = [c for c in frame.columns if frame[c].dtype == object]
        frame[mixed] = frame[mixed].map(lambda v: None if v is None or v is pd.NA or v != v else str(v))
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def read_log(read_bytes: Callable[[str], bytes], list_children: Callable[[str], list[str]], model: str) -> pd.DataFrame:
    """Every logged row of ``model``, all days, oldest first (``traffic.read_day`` of each day)."""
    from ml_platform import traffic

    days = traffic.logged_days(list_children, model)
    frames = [traffic.read_day(read_bytes, list_children, model, day) for day in days]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))
