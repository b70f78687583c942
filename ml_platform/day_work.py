"""The per-day work of raw_data, on every core for a range of days.

``ingest_day`` reads a day's landing file, hashes and parses it, stores it and checks it against
the run's data contract; the raw_data checks step finds that result (``recall_checked``) and hands
only the days it lacks to ``check_day``. A single-run backfill (``--partition-range``) spreads the
days over the step's process and worker processes (``each_day``). Only small results come back
(counts, a preview, the rule results), and the steps turn them into Dagster events. Parsing and
validating on threads were bound by the GIL; processes use every core.

This module imports pandas and pyarrow, never Dagster or scikit-learn: a worker's whole start is
``import ml_platform.day_work`` (about 0.5 s). Workers are spawned, never forked: the step's
process may hold OpenMP and Arrow thread pools, which a fork does not carry over safely. One pool
serves every range of the process (both steps of a run, and later runs of a long-lived process),
sized by the cores this process may use and by the memory available.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from ml_platform import constants
from ml_platform.errors import CorruptLandingFileError, EmptyLandingFileError, MlPlatformError
from ml_platform.quality.results import RuleResult
from ml_platform.quality.rules import Contract, evaluate
from ml_platform.quality.schema import Schema
from ml_platform.storage import atomic_write

# What one worker holds beyond its imports, per MB of the landing file it parses (the parsed
# frame, the parquet being written, Arrow's buffers), and what its imports take.
_WORKER_BASE_MB = 150
_WORKER_MB_PER_FILE_MB = 12


def parse_landing_bytes(data: bytes, location: str) -> pd.DataFrame:
    """Parse one landing file's bytes by its extension; raise a typed error that names the file."""
    return _parse(data, location)[0]


def _parse(data: bytes, location: str) -> tuple[pd.DataFrame, bool]:
    """(the frame, whether it is the file's own table as is: a parquet file of a plain 0..n-1 index).

    A parquet file written by pandas keeps a named index (``df.set_index("customer_id")``): that
    index is data, and becomes columns again (first, as pandas' reset_index makes them) instead of
    being lost when the day is stored. An unnamed index (a filtered frame's row numbers) is not."""
    if not data:
        raise EmptyLandingFileError(f"landing file {location} is empty (0 bytes)")
    try:
        if not location.endswith(".parquet"):
            return pd.read_csv(io.BytesIO(data)), False
        frame = pd.read_parquet(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError, pd.errors.ParserError) as exc:
        # pandas raises EmptyDataError (a ValueError) for a CSV with no header either.
        if isinstance(exc, pd.errors.EmptyDataError):
            raise EmptyLandingFileError(f"landing file {location} has no header and no rows") from exc
        raise CorruptLandingFileError(f"landing file {location} cannot be read: {exc}") from exc
    index = frame.index
    if any(name is not None for name in index.names):
        return frame.reset_index(), False
    if not isinstance(index, pd.RangeIndex) or index.start != 0 or index.step != 1:
        return frame.reset_index(drop=True), False
    return frame, True


# -- what comes back -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DaySummary:
    """What raw_data's metadata shows of one day: counts and the first rows (which carry the
    column types too)."""

    rows: int
    nulls: dict[str, int]
    head: pd.DataFrame

    @classmethod
    def of(cls, frame: pd.DataFrame) -> DaySummary:
        return cls(
            rows=len(frame),
            nulls={str(c): int(n) for c, n in frame.isna().sum().items()},
            head=frame.head(constants.PREVIEW_ROWS),
        )


@dataclass(frozen=True)
class IngestedDay:
    """One landing file, read, stored and summarized (and checked, when a contract was given)."""

    day: str
    sha256: str
    size: int
    summary: DaySummary
    checked: CheckedDay | None = None


@dataclass(frozen=True)
class DayContract:
    """What ``check_day`` checks a day against: the data contract's arguments, and the drift
    reference (the production model's training-data profile) when drift is checked."""

    target: str
    schema: Schema | None
    contract: Contract
    task: str
    drift_reference: dict[str, Any] | None = None
    drift_method: str = "psi"
    drift_limit: float = 0.0


@dataclass(frozen=True)
class CheckedDay:
    day: str
    results: list[RuleResult]
    drift_rows: list[dict[str, Any]] | None = field(default=None)


# -- the work of one day ---------------------------------------------------------------------------
def ingest_day(day: str, source: str, destination: str, contract: DayContract | None = None) -> IngestedDay:
    """Read the landing file ``source`` (a local path), store it as parquet at ``destination``
    (atomically: temp file + rename), summarize it and, given a ``contract``, check it (the
    checks step then finds the result with ``recall_checked`` instead of reading the day again).

    A parquet landing file that parses to a frame with a plain 0..n-1 index is stored as its own
    bytes: reading them back gives exactly the frame parsed here, and nothing is encoded again
    (encoding is most of a day's cost). Other files (CSV, a frame with a stored index) are
    written with ``to_parquet``, as the IO manager does."""
    try:
        with open(source, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise CorruptLandingFileError(f"landing file {source} cannot be read: {exc}") from exc
    frame, as_is = _parse(data, source)
    if as_is:
        atomic_write(destination, lambda handle: handle.write(data))
    else:
        atomic_write(destination, lambda handle: frame.to_parquet(handle, index=False))
    return IngestedDay(
        day=day,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        summary=DaySummary.of(frame),
        checked=check_day(day, frame, contract) if contract is not None else None,
    )


def check_day(day: str, stored: str | pd.DataFrame, contract: DayContract) -> CheckedDay:
    """The data contract (and drift, when the contract carries a reference) on one stored day:
    a parquet file's path, or the frame itself."""
    frame = pd.read_parquet(stored) if isinstance(stored, str) else stored
    results = evaluate(frame, contract.target, contract.schema, contract.contract, contract.task)
    drift_rows = None
    if contract.drift_reference is not None:
        from ml_platform import drift

        drift_rows = drift.compare(contract.drift_reference, frame, contract.drift_method, contract.drift_limit)
    return CheckedDay(day=day, results=results, drift_rows=drift_rows)


# -- results kept for the checks step --------------------------------------------------------------
# {stored file identity: (contract, CheckedDay)}: a day checked while it was ingested, kept in
# this process for the checks step of the same run (the in-process executor runs both here).
_CHECKED: dict[tuple, tuple[DayContract, CheckedDay]] = {}
_CHECKED_LIMIT = 1000


def _identity(path: str) -> tuple | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def remember_checked(path: str, contract: DayContract, checked: CheckedDay) -> None:
    """Keep ``checked`` (the result of ``contract`` on the day stored at ``path``) for
    ``recall_checked``."""
    identity = _identity(path)
    if identity is None:
        return
    if len(_CHECKED) >= _CHECKED_LIMIT:
        _CHECKED.clear()
    _CHECKED[identity] = (contract, checked)


def recall_checked(path: str, contract: DayContract) -> CheckedDay | None:
    """The result kept for the day stored at ``path`` if the file is still the one that was
    checked (same inode, size and modification time) and the contract is the same; else None."""
    kept = _CHECKED.get(_identity(path) or ())
    if kept is None or kept[0] != contract:
        return None
    return kept[1]


# -- the pool --------------------------------------------------------------------------------------
_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's or a pinning's
    limit shows), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _available_mb() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def processes_for(days: int, largest_file_bytes: int) -> int:
    """How many processes (this one and its workers) a range of ``days`` gets: one per day, at most
    one per usable core, and no more than the available memory holds (0 or 1: this process alone).
    A daemonic process (a Celery prefork worker) may not start processes: none there."""
    if multiprocessing.current_process().daemon:
        return 0
    count = min(days, usable_cores())
    available = _available_mb()
    if available is not None:
        per_worker = _WORKER_BASE_MB + _WORKER_MB_PER_FILE_MB * largest_file_bytes / 2**20
        count = min(count, int(available * 0.5 // per_worker))
    return max(count, 0)


@contextlib.contextmanager
def _main_not_rerun() -> Iterator[None]:
    """While workers start: do not run this process's main script again in each of them.

    A spawned process re-executes the parent's ``__main__`` file (as ``__mp_main__``) unless the
    parent's main was run as a module. Here the main is the ``dagster`` console script, a code
    server or pytest: re-running it imports Dagster's CLI in every worker (about 1 s) for nothing,
    since the work functions live in this importable module. A main named ``__main__`` by its spec
    is the case multiprocessing skips.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    import importlib.machinery

    main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    try:
        yield
    finally:
        main.__spec__ = None


def _pool(size: int) -> ProcessPoolExecutor:
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < size:
            if _POOL is not None:
                _POOL.shutdown(wait=False, cancel_futures=True)
            _POOL = ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn"))
            _POOL_SIZE = size
        return _POOL


def _drop_pool() -> None:
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown(wait=False, cancel_futures=True)
        _POOL, _POOL_SIZE = None, 0


def each_day(
    work: Callable[..., Any],
    jobs: Sequence[tuple],
    processes: int,
    done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``work(*job)`` for every job on ``processes`` processes: this one and ``processes - 1``
    workers (all in this process when fewer than 2), results in the jobs' order.

    The workers take jobs from the front; this process, idle otherwise, takes them from the back
    while the workers start (a spawned worker spends about 0.5 s importing pandas before its first
    job) and until they reach the jobs it has left. ``done(number, result)`` is called in this
    process as each job finishes (for progress). The first job that raises stops the rest, and its
    error is raised as it was (the typed errors of this package pickle as themselves, without the
    worker's traceback)."""
    results: list[Any] = [None] * len(jobs)
    finished = 0

    def finish(index: int, result: Any) -> None:
        nonlocal finished
        results[index] = result
        finished += 1
        if done:
            done(finished, result)

    if processes < 2 or len(jobs) < 2:
        for index, job in enumerate(jobs):
            finish(index, work(*job))
        return results

    pool = _pool(processes - 1)
    with _main_not_rerun():
        futures = [pool.submit(work, *job) for job in jobs]
    try:
        for index in reversed(range(len(jobs))):
            if not futures[index].cancel():  # a worker has it: the rest are theirs
                break
            finish(index, work(*jobs[index]))
        _collect({future: index for index, future in enumerate(futures) if not future.cancelled()}, finish)
        return results
    except BrokenProcessPool as exc:
        _drop_pool()  # a worker died (killed, out of memory): the next range starts a new pool
        raise MlPlatformError(f"a worker process of this range of days died: {exc}") from exc
    finally:
        for future in futures:
            future.cancel()


def _collect(pending: dict, finish: Callable[[int, Any], None]) -> None:
    """Each worker's result as it finishes (``pending``: {future: job index}); the first error is
    raised as it was."""
    from concurrent.futures import FIRST_COMPLETED, wait

    while pending:
        completed, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in completed:
            index = pending.pop(future)
            error = future.exception()
            if error is not None:
                if isinstance(error, MlPlatformError):
                    # A typed error says what is wrong; the worker's traceback (attached as its
                    # cause) would only bury that sentence. Other errors keep it: a bug.
                    error.__cause__ = None
                raise error
            finish(index, future.result())
