"""Each pipeline's schedule (default 02:00): ingest the day that just ended, retrain, evaluate,
gate, deploy."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ml_platform import constants
from ml_platform.errors import LandingFileMissingError
from ml_platform.resources.landing_zone import LandingZone
from ml_platform.runtime import PipelineRuntime


def previous_day(moment: dt.datetime, timezone: str) -> str:
    """The day before ``moment`` in ``timezone``: the newest complete day at that moment."""
    local = moment.astimezone(ZoneInfo(timezone))
    return (local.date() - dt.timedelta(days=1)).isoformat()


def schedule_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_daily_training"


def build_schedule(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    cron = pipeline.spec.schedule.cron

    @dg.schedule(
        job=job,
        cron_schedule=cron,
        execution_timezone=pipeline.timezone,
        name=schedule_name(pipeline),
        description=f"At {cron} ({pipeline.timezone}) run {pipeline.name} for the day that just ended.",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def daily_training(context: dg.ScheduleEvaluationContext, landing_zone: LandingZone):
        """Skips (visibly, with the reason) when the day's landing file has not arrived."""
        day = previous_day(context.scheduled_execution_time, pipeline.timezone)
        try:
            landing_file = landing_zone.at(pipeline.spec.landing).find(day)
        except LandingFileMissingError as exc:
            return dg.SkipReason(str(exc))
        return dg.RunRequest(
            run_key=f"daily:{day}",
            partition_key=day,
            tags={
                constants.TRIGGER_TAG: "schedule",
                constants.FINGERPRINT_TAG: landing_file.fingerprint,
                constants.PIPELINE_TAG: pipeline.name,
            },
        )

    return daily_training
