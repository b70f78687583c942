"""Blocking data-quality checks on each raw_data partition (the rules live in quality.py)."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from pydantic import Field

from ml_platform import constants, quality
from ml_platform.partitions import daily_partitions
from ml_platform.settings import load_settings

_settings = load_settings()


class DataQualityConfig(dg.Config):
    """Thresholds of the data contract."""

    max_null_ratio: float = Field(
        default=constants.DEFAULT_MAX_NULL_RATIO,
        ge=0.0,
        le=1.0,
        description="Largest share of nulls allowed in any column of one day's data.",
    )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            name=name,
            asset="raw_data",
            blocking=True,
            description=quality.RULE_DESCRIPTIONS[name],
            partitions_def=daily_partitions,
        )
        for name in quality.RULE_NAMES
    ],
    # The data is loaded once for all five rules.
    name="raw_data_quality",
)
def raw_data_quality(
    context: dg.AssetCheckExecutionContext, config: DataQualityConfig, raw_data
) -> Iterator[dg.AssetCheckResult]:
    """Runs the data contract on each day; any failure stops training in the same run."""
    if isinstance(raw_data, pd.DataFrame):  # one day; a range run hands over {day: frame}
        raw_data = {context.partition_key: raw_data}
    results_by_rule: dict[str, list[tuple[str, quality.RuleResult]]] = {n: [] for n in quality.RULE_NAMES}
    for day, frame in sorted(raw_data.items()):
        for result in quality.evaluate(
            frame, _settings.target_column, _settings.feature_columns, config.max_null_ratio
        ):
            results_by_rule[result.name].append((day, result))

    for name, day_results in results_by_rule.items():
        failed = [(day, r) for day, r in day_results if not r.passed]
        if len(day_results) == 1:
            day, result = day_results[0]
            message, metadata = result.message, dict(result.metadata)
        else:
            message = (
                "; ".join(f"{day}: {r.message}" for day, r in failed)
                if failed
                else f"passed on all {len(day_results)} days"
            )
            metadata = {"Days checked": len(day_results), "Days failed": len(failed)}
        if failed:
            context.log.error(f"raw_data check {name} failed: {message}")
        yield dg.AssetCheckResult(
            check_name=name,
            asset_key="raw_data",
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=message,
            metadata={**metadata, "Result": message},
        )


_DONE = (
    AssetCheckExecutionRecordStatus.SUCCEEDED,
    AssetCheckExecutionRecordStatus.FAILED,
)


def check_verdicts(instance: dg.DagsterInstance, days: list[str]) -> dict[str, list[str] | None]:
    """For each day: the names of its failed raw_data checks ([] = all passed), or None when the
    checks have not completed on the day's current materialization.

    Checks of a single-run range record no per-day result (Dagster 1.13.27 records each day of the
    range as planned/skipped), so such days come back as None and training_data applies the data
    contract itself. The status
    enum is not exported by ``dagster``; it is imported from its module (pinned to 1.13.27).
    """
    keys = [dg.AssetCheckKey(dg.AssetKey("raw_data"), name) for name in quality.RULE_NAMES]
    infos = instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=days)
    by_day: dict[str, dict[str, object]] = {day: {} for day in days}
    for info in infos:
        if info.partition_key in by_day and info.is_current and info.latest_execution_status in _DONE:
            by_day[info.partition_key][info.check_key.name] = info.latest_execution_status
    verdicts: dict[str, list[str] | None] = {}
    for day, statuses in by_day.items():
        if len(statuses) < len(keys):
            verdicts[day] = None
        else:
            verdicts[day] = [
                name for name in quality.RULE_NAMES
                if statuses[name] == AssetCheckExecutionRecordStatus.FAILED
            ]
    return verdicts
