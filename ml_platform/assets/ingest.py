"""raw_data: one day's landing file per partition."""

import datetime as dt
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace

import dagster as dg
import pandas as pd

from ml_platform import constants, day_work
from ml_platform.checks.data_quality import day_contract, run_config_of_checks
from ml_platform.day_work import DayContract, DaySummary
from ml_platform.errors import LandingFileError, MlPlatformError, StorageAccessError
from ml_platform.metadata import column_schema, frame_table, rows_table
from ml_platform.resources.landing_zone import LandingFile, LandingZone
from ml_platform.resources.model_store import ModelStore
from ml_platform.runtime import PipelineRuntime
from ml_platform.timeouts import stage_timeout

# The shortest time between two progress lines of a range run.
_PROGRESS_EVERY_S = 1.0


def _day_metadata(summary: DaySummary, landing_file: LandingFile) -> dict[str, object]:
    return {
        "dagster/row_count": summary.rows,
        "Columns": len(summary.head.columns),
        "dagster/column_schema": column_schema(summary.head),
        "Null counts": rows_table(
            [{"Column": c, "Nulls": n} for c, n in summary.nulls.items()],
            [("Column", "string"), ("Nulls", "int")],
        ),
        "Preview": frame_table(summary.head),
        "Source file": dg.MetadataValue.path(landing_file.location),
        "Fingerprint": landing_file.fingerprint,
        "Source size (bytes)": landing_file.size,
        "Source modified": dt.datetime.fromtimestamp(landing_file.modified, dt.UTC).isoformat(),
    }


def build_raw_data(pipeline: "PipelineRuntime") -> dg.AssetsDefinition:
    """raw_data of one pipeline: one day's landing file per partition."""

    @dg.asset(
        key=pipeline.key("raw_data"),
        **pipeline.asset_options("ingest", constants.DATA_OWNER),
        # One run can load a whole range of days (`--partition-range`), instead of a run per day.
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"pandas"},
        config_schema={},  # takes no config: any key given to it is refused before the run starts
        description=f"One day's batch of labelled rows of {pipeline.name}, read from its landing zone.",
    )
    def raw_data(context: dg.AssetExecutionContext, landing_zone: LandingZone, model_store: ModelStore):
        with stage_timeout(context, pipeline, "ingest"):
            return _ingest(
                context,
                landing_zone.at(pipeline.spec.landing),
                context.resources.io_manager,
                contract=lambda: _contract(context, pipeline, model_store),
            )

    return raw_data


def _bad_landing(exc: Exception) -> dg.Failure:
    # Bad input or refused credentials do not get better by retrying: fail now, naming the file.
    # Unreachable storage (StorageUnavailableError, ConnectionError) is raised as it is: retried.
    return dg.Failure(description=str(exc), allow_retries=False)


def _contract(context: dg.AssetExecutionContext, pipeline: PipelineRuntime, model_store: ModelStore):
    """The contract the raw_data checks of this run will apply, so that each day is checked where
    it is parsed; None if it cannot be had here (the checks step then reads and checks the days
    itself, and reports what is wrong with the model store)."""
    try:
        production = pipeline.production(model_store)
        return day_contract(pipeline, model_store, production, run_config_of_checks(context, pipeline))[0]
    except (MlPlatformError, OSError, ValueError) as exc:
        context.log.debug(f"the days are checked in the checks step: {exc}")
        return None


def _ingest(
    context: dg.AssetExecutionContext,
    landing_zone: LandingZone,
    io_manager,
    contract: Callable[[], DayContract | None] = lambda: None,
):
    """Read, check and store the run's days. When the landing zone and the asset storage are
    local folders, each day is read and stored by ``day_work.ingest_day`` (a range of days in
    worker processes, when there are cores for it), and the step returns a MaterializeResult:
    the IO manager stores nothing again. Otherwise (S3) the days are read on a thread per core
    and handed to the IO manager. Either way each day's materialization gets that day's metadata."""
    days = list(context.partition_keys)
    try:
        files = {day: landing_zone.find(day) for day in days}
    except (LandingFileError, StorageAccessError) as exc:
        raise _bad_landing(exc) from exc
    jobs = [(day, landing_zone.local_path(files[day]), io_manager.stored_path(context.asset_key, day)) for day in days]
    if all(source and destination for _, source, destination in jobs):
        processes = day_work.processes_for(len(days), max(f.size for f in files.values())) if len(days) > 1 else 0
        checked_against = contract()
        return _ingest_stored(context, files, [(*job, checked_against) for job in jobs], processes)
    return _ingest_read(context, landing_zone, files)


def _ingest_read(context: dg.AssetExecutionContext, landing_zone: LandingZone, found: dict[str, LandingFile]):
    days = list(found)
    frames: dict[str, pd.DataFrame] = {}
    files: dict[str, LandingFile] = {}

    def read(day: str) -> tuple[pd.DataFrame, LandingFile]:
        try:
            return landing_zone.read_file(found[day])
        except (LandingFileError, StorageAccessError) as exc:
            raise _bad_landing(exc) from exc

    # A range of days on S3 is read on a thread per core: transfers and parquet decoding release
    # the GIL.
    workers = max(1, min(len(days), day_work.usable_cores()))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(read, day): day for day in days}
        for number, future in enumerate(as_completed(futures), start=1):
            day = futures[future]
            frame, landing_file = future.result()
            frames[day], files[day] = frame, landing_file
            context.log.info(
                f"[{number}/{len(days)}] read {landing_file.location}: {len(frame)} rows, {len(frame.columns)} columns"
            )
    if len(days) == 1:
        day = days[0]
        return dg.Output(frames[day], metadata=_day_metadata(DaySummary.of(frames[day]), files[day]))
    for day in days:
        context.add_asset_metadata(_day_metadata(DaySummary.of(frames[day]), files[day]), partition_key=day)
    return dg.Output({day: frames[day] for day in days}, metadata={"Days in this run": len(days)})


def _ingest_stored(context, files: dict[str, LandingFile], jobs: list[tuple], processes: int):
    days = [job[0] for job in jobs]

    # Progress: about every tenth of the range, at most a line a second, and the last day (each
    # line is an event written to the instance's event log, in the step's process that works too).
    every = max(1, len(days) // 10)
    last_line = time.monotonic()

    def done(number: int, ingested: day_work.IngestedDay) -> None:
        nonlocal last_line
        now = time.monotonic()
        if number == len(days) or (number % every == 0 and now - last_line >= _PROGRESS_EVERY_S):
            last_line = now
            context.log.info(
                f"[{number}/{len(days)}] stored {files[ingested.day].location}: {ingested.summary.rows} rows,"
                f" {len(ingested.summary.head.columns)} columns"
            )

    if processes >= 2:
        context.log.info(
            f"ingesting {len(days)} days on {processes} processes (this one and {processes - 1}"
            f" spawned worker{'s' if processes > 2 else ''})"
        )
    try:
        ingested = day_work.each_day(day_work.ingest_day, jobs, processes, done=done)
    except LandingFileError as exc:
        raise _bad_landing(exc) from exc
    metadata = {}
    for (day, _, destination, contract), result in zip(jobs, ingested):
        metadata[day] = _day_metadata(result.summary, replace(files[day], size=result.size, sha256=result.sha256))
        if result.checked is not None:
            day_work.remember_checked(destination, contract, result.checked)
    stored_at = jobs[0][2] if len(jobs) == 1 else os.path.dirname(jobs[0][2])
    if len(days) == 1:
        return dg.MaterializeResult(metadata={**metadata[days[0]], "Stored at": dg.MetadataValue.path(stored_at)})
    for day in days:
        context.add_asset_metadata(metadata[day], partition_key=day)
    # The days are stored already: a MaterializeResult (no value) leaves the IO manager out.
    return dg.MaterializeResult(
        metadata={
            "Days in this run": len(days),
            "Processes": max(processes, 1),
            "Stored at": dg.MetadataValue.path(stored_at),
        }
    )
