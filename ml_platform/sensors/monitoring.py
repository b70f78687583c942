"""The loop back from production (``monitoring``, ``feedback``): the served sensor reads each ended
day of the prediction log into served[day] (and the day's live_metrics); the feedback sensor
ingests each outcome file into outcomes[day], then scores live_metrics again for the days the
labels are about."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from ml_platform import clock, traffic
from ml_platform.asset_records import OutcomesRecord
from ml_platform.instance_queries import materializations_after
from ml_platform.jobs import monitoring_asset_names
from ml_platform.resources.landing_zone import LandingZone
from ml_platform.resources.model_store import ModelStore
from ml_platform.runtime import PipelineRuntime
from ml_platform.sensors.base import (
    changed_files,
    files_of_partitions,
    of_present,
    pipeline_sensor,
    run_request,
    tick_result,
)
from ml_platform.sensors.cursors import FeedbackCursor, FilesCursor

# Days older than this (after their end and grace) are not listed again: a part that late is rare,
# and a year of days would otherwise be listed on every tick.
SERVED_RECHECK = dt.timedelta(days=3)


def build_served_sensor(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Materializes served[day] once the day has ended (plus monitoring.grace_minutes), and again
    when a part of the day arrives later (run_key = day + the fingerprint of its parts)."""
    grace = dt.timedelta(minutes=pipeline.spec.monitoring.grace_minutes)
    model = pipeline.model_name
    # With feedback, the day's live metrics too (on the outcomes that have arrived so far); with a
    # watched rollout, the day's rollout evidence.
    selection = [
        pipeline.key(n) for n in ("served", "live_metrics", "rollout") if n in monitoring_asset_names(pipeline)
    ]

    @pipeline_sensor(
        pipeline,
        "served_sensor",
        f"Reads each ended day of {model}'s prediction log into served (again when late parts arrive).",
        jobs=[job],
    )
    def served_sensor(context: dg.SensorEvaluationContext, model_store: ModelStore):
        done = FilesCursor.load(context.cursor).seen
        now = clock.now()  # ML_PLATFORM_CLOCK fixes it in tests
        requests = []
        first = pipeline.partitions.start.date().isoformat()
        days = [day for day in traffic.logged_days(model_store.list_children, model) if day >= first]
        for day in days:
            _, end = traffic.day_bounds(day, pipeline.timezone)
            if end + grace > now or (day in done and end + grace + SERVED_RECHECK < now):
                continue
            keys = traffic.parts_of_day(model_store.list_children, model, day)
            parts_print = traffic.fingerprint(keys)
            if not keys or done.get(day) == parts_print:
                continue
            requests.append(run_request(pipeline, f"served:{day}:{parts_print}", day, "served", selection))
            done[day] = parts_print
        cursor = FilesCursor({day: fp for day, fp in done.items() if day in days}).dump()
        return tick_result(requests, cursor, f"no ended day of {model}'s prediction log to read")

    return served_sensor


def build_feedback_sensor(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Ingests each new or changed outcome file into outcomes[day] (run_key = day + fingerprint);
    after each outcomes materialization, re-materializes live_metrics of the days its labels
    belong to (late labels reach the days they are about)."""
    location = pipeline.spec.feedback.landing
    outcomes_key = pipeline.key("outcomes")
    # The late labels reach the days' live metrics, and their rollout evidence.
    rescored = [pipeline.key(n) for n in ("live_metrics", "rollout") if n in monitoring_asset_names(pipeline)]

    @pipeline_sensor(
        pipeline,
        "feedback_sensor",
        f"Reads each new outcome file of {location} into outcomes, then re-scores live_metrics of the days the"
        " labels belong to.",
        jobs=[job],
    )
    def feedback_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZone):
        cursor = FeedbackCursor.load(context.cursor)
        files = files_of_partitions(pipeline, landing_zone.at(location))
        requests = [
            run_request(pipeline, f"outcomes:{f.day}:{f.fingerprint}", f.day, "feedback", [outcomes_key])
            for f in changed_files(files, cursor.files)
        ]
        for record in materializations_after(context.instance, outcomes_key, cursor.after):
            cursor.after = record.storage_id
            for day in OutcomesRecord.from_metadata(record.asset_materialization.metadata).days_labelled:
                run_key = f"live:{day}:{record.storage_id}"
                requests.append(run_request(pipeline, run_key, day, "late labels", rescored))
        cursor.files = of_present(cursor.files, files)
        return tick_result(requests, cursor.dump(), f"no new outcome file in {location}")

    return feedback_sensor
