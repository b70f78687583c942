"""The daily schedule, evaluated as the daemon would at a fixed tick."""

import datetime as dt

import dagster as dg
import pytest

from ml_platform import constants
from ml_platform.backends.local import LocalLandingZone
from ml_platform.definitions import defs
from ml_platform.schedules import previous_day
from ml_platform.settings import load_settings
from ml_platform_tests.support.constants import DAYS
from ml_platform_tests.support.pipelines import DEMO
from ml_platform_tests.support.results import materialized

daily_training = DEMO.schedule

UTC = dt.UTC


def _evaluate(landing_dir, when: dt.datetime):
    context = dg.build_schedule_context(
        scheduled_execution_time=when, resources={"landing_zone": LocalLandingZone(root=str(landing_dir))}
    )
    return daily_training(context)


def test_schedule_is_registered_at_two_in_the_configured_timezone():
    schedule = defs.resolve_schedule_def("demo_daily_training")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == load_settings().timezone
    assert schedule.job_name == "demo_training"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_tick_requests_the_previous_days_partition(seeded):
    request = _evaluate(seeded.landing, dt.datetime(2026, 1, 8, 2, 0, tzinfo=UTC))
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2026-01-07"
    assert request.run_key == "daily:2026-01-07"
    assert request.run_config == {}  # defaults from the dg.Config classes
    assert request.tags[constants.TRIGGER_TAG] == "schedule"
    assert request.tags[constants.FINGERPRINT_TAG].startswith("size:")


def test_tick_skips_with_a_reason_when_the_file_has_not_landed(seeded):
    result = _evaluate(seeded.landing, dt.datetime(2026, 1, 20, 2, 0, tzinfo=UTC))
    assert isinstance(result, dg.SkipReason)
    assert "no landing file for 2026-01-19" in result.skip_message


def test_requested_run_materializes_the_pipeline(seeded):
    """What the daemon does with the tick's request: the job for that partition."""
    seeded.ingest(DAYS[:-1])  # the earlier days of the window; the tick's day comes with the run
    request = _evaluate(seeded.landing, dt.datetime(2026, 1, 8, 2, 0, tzinfo=UTC))
    result = seeded.materialize("*", request.partition_key, tags=request.tags)
    assert result.success
    assert "raw_data" in materialized(result) and "deployed_model" in materialized(result)
    production = seeded.store.production("demo_classifier")
    assert production.metadata["data_as_of"] == "2026-01-07"


@pytest.mark.parametrize(
    "moment, timezone, expected",
    [
        (dt.datetime(2026, 1, 8, 2, 0, tzinfo=UTC), "UTC", "2026-01-07"),
        # 01:30 UTC is still the evening of the 7th in New York: its previous day is the 6th.
        (dt.datetime(2026, 1, 8, 1, 30, tzinfo=UTC), "America/New_York", "2026-01-06"),
        (dt.datetime(2026, 1, 7, 23, 0, tzinfo=UTC), "Asia/Tokyo", "2026-01-07"),
    ],
)
def test_previous_day_is_taken_in_the_configured_timezone(moment, timezone, expected):
    assert previous_day(moment, timezone) == expected
