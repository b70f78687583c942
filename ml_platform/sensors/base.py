"""What every sensor of a pipeline shares: the one decorator factory (name, interval, job, default
status), the run request of a pipeline's run, the tick's result, and the "new or changed file" walk
of a landing folder."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from ml_platform import constants
from ml_platform.resources.landing_zone import LandingZone
from ml_platform.runtime import PipelineRuntime


def sensor_name(pipeline: PipelineRuntime, kind: str) -> str:
    """``<pipeline>_<kind>``: churn_landing_zone_sensor, churn_decay_sensor …"""
    return f"{pipeline.name}_{kind}"


def pipeline_sensor(
    pipeline: PipelineRuntime,
    kind: str,
    description: str,
    *,
    jobs: list[UnresolvedAssetJobDefinition] | None = None,
    running: bool = False,
    interval_s: int | None = None,
) -> Callable:
    """The decorator of one of a pipeline's sensors: named ``sensor_name(pipeline, kind)``, ticking
    every ``pipeline.settings.sensor_interval_s`` (or ``interval_s``), stopped until turned on unless
    ``running`` (the sensors that only announce or chain runs start running)."""
    targets = {} if not jobs else ({"job": jobs[0]} if len(jobs) == 1 else {"jobs": jobs})
    return dg.sensor(
        **targets,
        name=sensor_name(pipeline, kind),
        minimum_interval_seconds=interval_s or pipeline.settings.sensor_interval_s,
        description=description,
        default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
    )


def run_request(
    pipeline: PipelineRuntime,
    run_key: str,
    day: str | dg.MultiPartitionKey,
    trigger: str,
    assets: list[dg.AssetKey] | None = None,
    *,
    job_name: str | None = None,
    fingerprint: str | None = None,
) -> dg.RunRequest:
    """A run of the pipeline for one partition (of ``assets``, or all of the sensor's job), tagged
    with what triggered it (and the file's fingerprint, for a run a landing file started)."""
    tags = {constants.TRIGGER_TAG: trigger, constants.PIPELINE_TAG: pipeline.name}
    if fingerprint is not None:
        tags[constants.FINGERPRINT_TAG] = fingerprint
    return dg.RunRequest(run_key=run_key, partition_key=day, asset_selection=assets, job_name=job_name, tags=tags)


def tick_result(requests: list[dg.RunRequest], cursor: str, skip_reason: str) -> dg.SensorResult:
    """The runs of a tick with its cursor, or, with none, why it skipped."""
    if not requests:
        return dg.SensorResult(skip_reason=skip_reason, cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)


def files_of_partitions(pipeline: PipelineRuntime, landing_zone: LandingZone) -> list:
    """The landing zone's files (names and stat only) whose day is a partition of the pipeline: a
    file for today (or later) waits until its day has ended and its partition exists."""
    last_partition = pipeline.partitions.get_last_partition_key()
    first_partition = pipeline.partitions.get_first_partition_key()
    return [
        f
        for f in landing_zone.list_files()
        if first_partition and last_partition and first_partition <= f.day <= last_partition
    ]


def changed_files(files: list, seen: dict[str, str]) -> list:
    """The files that are new or changed since ``seen`` ({day: fingerprint}), which records them."""
    changed = [f for f in files if seen.get(f.day) != f.fingerprint]
    seen.update({f.day: f.fingerprint for f in changed})
    return changed


def of_present(seen: dict[str, str], files: list) -> dict[str, str]:
    """``seen`` without the days whose file is gone (a cursor stays the size of the landing)."""
    present = {f.day for f in files}
    return {day: fingerprint for day, fingerprint in seen.items() if day in present}
