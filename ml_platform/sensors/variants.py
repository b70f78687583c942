"""The variants sensor (``model.variants``): each new train split of a day starts one run per
variant, in parallel; once every variant of that day is fitted on that split, one run chooses the
best, evaluates, gates and deploys."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from ml_platform.instance_queries import latest_storage_ids, materializations_after, newest_materialization
from ml_platform.runtime import DATE_DIMENSION, PipelineRuntime
from ml_platform.sensors.base import pipeline_sensor, run_request
from ml_platform.sensors.cursors import VariantsCursor


def build_variants_sensor(
    pipeline: PipelineRuntime, variants_job: UnresolvedAssetJobDefinition, select_job: UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    split_key, variant_asset = pipeline.key("train_split"), pipeline.key("variant_model")

    @pipeline_sensor(
        pipeline,
        "variants_sensor",
        f"After each new {pipeline.name} train split: one {variants_job.name} run per variant"
        f" ({', '.join(pipeline.variants)}), then {select_job.name} once all are fitted.",
        jobs=[variants_job, select_job],
        running=True,
    )
    def variants_sensor(context: dg.SensorEvaluationContext):
        cursor = VariantsCursor.load(context.cursor)
        instance = context.instance
        if not cursor.started:
            # Turned on for the first time: from the newest train split on, not the whole history.
            newest = newest_materialization(instance, split_key)
            cursor.splits = newest.storage_id - 1 if newest else None
            fitted_before = newest_materialization(instance, variant_asset)
            cursor.variants = fitted_before.storage_id if fitted_before else None
        requests = _variant_requests(pipeline, instance, cursor, variants_job.name)
        requests += _select_requests(context, pipeline, cursor, select_job.name)
        context.update_cursor(cursor.dump())
        if not requests:
            return dg.SkipReason("no new train split and no day whose variants are all fitted")
        return requests

    return variants_sensor


def _variant_requests(
    pipeline: PipelineRuntime, instance: dg.DagsterInstance, cursor: VariantsCursor, job_name: str
) -> list[dg.RunRequest]:
    """One variant_model run per variant for each day with a train split newer than the cursor (a day
    split twice between two ticks: once, on its latest split); the cursor moves past them."""
    splits = materializations_after(instance, pipeline.key("train_split"), cursor.splits)
    newest_split = {r.asset_materialization.partition: r for r in splits}
    if splits:
        cursor.splits = splits[-1].storage_id
    return [
        run_request(
            pipeline,
            f"variant:{day}:{record.storage_id}:{variant}",
            pipeline.variant_key(day, variant),
            "variants",
            job_name=job_name,
        )
        for day, record in sorted(newest_split.items())
        for variant in pipeline.variants
    ]


def _select_requests(
    context: dg.SensorEvaluationContext, pipeline: PipelineRuntime, cursor: VariantsCursor, job_name: str
) -> list[dg.RunRequest]:
    """One select-and-deploy run for each day whose variants were fitted since the cursor and are
    now all fitted on that day's latest train split; the cursor moves past them."""
    instance, split_key, variant_asset = context.instance, pipeline.key("train_split"), pipeline.key("variant_model")
    days = set()
    for record in materializations_after(instance, variant_asset, cursor.variants, limit=1000):
        key = pipeline.variant_partitions.get_partition_key_from_str(record.asset_materialization.partition)
        days.add(key.keys_by_dimension[DATE_DIMENSION])
        cursor.variants = record.storage_id
    requests = []
    for day in sorted(days):
        split_id = latest_storage_ids(instance, split_key, [day]).get(day)
        keys = {str(pipeline.variant_key(day, v)): v for v in pipeline.variants}
        done = latest_storage_ids(instance, variant_asset, list(keys))
        waiting = [v for k, v in keys.items() if split_id is None or done.get(k, 0) < split_id]
        if waiting:
            context.log.info(f"{day}: waiting for variant(s) {', '.join(waiting)}")
            continue
        requests.append(run_request(pipeline, f"select:{day}:{split_id}", day, "variants", job_name=job_name))
    return requests
