"""ParquetIOManager and JoblibIOManager through real Dagster runs on throwaway assets."""

import os
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from ml_platform.backends.local import JoblibIOManager, ParquetIOManager
from ml_platform.errors import MlPlatformError
from ml_platform_tests.support.results import materialized, step_errors

# Fixed days, so nothing depends on today's date.
DAYS = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_date="2026-03-11")
D1, D2, D3, D4, D5 = "2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"


def day_frame(day: str) -> pd.DataFrame:
    """A small, day-specific frame (a value per day so mix-ups show)."""
    n = int(day[-2:])
    return pd.DataFrame({"day": [day] * n, "value": [float(n * 10 + i) for i in range(n)]})


# -- throwaway assets ---------------------------------------------------------------------------


@dg.asset(partitions_def=DAYS)
def daily(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return day_frame(context.partition_key)


def _received(frames: dict) -> pd.DataFrame:
    """What a downstream asset was handed, as a table it can store."""
    return pd.DataFrame(
        {
            "day": list(frames),
            "rows": [len(f) for f in frames.values()],
            "first_day": [f["day"].iloc[0] for f in frames.values()],
        }
    )


@dg.asset(
    partitions_def=DAYS,
    ins={
        "daily": dg.AssetIn(
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-2),
            metadata={"allow_missing_partitions": True, "partitions_as_dict": True},
        )
    },
)
def tolerant_window(daily: dict[str, pd.DataFrame]) -> pd.DataFrame:
    assert isinstance(daily, dict)
    return _received(daily)


@dg.asset(
    partitions_def=DAYS,
    ins={"daily": dg.AssetIn(partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-2))},
)
def strict_window(daily: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return _received(daily)


@dg.asset(partitions_def=DAYS, ins={"daily": dg.AssetIn(metadata={"partitions_as_dict": True})})
def same_day_as_dict(daily: dict[str, pd.DataFrame]) -> pd.DataFrame:
    assert isinstance(daily, dict), type(daily)
    return _received(daily)


@dg.asset(partitions_def=DAYS)
def same_day_plain(daily: pd.DataFrame) -> pd.DataFrame:
    assert isinstance(daily, pd.DataFrame), type(daily)
    return daily.assign(doubled=daily["value"] * 2)


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def ranged(context: dg.AssetExecutionContext) -> dict[str, pd.DataFrame]:
    return {day: day_frame(day) for day in context.partition_keys}


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def ranged_one_frame(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.concat([day_frame(day) for day in context.partition_keys], ignore_index=True)


@dg.asset(partitions_def=DAYS)
def not_a_frame(context: dg.AssetExecutionContext) -> dict:
    return {"coefficients": [1.0, 2.0]}


@dg.asset(partitions_def=DAYS, io_manager_key="model_io_manager")
def settings_blob(context: dg.AssetExecutionContext) -> dict:
    return {"day": context.partition_key, "threshold": 0.5, "labels": ["a", "b"], "nested": {"k": (1, 2)}}


@dg.asset(partitions_def=DAYS, ins={"settings_blob": dg.AssetIn(input_manager_key="model_io_manager")})
def settings_used(settings_blob: dict) -> pd.DataFrame:
    assert settings_blob["nested"] == {"k": (1, 2)}
    return pd.DataFrame(
        {
            "day": [settings_blob["day"]],
            "threshold": [settings_blob["threshold"]],
            "labels": [",".join(settings_blob["labels"])],
        }
    )


TRAIN_X = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "x2": [1.0, 0.5, 0.0, -0.5, -1.0, -1.5]})
TRAIN_Y = [0, 0, 0, 1, 1, 1]
SCORE_X = pd.DataFrame({"x1": [0.5, 4.5, 2.4], "x2": [0.8, -1.2, -0.1]})


@dg.asset(partitions_def=DAYS, io_manager_key="model_io_manager")
def fitted_model(daily: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(TRAIN_X, TRAIN_Y)


@dg.asset(partitions_def=DAYS, ins={"fitted_model": dg.AssetIn(input_manager_key="model_io_manager")})
def scores(fitted_model: LogisticRegression) -> pd.DataFrame:
    assert isinstance(fitted_model, LogisticRegression)
    return SCORE_X.assign(label=fitted_model.predict(SCORE_X), proba=fitted_model.predict_proba(SCORE_X)[:, 1])


@dg.asset(io_manager_key="model_io_manager", key_prefix=["lookups"])
def unpartitioned_blob() -> dict:
    return {"a": 1}


@dg.asset(
    ins={"unpartitioned_blob": dg.AssetIn(key=["lookups", "unpartitioned_blob"], input_manager_key="model_io_manager")}
)
def unpartitioned_frame(unpartitioned_blob: dict) -> pd.DataFrame:
    return pd.DataFrame({"a": [unpartitioned_blob["a"]]})


ASSETS = [
    daily,
    tolerant_window,
    strict_window,
    same_day_as_dict,
    same_day_plain,
    ranged,
    ranged_one_frame,
    not_a_frame,
    settings_blob,
    settings_used,
    fitted_model,
    scores,
    unpartitioned_blob,
    unpartitioned_frame,
]


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path / "assets"


@pytest.fixture
def run(base: Path, instance: dg.DagsterInstance):
    def materialize(selection: str, partition_key: str | None = None, tags: dict | None = None):
        return dg.materialize(
            ASSETS,
            selection=selection,
            partition_key=partition_key,
            tags=tags,
            instance=instance,
            resources={
                "io_manager": ParquetIOManager(base_dir=str(base)),
                "model_io_manager": JoblibIOManager(base_dir=str(base)),
            },
            raise_on_error=False,
        )

    return materialize


def files(base: Path) -> set[str]:
    """Every file under base, hidden ones included."""
    if not base.exists():
        return set()
    return {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()}


def temp_files(base: Path) -> set[str]:
    return {f for f in files(base) if f.rsplit("/", 1)[-1].startswith(".tmp-")}


def ingest(run, *days: str) -> None:
    for day in days:
        result = run("key:daily", day)
        assert result.success, step_errors(result)


# -- ParquetIOManager ----------------------------------------------------------------------------


def test_partitioned_frame_round_trips_to_one_parquet_file_per_day(run, base):
    ingest(run, D1, D2)
    assert files(base) == {f"daily/{D1}.parquet", f"daily/{D2}.parquet"}
    for day in (D1, D2):
        pd.testing.assert_frame_equal(pd.read_parquet(base / "daily" / f"{day}.parquet"), day_frame(day))

    result = run("key:same_day_plain", D2)
    assert result.success, step_errors(result)
    stored = pd.read_parquet(base / "same_day_plain" / f"{D2}.parquet")
    pd.testing.assert_frame_equal(stored, day_frame(D2).assign(doubled=day_frame(D2)["value"] * 2))
    meta = result.asset_materializations_for_node("same_day_plain")[0].metadata
    assert meta["Stored at"].value == str(base / "same_day_plain" / f"{D2}.parquet")
    assert temp_files(base) == set()


def test_a_window_input_arrives_as_a_dict_of_days(run, base):
    ingest(run, D1, D2, D3)
    result = run("key:tolerant_window", D3)
    assert result.success, step_errors(result)
    received = pd.read_parquet(base / "tolerant_window" / f"{D3}.parquet")
    assert received.to_dict("list") == {"day": [D1, D2, D3], "rows": [1, 2, 3], "first_day": [D1, D2, D3]}


def test_missing_days_are_left_out_when_allowed(run, base, instance):
    ingest(run, D3, D5)  # D4 never materialized
    result = run("key:tolerant_window", D5)
    assert result.success, step_errors(result)
    received = pd.read_parquet(base / "tolerant_window" / f"{D5}.parquet")
    assert received.to_dict("list") == {"day": [D3, D5], "rows": [3, 5], "first_day": [D3, D5]}
    # The run log says which day was left out.
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert f"daily partition {D4} is not materialized; leaving it out" in messages


def test_a_missing_day_fails_the_run_naming_asset_and_partition(run, base):
    ingest(run, D3, D5)
    result = run("key:strict_window", D5)
    assert not result.success
    errors = step_errors(result)
    assert "daily" in errors
    assert f"partition {D4}" in errors
    assert "has not been materialized" in errors
    assert str(base / "daily" / f"{D4}.parquet") in errors
    assert not (base / "strict_window").exists()


def test_partitions_as_dict_gives_a_dict_for_a_single_day(run, base):
    ingest(run, D2)
    result = run("key:same_day_as_dict", D2)
    assert result.success, step_errors(result)
    received = pd.read_parquet(base / "same_day_as_dict" / f"{D2}.parquet")
    assert received.to_dict("list") == {"day": [D2], "rows": [2], "first_day": [D2]}


def test_single_run_backfill_writes_one_file_per_day(run, base):
    result = run(
        "key:ranged",
        tags={"dagster/asset_partition_range_start": D2, "dagster/asset_partition_range_end": D4},
    )
    assert result.success, step_errors(result)
    assert files(base) == {f"ranged/{day}.parquet" for day in (D2, D3, D4)}
    for day in (D2, D3, D4):
        pd.testing.assert_frame_equal(pd.read_parquet(base / "ranged" / f"{day}.parquet"), day_frame(day))
    assert {e.partition for e in result.get_asset_materialization_events()} == {D2, D3, D4}


def test_a_range_run_returning_one_frame_fails_with_a_clear_message(run, base):
    result = run(
        "key:ranged_one_frame",
        tags={"dagster/asset_partition_range_start": D2, "dagster/asset_partition_range_end": D4},
    )
    assert not result.success
    errors = step_errors(result)
    assert "ranged_one_frame covers 3 partitions" in errors
    assert "{partition_key: value} dict" in errors
    assert files(base) == set()


def test_parquet_manager_refuses_a_non_frame_and_points_to_model_io_manager(run, base):
    result = run("key:not_a_frame", D1)
    assert not result.success
    errors = step_errors(result)
    assert "parquet IO manager stores pandas DataFrames, got dict" in errors
    assert "io_manager_key='model_io_manager'" in errors
    assert files(base) == set()  # neither the target nor a temp file


# -- JoblibIOManager -----------------------------------------------------------------------------


def test_joblib_manager_round_trips_a_dict(run, base):
    result = run("key:settings_blob or key:settings_used", D3)
    assert result.success, step_errors(result)
    assert materialized(result) == {"settings_blob", "settings_used"}
    assert (base / "settings_blob" / f"{D3}.joblib").is_file()
    used = pd.read_parquet(base / "settings_used" / f"{D3}.parquet")
    assert used.to_dict("list") == {"day": [D3], "threshold": [0.5], "labels": ["a,b"]}
    assert temp_files(base) == set()


def test_joblib_manager_round_trips_a_fitted_model(run, base):
    ingest(run, D2)
    result = run("key:fitted_model or key:scores", D2)
    assert result.success, step_errors(result)
    assert (base / "fitted_model" / f"{D2}.joblib").is_file()

    expected = LogisticRegression().fit(TRAIN_X, TRAIN_Y)
    stored = pd.read_parquet(base / "scores" / f"{D2}.parquet")
    assert stored["label"].tolist() == expected.predict(SCORE_X).tolist()
    np.testing.assert_allclose(stored["proba"], expected.predict_proba(SCORE_X)[:, 1])


def test_unpartitioned_assets_are_stored_next_to_their_key_prefix(run, base):
    result = run("key:lookups/unpartitioned_blob or key:unpartitioned_frame")
    assert result.success, step_errors(result)
    assert files(base) == {"lookups/unpartitioned_blob.joblib", "unpartitioned_frame.parquet"}
    assert pd.read_parquet(base / "unpartitioned_frame.parquet")["a"].tolist() == [1]


def test_an_unpartitioned_input_never_materialized_fails_naming_it(run, base):
    result = run("key:unpartitioned_frame")
    assert not result.success
    errors = step_errors(result)
    assert "lookups/unpartitioned_blob has not been materialized" in errors
    assert str(base / "lookups" / "unpartitioned_blob.joblib") in errors


def test_rewrites_and_failed_writes_leave_no_temp_files(run, base):
    ingest(run, D1)
    (base / "daily" / f"{D1}.parquet").write_bytes(b"stale")
    ingest(run, D1)  # a re-run replaces the stored day
    pd.testing.assert_frame_equal(pd.read_parquet(base / "daily" / f"{D1}.parquet"), day_frame(D1))
    ranged_run = run(
        "key:ranged", tags={"dagster/asset_partition_range_start": D1, "dagster/asset_partition_range_end": D3}
    )
    assert ranged_run.success, step_errors(ranged_run)
    assert not run("key:not_a_frame", D1).success  # fails inside the atomic write
    blob_run = run("key:settings_blob", D1)
    assert blob_run.success, step_errors(blob_run)

    assert temp_files(base) == set()
    assert files(base) == {
        f"daily/{D1}.parquet",
        *(f"ranged/{day}.parquet" for day in (D1, D2, D3)),
        f"settings_blob/{D1}.joblib",
    }


def test_stored_values_get_ordinary_file_permissions(run, base):
    old = os.umask(0o022)
    try:
        ingest(run, D1)
    finally:
        os.umask(old)
    assert (base / "daily" / f"{D1}.parquet").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("key", ["..", "../escape", "a/../../b", "..\\windows"])
def test_partition_keys_that_could_leave_the_base_dir_are_refused(tmp_path, key):
    manager = ParquetIOManager(base_dir=str(tmp_path / "assets"))
    context = dg.build_output_context(asset_key=dg.AssetKey(["demo", "raw_data"]), partition_key=key)
    with pytest.raises(MlPlatformError, match="cannot be used as a storage path segment"):
        manager.handle_output(context, pd.DataFrame({"x": [1]}))
    assert not any(tmp_path.rglob("*.parquet"))
