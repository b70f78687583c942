"""The landing-zone sensor over a real temp landing folder, tick by tick."""

import json
import os
import time
import uuid

import dagster as dg
import pandas as pd

from ml_platform import constants
from ml_platform.backends.local import LocalLandingZone
from ml_platform.definitions import defs
from ml_platform.jobs import retrain_keys
from ml_platform_tests.support.constants import DAYS, END_DAY, MODEL_NAME
from ml_platform_tests.support.pipelines import DEMO
from ml_platform_tests.support.platform import yesterday
from ml_platform_tests.support.results import materialized

landing_zone_sensor = DEMO.sensor("landing_zone_sensor")
RETRAIN_ASSETS = retrain_keys(DEMO.pipeline)


def tick(platform, cursor=None):
    context = dg.build_sensor_context(
        instance=platform.instance,
        cursor=cursor,
        resources={"landing_zone": LocalLandingZone(root=str(platform.landing))},
    )
    result = landing_zone_sensor(context)
    return result.run_requests or [], result.cursor


def ingest_requests(requests):
    return [r for r in requests if r.tags[constants.TRIGGER_TAG] == constants.LANDING_INGEST_TRIGGER]


def test_sensor_is_registered():
    sensor = defs.resolve_sensor_def("demo_landing_zone_sensor")
    assert sensor.job_name == "demo_training"
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED


def test_new_file_then_same_file_then_modified_file(platform, demo_frame):
    platform.write_day(END_DAY, demo_frame.iloc[:100])

    requests, cursor = tick(platform)
    assert len(requests) == 1
    (request,) = requests
    assert request.partition_key == END_DAY
    assert request.asset_selection == [dg.AssetKey(["demo", "raw_data"])]
    fingerprint = request.tags[constants.FINGERPRINT_TAG]
    assert request.run_key == f"ingest:{END_DAY}:{fingerprint}"
    assert json.loads(cursor)["files"] == {END_DAY: fingerprint}

    # Same file: no new ingest; once the ingest ran (its checks passed), the retrain that waited
    # for it is requested once.
    assert platform.materialize(request.asset_selection, request.partition_key, tags=request.tags).success
    requests, cursor = tick(platform, cursor)
    assert ingest_requests(requests) == []
    (retrain,) = requests
    assert retrain.partition_key == END_DAY and retrain.asset_selection == RETRAIN_ASSETS
    requests, cursor = tick(platform, cursor)
    assert requests == []

    # A late correction: new content, new fingerprint, a new ingest with a new run key.
    time.sleep(0.01)
    platform.write_day(END_DAY, demo_frame.iloc[:120])
    requests, cursor = tick(platform, cursor)
    (corrected,) = requests
    assert corrected.partition_key == END_DAY and corrected.run_key != request.run_key
    assert json.loads(cursor)["files"][END_DAY] == corrected.tags[constants.FINGERPRINT_TAG]


def test_cursor_round_trips_and_only_changed_days_are_requested(platform, demo_frame):
    for day in DAYS:
        platform.write_day(day, demo_frame.iloc[:50])
    requests, cursor = tick(platform)
    assert sorted(r.partition_key for r in ingest_requests(requests)) == DAYS

    restored = json.loads(cursor)
    assert set(restored["files"]) == set(DAYS) and restored["pending"] == DAYS
    time.sleep(0.01)
    platform.write_day(DAYS[2], demo_frame.iloc[:60])
    requests, _ = tick(platform, json.dumps(restored))
    assert [r.partition_key for r in ingest_requests(requests)] == [DAYS[2]]


def test_retrain_waits_for_ingest_runs_in_flight(platform, demo_frame):
    platform.write_day(END_DAY, demo_frame.iloc[:100])
    _, cursor = tick(platform)
    platform.instance.add_run(
        dg.DagsterRun(
            job_name="demo_training",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags={constants.TRIGGER_TAG: constants.LANDING_INGEST_TRIGGER, constants.PIPELINE_TAG: "demo"},
        )
    )
    requests, cursor = tick(platform, cursor)
    assert requests == [] and json.loads(cursor)["pending"] == [END_DAY]


def test_files_that_are_not_complete_days_are_ignored(platform, demo_frame):
    today = (pd.Timestamp(yesterday()) + pd.Timedelta(days=1)).date().isoformat()
    platform.write_day(today, demo_frame.iloc[:10])  # today has not ended: no partition yet
    (platform.landing / "notes.txt").write_text("not data")
    (platform.landing / "2026-13-40.csv").write_text("a,b\n1,2\n")
    requests, cursor = tick(platform)
    assert requests == [] and json.loads(cursor)["files"] == {}


def test_sensor_requests_run_end_to_end(platform, demo_frame):
    """The requests a tick makes, executed as the daemon would, ingest and then deploy."""
    platform.seed()
    requests, cursor = tick(platform)
    for request in requests:
        result = platform.materialize(request.asset_selection, request.partition_key, tags=request.tags)
        assert result.success and materialized(result) == {"raw_data"}
    (retrain,) = tick(platform, cursor)[0]
    result = platform.materialize(retrain.asset_selection, retrain.partition_key, tags=retrain.tags)
    assert result.success and "deployed_model" in materialized(result)
    assert platform.store.production(MODEL_NAME).metadata["data_as_of"] == END_DAY
    assert os.path.isfile(platform.store_dir / MODEL_NAME / "production.json")


def test_a_day_that_fails_its_checks_is_not_retrained_on(platform, demo_frame):
    """One alert per bad file: its ingest run fails (the failure sensor says why), and the sensor
    retrains on the newest day that passed, never on the day that just failed."""
    platform.seed()
    platform.write_day(END_DAY, demo_frame.iloc[:80].drop(columns=["target"]))  # fails its checks
    requests, cursor = tick(platform)
    for request in requests:
        result = platform.materialize(request.asset_selection, request.partition_key, tags=request.tags)
        assert result.success is (request.partition_key != END_DAY)
    (retrain,), cursor = tick(platform, cursor)
    assert retrain.partition_key == DAYS[-2]  # the newest day that passed
    assert retrain.run_key.startswith(f"retrain:{DAYS[-2]}:")

    # A new bad file for the day: its ingest fails again, and no retraining run follows it.
    time.sleep(0.01)
    platform.write_day(END_DAY, demo_frame.iloc[:90].drop(columns=["target"]))
    (again,), cursor = tick(platform, cursor)
    assert not platform.materialize(again.asset_selection, again.partition_key, tags=again.tags).success
    context = dg.build_sensor_context(
        instance=platform.instance,
        cursor=cursor,
        resources={"landing_zone": LocalLandingZone(root=str(platform.landing))},
    )
    result = landing_zone_sensor(context)
    assert not result.run_requests
    assert result.skip_reason.skip_message == (
        f"no retraining: no newly ingested day passed its checks: {END_DAY}"
        " (target_column_present, at_least_two_classes, target_missing_below_threshold)"
    )
    assert json.loads(result.cursor)["pending"] == []


def test_an_older_cursor_still_retrains(platform, demo_frame):
    """A cursor written before the sensor kept its pending days (it named one day to retrain)."""
    platform.write_day(END_DAY, demo_frame.iloc[:100])
    (request,), cursor = tick(platform)
    assert platform.materialize(request.asset_selection, request.partition_key, tags=request.tags).success
    old = json.dumps({"files": json.loads(cursor)["files"], "retrain": END_DAY})
    (retrain,), _ = tick(platform, old)
    assert retrain.partition_key == END_DAY and retrain.asset_selection == RETRAIN_ASSETS
