"""The sensors that retrain a pipeline on evidence: its drift check warned for days in a row
(``drift``), or its live gate metric decayed for days in a row (``monitoring``, with ``feedback``).
Each requests one retraining run per run of bad days, and says why."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from ml_platform import outcomes
from ml_platform.asset_records import LiveMetricsRecord
from ml_platform.checks.data_quality import DRIFT_CHECK
from ml_platform.instance_queries import (
    completed_check_results,
    latest_materialization_per_partition,
    newest_materialized_partition,
)
from ml_platform.jobs import retrain_keys
from ml_platform.resources.model_store import ModelStore
from ml_platform.resources.notifier import NotificationError, Notifier
from ml_platform.runtime import PipelineRuntime
from ml_platform.sensors.base import pipeline_sensor, run_request
from ml_platform.sensors.cursors import DayCursor


def build_drift_sensor(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    spec = pipeline.spec.drift
    check_key = dg.AssetCheckKey(pipeline.key("raw_data"), DRIFT_CHECK)

    @pipeline_sensor(
        pipeline,
        "drift_sensor",
        f"Retrains {pipeline.name} when its drift check warned on the {spec.sustained_days} newest checked days"
        " in a row.",
        jobs=[job],
    )
    def drift_sensor(context: dg.SensorEvaluationContext):
        """One tick: the drift check's latest result per day (current materializations only); if the
        newest ``sustained_days`` checked days all drifted, one retraining run for the newest."""
        results = sorted(
            (day, failed[DRIFT_CHECK]) for day, failed in completed_check_results(context.instance, [check_key]).items()
        )
        newest = results[-spec.sustained_days :]
        if len(newest) < spec.sustained_days or not all(drifted for _, drifted in newest):
            streak = 0
            for _, drifted in reversed(results):
                if not drifted:
                    break
                streak += 1
            return dg.SkipReason(
                f"{streak} drifting day(s) in a row among the newest checked days;"
                f" retraining takes {spec.sustained_days}"
            )
        day = newest[-1][0]
        if DayCursor.load(context.cursor).day == day:
            return dg.SkipReason(f"already requested a retraining for the drift up to {day}")
        context.update_cursor(DayCursor(day).dump())
        return run_request(pipeline, f"drift:{day}", day, "drift", retrain_keys(pipeline))

    return drift_sensor


def build_decay_sensor(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Retrains when the live gate metric of the newest ``monitoring.sustained_days`` days (with
    enough outcomes) is below the gate's threshold, or below the production model's test score by
    more than ``monitoring.max_drop``: one run per run of decayed days, and a notification with the
    numbers."""
    monitoring = pipeline.spec.monitoring
    metric = pipeline.spec.gate_metric
    gate = next((t for t in pipeline.spec.gate_thresholds if t.metric == metric and t.of_class is None), None)

    @pipeline_sensor(
        pipeline,
        "decay_sensor",
        f"Retrains {pipeline.name} when its live {metric} stays decayed for {monitoring.sustained_days} day(s)"
        " with outcomes, and says why.",
        jobs=[job],
    )
    def decay_sensor(context: dg.SensorEvaluationContext, model_store: ModelStore, notifier: Notifier):
        scores = _live_scores(context.instance, pipeline, metric)
        production = pipeline.production(model_store, warn=context.log.warning)
        bounds = _decay_bounds(pipeline, gate, production)
        higher = pipeline.spec.gate_higher_is_better
        found, said = outcomes.decay_of(scores, bounds, higher, monitoring.sustained_days, monitoring.min_outcomes)
        if found is None:
            return dg.SkipReason(said)
        first = found.days[0].day
        if DayCursor.load(context.cursor).day == first:
            return dg.SkipReason(f"already retrained for the decay since {first}")
        day = newest_materialized_partition(context.instance, pipeline.key("raw_data"))
        if day is None:
            return dg.SkipReason(
                f"live {metric} decayed ({found.reason}), but no raw_data day is ingested to retrain on"
            )
        try:
            _announce_decay(notifier, pipeline, found, production, day)
        except NotificationError as exc:  # the retraining matters more than its message
            context.log.warning(f"retraining {pipeline.model_name} for the decay since {first}, unannounced: {exc}")
        context.update_cursor(DayCursor(first).dump())
        return run_request(pipeline, f"decay:{first}", day, "decay", retrain_keys(pipeline))

    return decay_sensor


def _live_scores(instance: dg.DagsterInstance, pipeline: PipelineRuntime, metric: str) -> list[outcomes.DayScore]:
    """Each day's live score of ``metric`` and its labelled rows, from its newest live_metrics."""
    latest = latest_materialization_per_partition(instance, pipeline.key("live_metrics"))
    scores = []
    for day, record in latest.items():
        live = LiveMetricsRecord.from_metadata(record.asset_materialization.metadata)
        if live.score(metric) is not None:
            scores.append(outcomes.DayScore(day, live.score(metric), live.labelled_rows))
    return scores


def _announce_decay(notifier: Notifier, pipeline: PipelineRuntime, found, production, day: str) -> None:
    """The on_decay message: which days, the live scores against what they were compared with, and
    the retraining."""
    metric = pipeline.spec.gate_metric
    fields = {
        "Pipeline": pipeline.name,
        "Model": pipeline.model_name,
        "Production version": production.version if production else "-",
        f"Live {metric}": found.reason,
        "Retraining on": f"the window ending {day}",
    }
    notifier.send(
        f"ml_platform retraining {pipeline.model_name}: live {metric} decayed",
        [f"Live {metric} stayed decayed for {len(found.days)} day(s), {found.days[0].day} to {found.days[-1].day}."],
        fields,
        route=pipeline.spec.notifications.route("on_decay"),
    )


def _decay_bounds(pipeline: PipelineRuntime, gate, production) -> dict[str, float]:
    """What a live score is compared with: the gate's threshold on its metric, and the production
    model's test score less ``monitoring.max_drop``."""
    metric, max_drop = pipeline.spec.gate_metric, pipeline.spec.monitoring.max_drop
    bounds = {f"the gate's {gate.key}": gate.value} if gate else {}
    tested = production.record.metrics.get(metric) if production else None
    if max_drop is not None and tested is not None:
        higher = pipeline.spec.gate_higher_is_better
        bound = tested - max_drop if higher else tested + max_drop
        bounds[f"{production.version}'s test {metric} {tested:.4f} {'-' if higher else '+'} {max_drop:g}"] = bound
    return bounds
