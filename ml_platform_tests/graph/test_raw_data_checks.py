"""The blocking raw_data checks in the graph: a failing one stops training and deployment in the
same run; a day that failed its checks is left out of training."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform_tests.support.constants import DAYS, END_DAY, MODEL_NAME, TARGET
from ml_platform_tests.support.results import (
    check_descriptions,
    check_results,
    materialized,
    step_errors,
)

DOWNSTREAM = {"training_data", "trained_model", "deployed_model"}
BAD_DAY = DAYS[-1]
NULL_COLUMN = "mean radius"


def ingest_range(platform, days: list[str], expect_success: bool = True) -> dg.ExecuteInProcessResult:
    result = platform.ingest_range(days)
    assert result.success == expect_success, step_errors(result)
    return result


def replace_day(platform, day: str, frame: pd.DataFrame, fmt: str = "parquet") -> None:
    """Put ``frame`` as the only landing file of ``day``."""
    for ext in ("parquet", "csv"):
        (platform.landing / f"{day}.{ext}").unlink(missing_ok=True)
    platform.write_day(day, frame, fmt)


def landing_frame(platform, day: str) -> pd.DataFrame:
    return pd.read_parquet(platform.landing / f"{day}.parquet")


def with_nulls(day_frame: pd.DataFrame, share: float = 0.3) -> pd.DataFrame:
    bad = day_frame.copy()
    bad.loc[: round(len(bad) * share) - 1, NULL_COLUMN] = np.nan
    return bad


def training_data_metadata(result: dg.ExecuteInProcessResult) -> dict:
    return result.asset_materializations_for_node("demo__training_data")[0].metadata


def days_left_out(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    table = training_data_metadata(result)["Days left out"].value
    return {record.data["Day"]: record.data["Reason"] for record in table.records}


# -- (b) the blocking raw_data checks in the graph ----------------------------------------------


def _no_rows(day_frame):
    return day_frame.iloc[:0], "parquet", "no rows"


def _no_target(day_frame):
    return day_frame.drop(columns=[TARGET]), "parquet", repr(TARGET)


def _too_many_nulls(day_frame):
    return with_nulls(day_frame), "parquet", NULL_COLUMN


def _garbage_in_numeric_column(day_frame):
    bad = day_frame.copy()
    bad[NULL_COLUMN] = bad[NULL_COLUMN].astype(str)
    bad.loc[3, NULL_COLUMN] = "n/a!"
    return bad, "csv", repr(NULL_COLUMN)


def _one_class(day_frame):
    bad = day_frame.copy()
    bad[TARGET] = 0
    return bad, "parquet", "1 target class;"


@pytest.mark.parametrize(
    ("check_name", "make_bad"),
    [
        ("not_empty", _no_rows),
        ("target_column_present", _no_target),
        ("null_ratio_below_threshold", _too_many_nulls),
        ("feature_columns_valid", _garbage_in_numeric_column),
        ("at_least_two_classes", _one_class),
    ],
)
def test_failing_check_stops_training_and_deployment_in_the_same_run(platform, check_name, make_bad):
    platform.seed()
    ingest_range(platform, DAYS[:-1])  # six good days: training could run without the bad one
    bad, fmt, named = make_bad(landing_frame(platform, BAD_DAY))
    replace_day(platform, BAD_DAY, bad, fmt)

    result = platform.materialize("*", BAD_DAY)

    assert check_results(result)[check_name] is False
    assert named in check_descriptions(result)[check_name]
    assert not result.success
    assert check_name in step_errors(result)  # the run's failure names the check
    assert "raw_data" in materialized(result)
    assert not materialized(result) & DOWNSTREAM
    assert platform.store.production(MODEL_NAME) is None
    assert platform.store.list_versions(MODEL_NAME) == []


def test_null_ratio_threshold_is_configurable_by_run_config(platform):
    platform.seed()
    ingest_range(platform, DAYS[:-1])
    bad = with_nulls(landing_frame(platform, BAD_DAY))
    assert bad[NULL_COLUMN].isna().mean() == pytest.approx(0.3, abs=0.01)
    replace_day(platform, BAD_DAY, bad)

    strict = platform.materialize("*", BAD_DAY)
    assert check_results(strict)["null_ratio_below_threshold"] is False
    assert not strict.success
    assert platform.store.production(MODEL_NAME) is None

    lenient = platform.materialize(
        "*", BAD_DAY, {"ops": {"demo__raw_data_quality": {"config": {"max_null_ratio": 0.5}}}}
    )
    evaluation = next(
        e.asset_check_evaluation_data
        for e in lenient.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.check_name == "null_ratio_below_threshold"
    )
    assert evaluation.passed
    assert evaluation.metadata["Threshold"].value == 0.5
    assert lenient.success, step_errors(lenient)
    assert all(check_results(lenient).values())
    # training_data follows the day's check results: the day passed at 0.5, so it is trained on.
    assert BAD_DAY in training_data_metadata(lenient)["Days used"].value
    assert days_left_out(lenient) == {}
    assert platform.store.production(MODEL_NAME).metadata["data_as_of"] == BAD_DAY


@pytest.mark.parametrize(
    ("make_bad", "reason"),
    [(_no_target, "target column"), (_too_many_nulls, NULL_COLUMN)],
    ids=["missing-target", "too-many-nulls"],
)
def test_day_that_failed_its_checks_earlier_is_left_out_of_training(platform, make_bad, reason):
    platform.seed()
    bad_day = DAYS[-2]
    bad, fmt, _ = make_bad(landing_frame(platform, bad_day))
    replace_day(platform, bad_day, bad, fmt)

    ingest_range(platform, DAYS[:-2])
    earlier = platform.materialize("key:demo/raw_data", bad_day)
    assert not earlier.success
    assert "raw_data" in materialized(earlier)  # stored, but flagged by its failed check
    assert not all(check_results(earlier).values())
    assert platform.materialize("key:demo/raw_data", DAYS[-1]).success

    result = platform.train(END_DAY)

    assert result.success, step_errors(result)
    left_out = days_left_out(result)
    assert list(left_out) == [bad_day]
    assert reason in left_out[bad_day]
    used = training_data_metadata(result)["Days used"].value.split(", ")
    assert used == [d for d in DAYS if d != bad_day]
    assert "deployed_model" in materialized(result)
    production = platform.store.production(MODEL_NAME)
    assert production is not None and production.metadata["data_as_of"] == END_DAY
    assert production.metadata["training_rows"] + production.metadata["metrics"]["test_rows"] == sum(
        len(landing_frame(platform, d)) for d in used
    )


def test_bad_day_inside_a_single_run_range_is_left_out_of_training(platform):
    """A range run's checks record no per-day result; training_data applies the contract itself."""
    platform.seed()
    bad_day = DAYS[2]
    replace_day(platform, bad_day, with_nulls(landing_frame(platform, bad_day)))

    ranged = ingest_range(platform, DAYS, expect_success=False)
    assert check_results(ranged)["null_ratio_below_threshold"] is False
    assert bad_day in check_descriptions(ranged)["null_ratio_below_threshold"]

    result = platform.train(END_DAY)
    assert result.success, step_errors(result)
    left_out = days_left_out(result)
    assert list(left_out) == [bad_day] and NULL_COLUMN in left_out[bad_day]
    assert platform.store.production(MODEL_NAME).metadata["data_as_of"] == END_DAY
