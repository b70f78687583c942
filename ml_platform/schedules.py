"""The daily schedule: at 02:00 ingest the day that just ended, retrain, evaluate, gate, deploy."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from ml_platform import constants
from ml_platform.errors import LandingFileMissingError
from ml_platform.jobs import training_pipeline_job
from ml_platform.resources.landing_zone import LandingZone
from ml_platform.settings import load_settings

_settings = load_settings()


def previous_day(moment: dt.datetime, timezone: str) -> str:
    """The day before ``moment`` in ``timezone``: the newest complete day at that moment."""
    local = moment.astimezone(ZoneInfo(timezone))
    return (local.date() - dt.timedelta(days=1)).isoformat()


@dg.schedule(
    job=training_pipeline_job,
    cron_schedule=constants.DAILY_SCHEDULE_CRON,
    execution_timezone=_settings.timezone,
    name="daily_training",
    description="At 02:00 (ML_PLATFORM_TIMEZONE) run the pipeline for the day that just ended.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def daily_training(context: dg.ScheduleEvaluationContext, landing_zone: LandingZone):
    """Skips (visibly, with the reason) when the day's landing file has not arrived."""
    day = previous_day(context.scheduled_execution_time, _settings.timezone)
    try:
        landing_file = landing_zone.find(day)
    except LandingFileMissingError as exc:
        return dg.SkipReason(str(exc))
    return dg.RunRequest(
        run_key=f"daily:{day}",
        partition_key=day,
        tags={constants.TRIGGER_TAG: "schedule", constants.FINGERPRINT_TAG: landing_file.fingerprint},
    )
