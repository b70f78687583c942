"""The notifications: a failed run, a finished run (what came of the model: deployed, kept or held
back, and why), and each deploy, sent to the pipeline's channels (notifications.on_failure,
on_success, on_deploy)."""

from __future__ import annotations

import dagster as dg

from ml_platform.asset_records import DeployedRecord, metric_key
from ml_platform.checks.model_quality import gate_check_names
from ml_platform.instance_queries import materializations_after, run_model_events
from ml_platform.jobs import job_names
from ml_platform.resources.notifier import Notifier
from ml_platform.runtime import PipelineRuntime
from ml_platform.sensors.base import pipeline_sensor
from ml_platform.sensors.cursors import StorageIdCursor

# Errors Dagster wraps around the user's error (a step that ran out of retries).
_DAGSTER_WRAPPERS = ("RetryRequestedFromPolicy", "RetryRequested")


def _failure_summary(context: dg.RunFailureSensorContext) -> tuple[list[str], str]:
    steps, errors = [], []
    for event in context.get_step_failure_events():
        steps.append(event.step_key or "?")
        data = event.step_failure_data
        if data and data.user_failure_data and data.user_failure_data.description:
            # A dg.Failure raised on purpose says what went wrong, naming the file or key.
            message = data.user_failure_data.description
        else:
            # Skip Dagster's wrappers down to the user's error, but no further: its own
            # causes (pyarrow, sockets) say less than it does.
            error = data.error if data else None
            while (
                error is not None
                and error.cause is not None
                and (error.cls_name.startswith("Dagster") or error.cls_name in _DAGSTER_WRAPPERS)
            ):
                error = error.cause
            message = error.message.strip() if error else ""
        if message:
            errors.append(f"{event.step_key}: {message}")
    if not errors and context.failure_event.message:
        errors.append(context.failure_event.message)
    return steps, "\n".join(errors)


def build_failure_sensor(pipelines: list[PipelineRuntime]) -> dg.SensorDefinition:
    routes_by_job = {name: p.spec.notifications.route("on_failure") for p in pipelines for name in job_names(p)}

    @dg.run_failure_sensor(
        name="notify_on_run_failure",
        description="Sends run id, job, failing step and error to the notification channels of the"
        " failed run's pipeline.",
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
    )
    def notify_on_run_failure(context: dg.RunFailureSensorContext, notifier: Notifier):
        """Every failed run of this code location is announced."""
        run = context.dagster_run
        steps, error = _failure_summary(context)
        fields = {
            "Run id": run.run_id,
            "Job": run.job_name,
            "Partition": run.tags.get("dagster/partition", "-"),
            "Failing step": ", ".join(steps) or "-",
            "Error": error or "-",
        }
        channels = notifier.send(
            f"ml_platform run failed: {run.job_name}", [], fields, route=routes_by_job.get(run.job_name)
        )
        sent_to = ", ".join(channels) or "no channel (none configured)"
        context.log.info(f"failure of run {run.run_id} sent to {sent_to}")

    return notify_on_run_failure


def run_outcome(pipeline: PipelineRuntime, evaluations: list, materializations: dict) -> tuple[str, str]:
    """What came of the model in one finished run, as (kind, sentence): ``deployed`` / ``kept`` (with
    the version and the deploy's outcome), ``held back`` (by the gate or the signature check, and
    why), or ``no model`` (no model step in the run)."""
    deployed = materializations.get(pipeline.key("deployed_model"))
    if deployed is not None:
        record = DeployedRecord.from_metadata(deployed.metadata)
        kind = "deployed" if record.promoted else "candidate" if record.candidate else "kept"
        verb = {"deployed": "deployed", "candidate": "candidate", "kept": "not promoted"}[kind]
        return kind, f"{verb}: {pipeline.model_name} {record.version} ({record.outcome})"
    failed = [e for e in evaluations if e.asset_key == pipeline.key("model_metrics") and not e.passed]
    gates = gate_check_names(pipeline)
    by_gate = [e for e in failed if e.check_name in gates]
    if by_gate:
        by_gate.sort(key=lambda e: gates.index(e.check_name))
        said = "; ".join(e.description or e.check_name for e in by_gate)
        which = f" ({len(by_gate)} of {len(gates)} checks)" if len(gates) > 1 else ""
        return "held back", f"held back by the gate{which}: {said}"
    if failed:
        first = failed[0]
        return "held back", f"held back by {first.check_name}: {first.description or first.check_name}"
    done = sorted(key.path[-1] for key in materializations)
    return "no model", "no model step in this run" + (f" (materialized: {', '.join(done)})" if done else "")


def build_finished_sensors(pipelines: list[PipelineRuntime]) -> list[dg.SensorDefinition]:
    """``notifications.on_success``: a message for each finished run of a pipeline's jobs saying what came
    of the model. A run held back by a blocking check ends as a failure in Dagster, so a second sensor
    watches failed runs for that case alone (their failure message goes out as well, to on_failure)."""
    by_job = {name: p for p in pipelines for name in job_names(p)}

    def announce(context, notifier: Notifier, held_back_only: bool):
        run = context.dagster_run
        pipeline = by_job.get(run.job_name)
        if pipeline is None:
            return
        route = pipeline.spec.notifications.route("on_success")
        if route.channels == ():
            context.log.info(f"run {run.run_id}: {pipeline.name} has no on_success channel")
            return
        kind, outcome = run_outcome(pipeline, *run_model_events(context.instance, run.run_id))
        if held_back_only and kind != "held back":
            return
        fields = {
            "Pipeline": pipeline.name,
            "Run id": run.run_id,
            "Job": run.job_name,
            "Partition": run.tags.get("dagster/partition", "-"),
            "Outcome": outcome,
        }
        channels = notifier.send(f"ml_platform run finished: {run.job_name}", [], fields, route=route)
        context.log.info(f"run {run.run_id} ({outcome}) sent to {', '.join(channels) or 'no channel'}")

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="notify_on_run_success",
        description="Sends each finished run of a pipeline to its on_success channels, with what came of the"
        " model: deployed or kept.",
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
    )
    def notify_on_run_success(context: dg.RunStatusSensorContext, notifier: Notifier):
        announce(context, notifier, held_back_only=False)

    @dg.run_failure_sensor(
        name="notify_on_held_back_model",
        description="Sends runs whose model a blocking check held back (the gate, the signature) to the"
        " pipeline's on_success channels, saying which check and why.",
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
    )
    def notify_on_held_back_model(context: dg.RunFailureSensorContext, notifier: Notifier):
        announce(context, notifier, held_back_only=True)

    return [notify_on_run_success, notify_on_held_back_model]


def build_deploy_sensor(pipeline: PipelineRuntime) -> dg.SensorDefinition:
    key = pipeline.key("deployed_model")
    metric = pipeline.spec.gate_metric
    label = metric_key(metric)

    @pipeline_sensor(
        pipeline,
        "notify_on_deploy",
        f"Announces each {key.to_user_string()} materialization: promoted or kept, version, {metric}.",
        running=True,
        interval_s=30,
    )
    def notify_on_deploy(context: dg.SensorEvaluationContext, notifier: Notifier):
        """One message per deployed_model materialization since the last tick, oldest first."""
        cursor = StorageIdCursor.load(context.cursor)
        records = materializations_after(context.instance, key, cursor.storage_id)
        if not records:
            return dg.SkipReason(f"no new {key.to_user_string()} materialization")
        for record in records:
            materialization = record.asset_materialization
            deployed = DeployedRecord.from_metadata(materialization.metadata)
            score = deployed.gate_score if deployed.gate_metric == metric else None
            fields = {
                "Pipeline": pipeline.name,
                "Run id": record.run_id,
                "Partition": materialization.partition or "-",
                "Version": deployed.version,
                "Promoted": str(deployed.promoted),
                label: f"{score:.4f}" if score is not None else "-",
                "Location": deployed.location,
                "Outcome": deployed.outcome,
            }
            title = "candidate beside production" if deployed.candidate else "model deployed"
            channels = notifier.send(
                f"ml_platform {title}: {pipeline.model_name}",
                [],
                fields,
                route=pipeline.spec.notifications.route("on_deploy"),
            )
            # Advance past each sent message: a failed send retries only what was not sent.
            context.update_cursor(StorageIdCursor(record.storage_id).dump())
            context.log.info(f"deploy of {fields['Version']} sent to {', '.join(channels) or 'no channel'}")
        return None

    return notify_on_deploy
