"""raw_data: one day's landing file per partition."""

import datetime as dt
import os
from concurrent.futures import ThreadPoolExecutor, as_completed

import dagster as dg
import pandas as pd

from ml_platform import constants
from ml_platform.errors import LandingFileError, StorageAccessError
from ml_platform.metadata import column_schema, frame_table, rows_table
from ml_platform.runtime import PipelineRuntime
from ml_platform.resources.landing_zone import LandingFile, LandingZone
from ml_platform.timeouts import stage_timeout


def _day_metadata(frame: pd.DataFrame, landing_file: LandingFile) -> dict[str, object]:
    nulls = frame.isna().sum()
    return {
        "dagster/row_count": len(frame),
        "Columns": len(frame.columns),
        "dagster/column_schema": column_schema(frame),
        "Null counts": rows_table(
            [{"Column": str(c), "Nulls": int(n)} for c, n in nulls.items()],
            [("Column", "string"), ("Nulls", "int")],
        ),
        "Preview": frame_table(frame.head(constants.PREVIEW_ROWS)),
        "Source file": dg.MetadataValue.path(landing_file.location),
        "Fingerprint": landing_file.fingerprint,
        "Source size (bytes)": landing_file.size,
        "Source modified": dt.datetime.fromtimestamp(landing_file.modified, dt.timezone.utc).isoformat(),
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
    def raw_data(context: dg.AssetExecutionContext, landing_zone: LandingZone):
        with stage_timeout(context, pipeline, "ingest"):
            return _ingest(context, landing_zone.at(pipeline.spec.landing))

    return raw_data


def _ingest(context: dg.AssetExecutionContext, landing_zone: LandingZone):
    days = list(context.partition_keys)
    frames: dict[str, pd.DataFrame] = {}
    files: dict[str, LandingFile] = {}

    def read(day: str) -> tuple[pd.DataFrame, LandingFile]:
        try:
            return landing_zone.read(day)
        except (LandingFileError, StorageAccessError) as exc:
            # Bad input or refused credentials do not get better by retrying: fail now, naming
            # the file. Unreachable storage (StorageUnavailableError, ConnectionError) is retried.
            raise dg.Failure(description=str(exc), allow_retries=False) from exc

    # A range of days (a single-run backfill) is read in parallel: parquet decoding and file
    # reads release the GIL.
    workers = max(1, min(len(days), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(read, day): day for day in days}
        for number, future in enumerate(as_completed(futures), start=1):
            day = futures[future]
            frame, landing_file = future.result()
            frames[day], files[day] = frame, landing_file
            context.log.info(
                f"[{number}/{len(days)}] read {landing_file.location}: {len(frame)} rows,"
                f" {len(frame.columns)} columns"
            )
    frames = {day: frames[day] for day in days}

    if len(days) == 1:
        day = days[0]
        return dg.Output(frames[day], metadata=_day_metadata(frames[day], files[day]))

    # A range run records one materialization per day with this summary.
    summary = [
        {
            "Day": day,
            "Rows": len(frames[day]),
            "Columns": len(frames[day].columns),
            "Fingerprint": files[day].fingerprint,
            "Source file": files[day].location,
        }
        for day in days
    ]
    return dg.Output(
        frames,
        metadata={
            "Days": len(days),
            "Total rows": sum(len(f) for f in frames.values()),
            "Files": rows_table(
                summary,
                [("Day", "string"), ("Rows", "int"), ("Columns", "int"), ("Fingerprint", "string"),
                 ("Source file", "string")],
            ),
        },
    )
