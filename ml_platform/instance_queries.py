"""Every question the platform asks Dagster's instance (its run and event storage), in one place.

The assets and sensors need a few facts that are not asset values: the verdicts of checks that
ran in earlier runs, runs in flight, materializations since a sensor's cursor. Each is one
function here; nothing else in the package reads the instance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
)

if TYPE_CHECKING:
    from ml_platform.runtime import PipelineRuntime

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


_DONE = (
    AssetCheckExecutionRecordStatus.SUCCEEDED,
    AssetCheckExecutionRecordStatus.FAILED,
)


def completed_check_results(
    instance: dg.DagsterInstance, keys: list[dg.AssetCheckKey], days: list[str] | None = None
) -> dict[str, dict[str, bool]]:
    """Per day (of ``days``, or every checked day): check name -> failed, for each check whose latest
    execution completed on the day's current materialization. The status enum is not exported by
    ``dagster``; it is imported from its module (pinned to 1.13.27)."""
    results: dict[str, dict[str, bool]] = {day: {} for day in days or []}
    for info in instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=days):
        if (
            info.partition_key
            and (days is None or info.partition_key in results)
            and info.is_current
            and info.latest_execution_status in _DONE
        ):
            results.setdefault(info.partition_key, {})[info.check_key.name] = (
                info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED
            )
    return results


def check_verdicts(
    instance: dg.DagsterInstance, pipeline: PipelineRuntime, days: list[str]
) -> dict[str, list[str] | None]:
    """For each day: the names of its raw_data checks that failed with severity ERROR ([] = all
    passed, or failed only as warnings), or None when the checks have not completed on the day's
    current materialization.

    Checks of a single-run range record no per-day result (Dagster 1.13.27 records each day of the
    range as planned/skipped), so such days come back as None and training_data applies the data
    contract itself.
    """
    names = pipeline.raw_data_check_names
    keys = [dg.AssetCheckKey(pipeline.key("raw_data"), name) for name in names]
    verdicts: dict[str, list[str] | None] = {}
    for day, failed in completed_check_results(instance, keys, days).items():
        if len(failed) < len(keys):
            verdicts[day] = None
            continue
        failed_names = [name for name in names if failed[name]]
        warned = _warned_only(instance, [k for k in keys if k.name in failed_names], day) if failed_names else set()
        verdicts[day] = [name for name in failed_names if name not in warned]
    return verdicts


def _warned_only(instance: dg.DagsterInstance, keys: list[dg.AssetCheckKey], day: str) -> set[str]:
    """Of these failed checks of ``day``, the names of those whose latest evaluation failed with
    severity WARN (a ``warn`` rule of the contract): the day is still good for training. The
    partition filter is imported from its module (pinned to 1.13.27)."""
    from dagster._core.event_api import PartitionKeyFilter

    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        keys, partition_filter=PartitionKeyFilter(key=day)
    )
    warned = set()
    for key, record in records.items():
        evaluation = (
            record.event.dagster_event.event_specific_data if record.event and record.event.dagster_event else None
        )
        if getattr(evaluation, "severity", None) == dg.AssetCheckSeverity.WARN:
            warned.add(key.name)
    return warned


def runs_in_flight(instance: dg.DagsterInstance, tags: dict[str, str]) -> int:
    """How many runs with these tags are queued or running."""
    return instance.get_runs_count(dg.RunsFilter(statuses=IN_FLIGHT, tags=tags))


def materializations_after(
    instance: dg.DagsterInstance, key: dg.AssetKey, after_storage_id: int | None, limit: int = 100
) -> list:
    """The materialization records of ``key`` after a storage id (a sensor's cursor), oldest first."""
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=after_storage_id),
        limit=limit,
        ascending=True,
    ).records


def newest_materialization(instance: dg.DagsterInstance, key: dg.AssetKey):
    """The newest materialization record of ``key``, or None."""
    records = instance.fetch_materializations(key, limit=1).records
    return records[0] if records else None


def latest_data_version(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> str | None:
    """The data version Dagster recorded with the latest materialization of ``key``'s partition, or
    None (never materialized, or materialized without one). The tag's name is imported from its
    module, as the check status above (pinned to 1.13.27)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0].asset_materialization.tags.get(DATA_VERSION_TAG) if records else None


def latest_storage_ids(instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str]) -> dict[str, int]:
    """{partition: storage id of its latest materialization} for those of ``partitions`` that have one."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions), limit=1000
    ).records
    latest: dict[str, int] = {}
    for record in records:  # newest first
        latest.setdefault(record.asset_materialization.partition, record.storage_id)
    return latest


def run_model_events(instance: dg.DagsterInstance, run_id: str) -> tuple[list, dict]:
    """What a run did that a message reports: its asset check evaluations (``AssetCheckEvaluation``:
    asset key, name, passed, description) and its materializations by asset key (the last of each)."""
    evaluations = [
        record.event_log_entry.dagster_event.event_specific_data
        for record in instance.get_records_for_run(
            run_id=run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=1000
        ).records
    ]
    materializations = {}
    for record in instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10000
    ).records:
        materialization = record.event_log_entry.asset_materialization
        materializations[materialization.asset_key] = materialization
    return evaluations, materializations


def latest_materialization_per_partition(instance: dg.DagsterInstance, key: dg.AssetKey, limit: int = 1000) -> dict:
    """{partition: its newest materialization record} of ``key``, over its newest ``limit`` records."""
    records = instance.fetch_materializations(key, limit=limit, ascending=False).records
    latest: dict = {}
    for record in records:
        latest.setdefault(record.asset_materialization.partition, record)
    return latest


def newest_materialized_partition(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The newest partition of ``key`` that has been materialized, or None."""
    partitions = instance.get_materialized_partitions(key)
    return max(partitions) if partitions else None
