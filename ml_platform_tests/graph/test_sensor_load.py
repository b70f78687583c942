"""Sensor and schedule logic under load: 1,000 landing files over a year of partitions.

What is asserted here is behaviour (exactly one run request per new fingerprint, none twice);
time and memory of a tick are measured by `make bench`, never asserted in tests."""

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg

from ml_platform import constants
from ml_platform.backends.local import LocalLandingZone
from ml_platform_tests.support.pipelines import DEMO

landing_zone_sensor = DEMO.sensor("landing_zone_sensor")
daily_training = DEMO.schedule

UTC = dt.UTC
FIRST = dt.date(2025, 3, 1)
YEAR = [(FIRST + dt.timedelta(days=i)).isoformat() for i in range(365)]


def write_landing(folder: Path) -> None:
    """1,000 files: one per day for 365 days in the partitions, 600 days that are not partitions
    yet (the future) or no longer (before the start), and 35 other names that are not day files."""
    folder.mkdir(parents=True)
    for day in YEAR:
        (folder / f"{day}.csv").write_text(f"x,target\n{len(day)},0\n1,1\n")
    for i in range(300):
        (folder / f"{dt.date(2999, 1, 1) + dt.timedelta(days=i)}.csv").write_text("x,target\n1,0\n")
        (folder / f"{dt.date(2020, 1, 1) + dt.timedelta(days=i)}.parquet").write_bytes(b"PAR1")
    for i in range(35):
        (folder / f"notes-{i}.txt").write_text("not a day")
    assert len(os.listdir(folder)) == 1000


def tick(folder: Path, instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"landing_zone": LocalLandingZone(root=str(folder))}
    )
    result = landing_zone_sensor(context)
    requests = result.run_requests or []
    ingest = [r for r in requests if r.tags[constants.TRIGGER_TAG] == constants.LANDING_INGEST_TRIGGER]
    return ingest, [r for r in requests if r not in ingest], result.cursor


def test_one_run_request_per_new_fingerprint_over_1000_files(tmp_path: Path, instance):
    landing = tmp_path / "landing"
    write_landing(landing)

    ingest, retrain, cursor = tick(landing, instance, None)
    assert sorted(r.partition_key for r in ingest) == YEAR  # each day once, nothing outside
    assert len({r.run_key for r in ingest}) == 365
    assert retrain == []  # retraining waits until the ingests are requested
    assert len(json.loads(cursor)["files"]) == 365

    # Nothing changed: no ingest again; the one retraining run on the newest day once its ingest
    # run's checks passed (recorded here as that run would; none ran yet on the first tick after).
    pending = cursor
    ingest, retrain, _ = tick(landing, instance, pending)
    assert ingest == [] and retrain == []
    for name in DEMO.pipeline.raw_data_check_names:
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=DEMO.pipeline.key("raw_data"), check_name=name, passed=True, partition=YEAR[-1]
            )
        )
    ingest, retrain, cursor = tick(landing, instance, pending)
    assert ingest == []
    assert [r.partition_key for r in retrain] == [YEAR[-1]]
    ingest, retrain, cursor = tick(landing, instance, cursor)
    assert ingest == [] and retrain == []

    # Five corrected files: exactly five new requests, with new run keys.
    corrected = YEAR[::73]
    for day in corrected:
        path = landing / f"{day}.csv"
        path.write_text(path.read_text() + "2,1\n")
    ingest, _, cursor = tick(landing, instance, cursor)
    assert sorted(r.partition_key for r in ingest) == corrected
    # A cursor that lost its state (e.g. reset) asks for each day once again, never twice.
    again, _, _ = tick(landing, instance, None)
    assert len(again) == len({r.partition_key for r in again}) == 365


def test_the_schedule_requests_each_day_once_among_1000_files(tmp_path: Path, instance):
    landing = tmp_path / "landing"
    write_landing(landing)
    zone = LocalLandingZone(root=str(landing))
    run_keys = []
    # Every 5th day: each evaluation costs the test ~70 ms of ephemeral-instance set-up.
    sampled = YEAR[::5]
    for day in sampled:
        tick_time = dt.datetime.fromisoformat(day).replace(tzinfo=UTC) + dt.timedelta(days=1, hours=2)
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick_time, resources={"landing_zone": zone}
        )
        request = daily_training(context)
        assert isinstance(request, dg.RunRequest), request
        assert request.partition_key == day
        run_keys.append(request.run_key)
    assert len(set(run_keys)) == len(sampled)
    # A day without a file skips with the reason, no request.
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 6, 1, 2, tzinfo=UTC), resources={"landing_zone": zone}
    )
    skipped = daily_training(context)
    assert isinstance(skipped, dg.SkipReason) and "2026-05-31" in skipped.skip_message
