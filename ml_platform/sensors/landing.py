"""The landing sensor: each new or corrected landing file starts an ingest run of its day; then one
retraining run for the newest day that passed its checks."""

from __future__ import annotations

import hashlib
import json

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from ml_platform import constants
from ml_platform.instance_queries import check_verdicts, runs_in_flight
from ml_platform.jobs import retrain_keys
from ml_platform.resources.landing_zone import LandingZone
from ml_platform.runtime import PipelineRuntime
from ml_platform.sensors.base import files_of_partitions, pipeline_sensor, run_request, tick_result
from ml_platform.sensors.cursors import LandingCursor


def build_landing_sensor(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @pipeline_sensor(
        pipeline,
        "landing_zone_sensor",
        f"Ingests each new or changed landing file of {pipeline.name}, then retrains on the newest day once.",
        jobs=[job],
    )
    def landing_zone_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZone):
        return _landing_tick(context, pipeline, landing_zone.at(pipeline.spec.landing))

    return landing_zone_sensor


def _landing_tick(context: dg.SensorEvaluationContext, pipeline: PipelineRuntime, landing_zone: LandingZone):
    """One tick: list the landing zone (names and stat only) and compare with the cursor.

    - Each day whose file is new or whose fingerprint (size + mtime locally, ETag + size on S3)
      changed gets an ingest run of `raw_data` for that day; run_key = day + fingerprint, so a file
      never triggers twice and a corrected file triggers again.
    - Once no ingest run is in flight, one retraining run (`training_data` and downstream) for the
      newest day whose checks passed, so a late correction of an old day reaches production too;
      none when no newly ingested day passed its checks (that day's failed run has already said
      why: one alert per bad file, not a second one from a retraining run bound to fail).
    """
    cursor = LandingCursor.load(context.cursor)
    files = files_of_partitions(pipeline, landing_zone)
    requests, seen = _ingest_requests(pipeline, files, cursor.files)
    present = {f.day for f in files}
    pending = [day for day in cursor.pending if day in present]
    skip_reason = "no new or changed landing files"
    if requests and files:
        pending = sorted(set(pending) | {r.partition_key for r in requests})  # ingest first; retrain later
    elif pending:
        retrain, skip_reason, waiting = _retrain_request(context, pipeline, pending, present, seen)
        if retrain is not None:
            requests.append(retrain)
        if not waiting:
            pending = []
    return tick_result(requests, LandingCursor(seen, pending).dump(), skip_reason)


def _ingest_requests(pipeline: PipelineRuntime, files: list, seen: dict[str, str]) -> tuple[list, dict[str, str]]:
    """(an ingest run request for each file whose fingerprint is new, the fingerprints now seen of
    the files present)."""
    seen = dict(seen)
    requests = []
    for landing_file in files:
        if seen.get(landing_file.day) == landing_file.fingerprint:
            continue
        requests.append(
            run_request(
                pipeline,
                f"ingest:{landing_file.day}:{landing_file.fingerprint}",
                landing_file.day,
                constants.LANDING_INGEST_TRIGGER,
                [pipeline.key("raw_data")],
                fingerprint=landing_file.fingerprint,
            )
        )
        seen[landing_file.day] = landing_file.fingerprint
    present = {f.day for f in files}
    return requests, {day: fp for day, fp in seen.items() if day in present}


def _retrain_request(
    context: dg.SensorEvaluationContext,
    pipeline: PipelineRuntime,
    pending: list[str],
    present: set[str],
    seen: dict[str, str],
) -> tuple[dg.RunRequest | None, str, bool]:
    """(the retraining run for the newest day that passed its checks, or None; why not; whether the
    pending days wait for ingest runs still in flight): none when no pending day passed."""
    in_flight = runs_in_flight(
        context.instance,
        {constants.TRIGGER_TAG: constants.LANDING_INGEST_TRIGGER, constants.PIPELINE_TAG: pipeline.name},
    )
    if in_flight:
        reason = f"waiting for {in_flight} ingest run(s) before retraining"
        context.log.info(reason)
        return None, reason, True
    day, reason = _day_to_retrain(context.instance, pipeline, pending, present)
    if day is None:
        context.log.info(reason)
        return None, reason, False
    state = hashlib.sha256(json.dumps(sorted(seen.items())).encode()).hexdigest()[:16]
    trigger = constants.LANDING_RETRAIN_TRIGGER
    return run_request(pipeline, f"retrain:{day}:{state}", day, trigger, retrain_keys(pipeline)), "", False


def _day_to_retrain(
    instance: dg.DagsterInstance, pipeline: PipelineRuntime, ingested: list[str], present: set[str]
) -> tuple[str | None, str]:
    """(the newest day with a landing file whose raw_data checks passed, or None; why not). None
    unless one of the ``ingested`` days passed: a bad file's failed ingest run is its one alert."""
    verdicts = check_verdicts(instance, pipeline, ingested)
    passed = [day for day in ingested if verdicts.get(day) == []]
    if not passed:
        failed = [f"{day} ({', '.join(verdicts[day]) if verdicts.get(day) else 'not checked'})" for day in ingested]
        return None, f"no retraining: no newly ingested day passed its checks: {'; '.join(failed)}"
    newer = sorted((day for day in present if day > max(passed)), reverse=True)
    newer_verdicts = check_verdicts(instance, pipeline, newer) if newer else {}
    return next((day for day in newer if newer_verdicts.get(day) == []), max(passed)), ""
