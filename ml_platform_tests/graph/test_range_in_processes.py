"""A range run of raw_data (a single-run backfill) does each day's work in worker processes: each
day stored, with its own metadata and checks, and the checks step does not read the days again."""

import hashlib

import dagster as dg
import pandas as pd

from ml_platform import day_work
from ml_platform_tests.support.constants import DAYS, PREFIX
from ml_platform_tests.support.pipelines import ALL_DEFS
from ml_platform_tests.support.results import check_descriptions, check_results, step_errors

RAW = dg.AssetKey([PREFIX, "raw_data"])


def _messages(platform, result: dg.ExecuteInProcessResult) -> list[str]:
    """What the run logged (context.log), in order."""
    return [r.user_message for r in platform.instance.all_logs(result.run_id) if r.user_message]


def _materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        e.partition: e.materialization.metadata for e in result.get_asset_materialization_events() if e.asset_key == RAW
    }


def test_each_day_of_a_range_is_stored_with_its_own_metadata_by_worker_processes(seeded):
    # Days of different sizes, one of them a CSV file (encoded, not copied); the frames written are
    # what each stored day must hold.
    written = {}
    for n, day in enumerate(DAYS):
        path = seeded.landing / f"{day}.parquet"
        written[day] = pd.read_parquet(path).iloc[: 40 + n].reset_index(drop=True)
        path.unlink()
        seeded.write_day(day, written[day], "csv" if n == 3 else "parquet")

    result = seeded.ingest_range(DAYS)

    assert result.success, step_errors(result)
    processes = day_work.processes_for(len(DAYS), 2**20)
    messages = _messages(seeded, result)
    if processes >= 2:
        assert any(m.startswith(f"ingesting {len(DAYS)} days on {processes} processes") for m in messages)
    # Progress: the last day always; never more lines than days.
    progress = [m for m in messages if " stored " in m and m.startswith("[")]
    assert progress[-1].startswith(f"[{len(DAYS)}/{len(DAYS)}] stored "), progress
    assert 1 <= len(progress) <= len(DAYS)
    by_day = _materializations(result)
    assert sorted(by_day) == DAYS
    for n, day in enumerate(DAYS):
        (landing,) = seeded.landing.glob(f"{day}.*")
        data = landing.read_bytes()
        stored = pd.read_parquet(seeded.assets_dir / PREFIX / "raw_data" / f"{day}.parquet")
        # The CSV day: its numbers back from text, equal to what was written within float precision.
        pd.testing.assert_frame_equal(stored, written[day], check_exact=False, rtol=1e-12)
        metadata = by_day[day]
        assert metadata["dagster/row_count"].value == 40 + n
        assert metadata["Fingerprint"].value == f"sha256:{hashlib.sha256(data).hexdigest()}"
        assert metadata["Source file"].value == str(landing)
        assert metadata["Processes"].value == max(processes, 1)
    assert all(check_results(result).values()), check_descriptions(result)
    assert check_descriptions(result)["null_ratio_below_threshold"] == f"passed on all {len(DAYS)} days"
    # The checks step used what the workers checked while reading: it read no day again.
    assert not [m for m in messages if m.startswith("checking ")]


def test_the_checks_alone_read_and_check_the_stored_range_in_processes(seeded):
    assert seeded.ingest_range(DAYS).success
    checks_only = dg.materialize(
        ALL_DEFS,
        selection=dg.AssetSelection.checks_for_assets(RAW),
        instance=seeded.instance,
        resources=seeded.resources,
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
        run_config={"ops": {f"{PREFIX}__raw_data_quality": {"config": {"max_null_ratio": 0.0}}}},
    )
    assert checks_only.success, step_errors(checks_only)
    assert not checks_only.get_asset_materialization_events()
    processes = day_work.processes_for(len(DAYS), 2**20)
    assert f"checking {len(DAYS)} of {len(DAYS)} days on {max(processes, 1)} process(es)" in _messages(
        seeded, checks_only
    )
    assert all(check_results(checks_only).values()), check_descriptions(checks_only)


def test_a_bad_day_in_a_range_fails_its_check_by_name_and_a_corrupt_file_fails_the_run(seeded):
    bad = pd.read_parquet(seeded.landing / f"{DAYS[2]}.parquet")
    bad.loc[: len(bad) // 2, "mean radius"] = None
    seeded.write_day(DAYS[2], bad)

    result = seeded.ingest_range(DAYS)
    assert check_results(result)["null_ratio_below_threshold"] is False
    description = check_descriptions(result)["null_ratio_below_threshold"]
    assert description.startswith(f"{DAYS[2]}: ") and "mean radius" in description
    assert sorted(_materializations(result)) == DAYS  # every day is stored; the check says which is bad

    (seeded.landing / f"{DAYS[4]}.parquet").write_bytes(b"PAR1 this is not parquet")
    broken = seeded.ingest_range(DAYS)
    assert not broken.success
    errors = step_errors(broken)
    assert f"landing file {seeded.landing / DAYS[4]}.parquet cannot be read" in errors
    assert "Traceback" not in errors
