"""The declared data contract in the asset graph: a rule that warns lets its day be trained on, a
rule that blocks keeps it out, every check shows its per-column table; rows without a label and
repeated rows are dropped and counted per day, distinct events with equal features are kept."""

import dagster as dg
import numpy as np
import pandas as pd

from ml_platform_tests.support.pipelines import built_from
from ml_platform_tests.support.realistic import days_of, shop_day
from ml_platform_tests.support.results import step_errors

DAYS = days_of("2026-01-01", 4)
LAST = DAYS[-1]


def shop(platform, quality: str = "", extra: str = ""):
    return built_from(f"""
        pipelines:
          - name: shop
            target: churned
            landing: .
            window_days: 4
            partitions: {{start: "2026-01-01"}}
            features: [region, {{store: categorical}}, product, price, qty, distance, member]
            model: {{estimator: hist_gradient_boosting, params: {{max_iter: 20}}}}
            {extra}
            quality: {{{quality}}}
    """)


def write(platform, frames: dict[str, pd.DataFrame]) -> None:
    for day, frame in frames.items():
        platform.write_day(day, frame)


def run(platform, built, selection: str, day: str | None = None) -> dg.ExecuteInProcessResult:
    tags = {} if day else {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": LAST}
    return dg.materialize(
        built.definitions,
        selection=selection,
        partition_key=day,
        instance=platform.instance,
        resources=platform.resources,
        tags=tags,
        raise_on_error=False,
    )


def evaluations(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def training_metadata(result) -> dict:
    (event,) = result.asset_materializations_for_node("shop__training_data")
    return {k: v.value for k, v in event.metadata.items()}


def test_a_warn_rule_fails_as_a_warning_and_its_day_is_trained_on(platform):
    frames = {day: shop_day(day, 120, seed, seed) for seed, day in enumerate(DAYS)}
    frames[LAST].loc[:30, "distance"] = np.nan  # 31 of ~120 rows: above the 0.1 default
    write(platform, frames)
    warned = shop(platform, "columns: {distance: {max_null_ratio: 0.1, severity: warn}, price: {min: 0, max: 5000}}")
    for day in DAYS:  # one run a day, as the landing sensor does: each day's verdict is recorded
        assert run(platform, warned, "key:shop/raw_data", day).success
    checks = evaluations(run(platform, warned, "key:shop/raw_data", LAST))
    null = checks["null_ratio_below_threshold"]
    assert not null.passed and null.severity == dg.AssetCheckSeverity.WARN
    assert "distance (0.2" in null.description and "(severity warn: the day is still used)" in null.description
    table = {(r.data["Column"], r.data["Rule"]): r.data for r in null.metadata["Rules"].value.records}
    assert table["distance", "max_null_ratio"]["Passed"] is False
    assert (
        table["distance", "max_null_ratio"]["Severity"] == "warn"
        and table["distance", "max_null_ratio"]["Limit"] == "0.1"
    )
    assert table["price", "max_null_ratio"]["Passed"] is True
    declared = checks["declared_rules_met"]
    assert declared.passed and {r.data["Rule"] for r in declared.metadata["Rules"].value.records} == {"min", "max"}
    result = run(platform, warned, "key:shop/training_data", LAST)
    assert result.success, step_errors(result)
    assert training_metadata(result)["Days used"] == ", ".join(DAYS)

    # The same rule blocking: the day is stopped, and training as of it is refused naming why.
    blocked = shop(platform, "columns: {distance: {max_null_ratio: 0.1}}")
    result = run(platform, blocked, "key:shop/raw_data", LAST)
    assert not result.success
    assert evaluations(result)["null_ratio_below_threshold"].severity == dg.AssetCheckSeverity.ERROR
    result = run(platform, blocked, "key:shop/training_data", LAST)
    assert not result.success
    assert (
        f"cannot train a model as of {LAST}: raw_data {LAST} failed null_ratio_below_threshold (null ratio"
        " above 0.1 in: distance (0.2" in step_errors(result)
    )


def test_unlabelled_and_repeated_rows_are_dropped_and_counted_but_distinct_events_are_kept(platform):
    frames = {day: shop_day(day, 100, seed, seed) for seed, day in enumerate(DAYS[:3])}
    frames[DAYS[1]].loc[:7, "churned"] = None  # 8 rows without a label
    frames[LAST] = frames[DAYS[0]].copy()  # the first day delivered again, as it was
    write(platform, frames)
    built = shop(platform, "target_missing: {max_ratio: 0.2}")
    assert run(platform, built, "key:shop/raw_data").success
    # shop_day repeats about one order in ten with its own order_id: same features, distinct events.
    same_features = int(
        frames[DAYS[0]]
        .duplicated(subset=["region", "store", "product", "price", "qty", "distance", "member", "churned"])
        .sum()
    )
    assert same_features >= 5
    result = run(platform, built, "key:shop/training_data", LAST)
    assert result.success, step_errors(result)
    metadata = training_metadata(result)
    per_day = {r.data["Day"]: r.data for r in metadata["Rows per day"].records}
    assert per_day[DAYS[1]]["Without label"] == 8 and per_day[DAYS[1]]["Duplicates"] == 0
    assert per_day[LAST]["Duplicates"] == len(frames[LAST]) and per_day[LAST]["Used"] == 0
    assert per_day[DAYS[0]]["Duplicates"] == 0 and per_day[DAYS[0]]["Used"] == len(frames[DAYS[0]])
    assert metadata["Duplicate rows dropped"] == len(frames[LAST])
    assert metadata["Rows without a label dropped"] == 8
    assert metadata["Duplicates"] == "equal in every landing column"
    assert metadata["dagster/row_count"] == 3 * 100 - 8

    # By a declared key: the orders repeated under their own order_id are still distinct events.
    keyed = shop(platform, "target_missing: {max_ratio: 0.2}, dedupe: {key: [order_id]}")
    assert training_metadata(run(platform, keyed, "key:shop/training_data", LAST))["Duplicate rows dropped"] == 100
    # By the features alone (a key of every feature and the label): the repeated orders go too.
    by_features = shop(
        platform,
        "target_missing: {max_ratio: 0.2}, dedupe: {key: [region, store, product, price,"
        " qty, distance, member, churned]}",
    )
    dropped = training_metadata(run(platform, by_features, "key:shop/training_data", LAST))["Duplicate rows dropped"]
    assert dropped > 100
    # Never: every row is trained on.
    kept = shop(platform, "target_missing: {max_ratio: 0.2}, dedupe: false")
    metadata = training_metadata(run(platform, kept, "key:shop/training_data", LAST))
    assert metadata["Duplicate rows dropped"] == 0 and metadata["dagster/row_count"] == 4 * 100 - 8
