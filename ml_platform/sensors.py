"""Sensors: new or corrected landing files start runs; failures, deploys and finished runs send notifications."""

import datetime as dt
import hashlib
import json

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from ml_platform import constants, outcomes, traffic
from ml_platform.checks.model_quality import gate_check_names
from ml_platform.estimators import GATE_METRICS, METRIC_LABELS
from ml_platform.instance_queries import (
    check_verdicts,
    completed_check_results,
    latest_materialization_per_partition,
    latest_storage_ids,
    materializations_after,
    newest_materialization,
    newest_materialized_partition,
    run_model_events,
    runs_in_flight,
)
from ml_platform.jobs import job_names, monitoring_asset_names, retrain_keys
from ml_platform.resources.landing_zone import LandingZone
from ml_platform.resources.model_store import ModelStore
from ml_platform.resources.notifier import NotificationError, Notifier
from ml_platform.runtime import DATE_DIMENSION, PipelineRuntime


def _load_cursor(raw: str | None) -> dict:
    """The landing sensor's cursor: the fingerprint of each day's file, and the days ingested since
    the last retraining run (a cursor of an older version named one day to retrain: ``retrain``)."""
    cursor = json.loads(raw) if raw else {}
    pending = cursor.get("pending")
    if pending is None:
        pending = [cursor["retrain"]] if cursor.get("retrain") else []
    return {"files": cursor.get("files", {}), "pending": sorted(pending)}


def landing_sensor_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_landing_zone_sensor"


def build_landing_sensor(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        job=job,
        name=landing_sensor_name(pipeline),
        minimum_interval_seconds=pipeline.settings.sensor_interval_s,
        description=f"Ingests each new or changed landing file of {pipeline.name}, then retrains on the"
        " newest day once.",
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def landing_zone_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZone):
        return _landing_tick(context, pipeline, landing_zone.at(pipeline.spec.landing))

    return landing_zone_sensor


def _files_of_partitions(pipeline: PipelineRuntime, landing_zone: LandingZone) -> list:
    """The landing zone's files (names and stat only) whose day is a partition of the pipeline: a
    file for today (or later) waits until its day has ended and its partition exists."""
    last_partition = pipeline.partitions.get_last_partition_key()
    first_partition = pipeline.partitions.get_first_partition_key()
    return [
        f
        for f in landing_zone.list_files()
        if first_partition and last_partition and first_partition <= f.day <= last_partition
    ]


def _landing_tick(context: dg.SensorEvaluationContext, pipeline: PipelineRuntime, landing_zone: LandingZone):
    """One tick: list the landing zone (names and stat only) and compare with the cursor.

    - Each day whose file is new or whose fingerprint (size + mtime locally, ETag + size on S3)
      changed gets an ingest run of
      `raw_data` for that day; run_key = day + fingerprint, so a file never triggers twice and a
      corrected file triggers again.
    - Once no ingest run is in flight, one retraining run (`training_data` and downstream) for the
      newest day whose checks passed, so a late correction of an old day reaches production too;
      none when no newly ingested day passed its checks (that day's failed run has already said
      why: one alert per bad file, not a second one from a retraining run bound to fail).
    """
    cursor = _load_cursor(context.cursor)
    files = _files_of_partitions(pipeline, landing_zone)
    requests, seen = _ingest_requests(pipeline, files, cursor["files"])
    present = {f.day for f in files}
    pending = [day for day in cursor["pending"] if day in present]
    skip_reason = "no new or changed landing files"
    if requests and files:
        pending = sorted(set(pending) | {r.partition_key for r in requests})  # ingest first; retrain later
    elif pending:
        retrain, skip_reason, waiting = _retrain_request(context, pipeline, pending, present, seen)
        if retrain is not None:
            requests.append(retrain)
        if not waiting:
            pending = []
    new_cursor = json.dumps({"files": seen, "pending": pending}, sort_keys=True)
    if not requests:
        return dg.SensorResult(skip_reason=skip_reason, cursor=new_cursor)
    return dg.SensorResult(run_requests=requests, cursor=new_cursor)


def _ingest_requests(pipeline: PipelineRuntime, files: list, seen: dict[str, str]) -> tuple[list, dict[str, str]]:
    """(an ingest run request for each file whose fingerprint is new, the fingerprints now seen of
    the files present)."""
    seen = dict(seen)
    requests = []
    for landing_file in files:
        if seen.get(landing_file.day) == landing_file.fingerprint:
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"ingest:{landing_file.day}:{landing_file.fingerprint}",
                partition_key=landing_file.day,
                asset_selection=[pipeline.key("raw_data")],
                tags={
                    constants.TRIGGER_TAG: constants.LANDING_INGEST_TRIGGER,
                    constants.FINGERPRINT_TAG: landing_file.fingerprint,
                    constants.PIPELINE_TAG: pipeline.name,
                },
            )
        )
        seen[landing_file.day] = landing_file.fingerprint
    present = {f.day for f in files}
    return requests, {day: fp for day, fp in seen.items() if day in present}


def _retrain_request(
    context: dg.SensorEvaluationContext,
    pipeline: PipelineRuntime,
    pending: list[str],
    present: set[str],
    seen: dict[str, str],
) -> tuple[dg.RunRequest | None, str, bool]:
    """(the retraining run for the newest day that passed its checks, or None; why not; whether the
    pending days wait for ingest runs still in flight): none when no pending day passed."""
    in_flight = runs_in_flight(
        context.instance,
        {constants.TRIGGER_TAG: constants.LANDING_INGEST_TRIGGER, constants.PIPELINE_TAG: pipeline.name},
    )
    if in_flight:
        reason = f"waiting for {in_flight} ingest run(s) before retraining"
        context.log.info(reason)
        return None, reason, True
    day, reason = _day_to_retrain(context.instance, pipeline, pending, present)
    if day is None:
        context.log.info(reason)
        return None, reason, False
    state = json.dumps(sorted(seen.items()))
    return (
        dg.RunRequest(
            run_key=f"retrain:{day}:{hashlib.sha256(state.encode()).hexdigest()[:16]}",
            partition_key=day,
            asset_selection=retrain_keys(pipeline),
            tags={constants.TRIGGER_TAG: constants.LANDING_RETRAIN_TRIGGER, constants.PIPELINE_TAG: pipeline.name},
        ),
        "",
        False,
    )


def _day_to_retrain(
    instance: dg.DagsterInstance, pipeline: PipelineRuntime, ingested: list[str], present: set[str]
) -> tuple[str | None, str]:
    """(the newest day with a landing file whose raw_data checks passed, or None; why not). None
    unless one of the ``ingested`` days passed: a bad file's failed ingest run is its one alert."""
    verdicts = check_verdicts(instance, pipeline, ingested)
    passed = [day for day in ingested if verdicts.get(day) == []]
    if not passed:
        failed = [f"{day} ({', '.join(verdicts[day]) if verdicts.get(day) else 'not checked'})" for day in ingested]
        return None, f"no retraining: no newly ingested day passed its checks: {'; '.join(failed)}"
    newer = sorted((day for day in present if day > max(passed)), reverse=True)
    newer_verdicts = check_verdicts(instance, pipeline, newer) if newer else {}
    return next((day for day in newer if newer_verdicts.get(day) == []), max(passed)), ""


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
        metadata = {k: v.value for k, v in deployed.metadata.items()}
        kind = "deployed" if metadata.get("Promoted") else "kept"
        verb = "deployed" if kind == "deployed" else "not promoted"
        return kind, f"{verb}: {pipeline.model_name} {metadata.get('Version', '?')} ({metadata.get('Outcome', '-')})"
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


def deploy_sensor_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_notify_on_deploy"


def build_deploy_sensor(pipeline: PipelineRuntime) -> dg.SensorDefinition:
    key = pipeline.key("deployed_model")
    metric = pipeline.spec.gate_metric
    label = METRIC_LABELS[metric]

    @dg.sensor(
        name=deploy_sensor_name(pipeline),
        description=f"Announces each {key.to_user_string()} materialization: promoted or kept, version, {metric}.",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
    )
    def notify_on_deploy(context: dg.SensorEvaluationContext, notifier: Notifier):
        """One message per deployed_model materialization since the last tick, oldest first."""
        records = materializations_after(context.instance, key, int(context.cursor or 0))
        if not records:
            return dg.SkipReason(f"no new {key.to_user_string()} materialization")
        for record in records:
            materialization = record.asset_materialization
            metadata = {k: v.value for k, v in materialization.metadata.items()}
            fields = {
                "Pipeline": pipeline.name,
                "Run id": record.run_id,
                "Partition": materialization.partition or "-",
                "Version": str(metadata.get("Version", "-")),
                "Promoted": str(metadata.get("Promoted", "-")),
                label: f"{metadata[label]:.4f}" if label in metadata else "-",
                "Location": str(metadata.get("Location", "-")),
                "Outcome": str(metadata.get("Outcome", "-")),
            }
            channels = notifier.send(
                f"ml_platform model deployed: {pipeline.model_name}",
                [],
                fields,
                route=pipeline.spec.notifications.route("on_deploy"),
            )
            # Advance past each sent message: a failed send retries only what was not sent.
            context.update_cursor(str(record.storage_id))
            context.log.info(f"deploy of {fields['Version']} sent to {', '.join(channels) or 'no channel'}")
        return None

    return notify_on_deploy


def drift_sensor_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_drift_sensor"


def build_drift_sensor(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    from ml_platform.checks.data_quality import DRIFT_CHECK

    spec = pipeline.spec.drift
    check_key = dg.AssetCheckKey(pipeline.key("raw_data"), DRIFT_CHECK)

    @dg.sensor(
        job=job,
        name=drift_sensor_name(pipeline),
        minimum_interval_seconds=pipeline.settings.sensor_interval_s,
        description=f"Retrains {pipeline.name} when its drift check warned on the {spec.sustained_days} newest"
        " checked days in a row.",
        default_status=dg.DefaultSensorStatus.STOPPED,
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
        if context.cursor == day:
            return dg.SkipReason(f"already requested a retraining for the drift up to {day}")
        context.update_cursor(day)
        return dg.RunRequest(
            run_key=f"drift:{day}",
            partition_key=day,
            asset_selection=retrain_keys(pipeline),
            tags={constants.TRIGGER_TAG: "drift", constants.PIPELINE_TAG: pipeline.name},
        )

    return drift_sensor


def variants_sensor_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_variants_sensor"


def build_variants_sensor(
    pipeline: PipelineRuntime, variants_job: UnresolvedAssetJobDefinition, select_job: UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    """Chains a pipeline with variants: each new train split of a day starts one run per variant
    (in parallel); once every variant of that day is fitted on that split, one run chooses the
    best, evaluates, gates and deploys."""
    split_key, variant_asset = pipeline.key("train_split"), pipeline.key("variant_model")
    tags = {constants.TRIGGER_TAG: "variants", constants.PIPELINE_TAG: pipeline.name}

    @dg.sensor(
        jobs=[variants_job, select_job],
        name=variants_sensor_name(pipeline),
        minimum_interval_seconds=pipeline.settings.sensor_interval_s,
        description=f"After each new {pipeline.name} train split: one {variants_job.name} run per variant"
        f" ({', '.join(pipeline.variants)}), then {select_job.name} once all are fitted.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def variants_sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        instance = context.instance
        if not cursor:
            # Turned on for the first time: from the newest train split on, not the whole history.
            newest = newest_materialization(instance, split_key)
            cursor["splits"] = newest.storage_id - 1 if newest else None
            fitted_before = newest_materialization(instance, variant_asset)
            cursor["variants"] = fitted_before.storage_id if fitted_before else None
        requests = _variant_requests(pipeline, instance, cursor, variants_job.name, tags)
        requests += _select_requests(context, pipeline, cursor, select_job.name, tags)
        context.update_cursor(json.dumps(cursor))
        if not requests:
            return dg.SkipReason("no new train split and no day whose variants are all fitted")
        return requests

    return variants_sensor


def _variant_requests(
    pipeline: PipelineRuntime, instance: dg.DagsterInstance, cursor: dict, job_name: str, tags: dict
) -> list[dg.RunRequest]:
    """One variant_model run per variant for each day with a train split newer than the cursor (a day
    split twice between two ticks: once, on its latest split); the cursor moves past them."""
    splits = materializations_after(instance, pipeline.key("train_split"), cursor.get("splits"))
    newest_split = {r.asset_materialization.partition: r for r in splits}
    if splits:
        cursor["splits"] = splits[-1].storage_id
    return [
        dg.RunRequest(
            job_name=job_name,
            partition_key=pipeline.variant_key(day, variant),
            run_key=f"variant:{day}:{record.storage_id}:{variant}",
            tags=tags,
        )
        for day, record in sorted(newest_split.items())
        for variant in pipeline.variants
    ]


def _select_requests(
    context: dg.SensorEvaluationContext, pipeline: PipelineRuntime, cursor: dict, job_name: str, tags: dict
) -> list[dg.RunRequest]:
    """One select-and-deploy run for each day whose variants were fitted since the cursor and are
    now all fitted on that day's latest train split; the cursor moves past them."""
    instance, split_key, variant_asset = context.instance, pipeline.key("train_split"), pipeline.key("variant_model")
    days = set()
    for record in materializations_after(instance, variant_asset, cursor.get("variants"), limit=1000):
        key = pipeline.variant_partitions.get_partition_key_from_str(record.asset_materialization.partition)
        days.add(key.keys_by_dimension[DATE_DIMENSION])
        cursor["variants"] = record.storage_id
    requests = []
    for day in sorted(days):
        split_id = latest_storage_ids(instance, split_key, [day]).get(day)
        keys = {str(pipeline.variant_key(day, v)): v for v in pipeline.variants}
        done = latest_storage_ids(instance, variant_asset, list(keys))
        waiting = [v for k, v in keys.items() if split_id is None or done.get(k, 0) < split_id]
        if waiting:
            context.log.info(f"{day}: waiting for variant(s) {', '.join(waiting)}")
            continue
        requests.append(
            dg.RunRequest(job_name=job_name, partition_key=day, run_key=f"select:{day}:{split_id}", tags=tags)
        )
    return requests


def scoring_sensor_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_scoring_sensor"


def build_scoring_sensor(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Scores each new or changed file of the pipeline's scoring landing, once (run_key = day +
    fingerprint, as the landing sensor does for training)."""
    location = pipeline.spec.scoring.landing

    @dg.sensor(
        job=job,
        name=scoring_sensor_name(pipeline),
        minimum_interval_seconds=pipeline.settings.sensor_interval_s,
        description=f"Scores each new or changed file of {location} with the production {pipeline.model_name}.",
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def scoring_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZone):
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        files = _files_of_partitions(pipeline, landing_zone.at(location))
        requests = [
            dg.RunRequest(
                run_key=f"score:{scoring_file.day}:{scoring_file.fingerprint}",
                partition_key=scoring_file.day,
                tags={
                    constants.TRIGGER_TAG: "scoring",
                    constants.FINGERPRINT_TAG: scoring_file.fingerprint,
                    constants.PIPELINE_TAG: pipeline.name,
                },
            )
            for scoring_file in _changed_files(files, seen)
        ]
        cursor = json.dumps(_of_present(seen, files), sort_keys=True)
        return _tick_result(requests, cursor, "no new or changed scoring files")

    return scoring_sensor


def served_sensor_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_served_sensor"


# Days older than this (after their end and grace) are not listed again: a part that late is rare,
# and a year of days would otherwise be listed on every tick.
SERVED_RECHECK = dt.timedelta(days=3)


def build_served_sensor(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Materializes served[day] once the day has ended (plus monitoring.grace_minutes), and again
    when a part of the day arrives later (run_key = day + the fingerprint of its parts)."""
    grace = dt.timedelta(minutes=pipeline.spec.monitoring.grace_minutes)
    model = pipeline.model_name
    # With feedback, the day's live metrics too (on the outcomes that have arrived so far).
    selection = [pipeline.key(n) for n in ("served", "live_metrics") if n in monitoring_asset_names(pipeline)]

    @dg.sensor(
        job=job,
        name=served_sensor_name(pipeline),
        minimum_interval_seconds=pipeline.settings.sensor_interval_s,
        description=f"Reads each ended day of {model}'s prediction log into served (again when late parts arrive).",
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def served_sensor(context: dg.SensorEvaluationContext, model_store: ModelStore):
        done: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        now = dt.datetime.now(dt.UTC)
        requests = []
        first = pipeline.partitions.start.date().isoformat()
        days = [day for day in traffic.logged_days(model_store.list_children, model) if day >= first]
        for day in days:
            _, end = traffic.day_bounds(day, pipeline.timezone)
            if end + grace > now or (day in done and end + grace + SERVED_RECHECK < now):
                continue
            keys = traffic.parts_of_day(model_store.list_children, model, day)
            parts_print = traffic.fingerprint(keys)
            if not keys or done.get(day) == parts_print:
                continue
            requests.append(_run_request(pipeline, f"served:{day}:{parts_print}", day, "served", selection))
            done[day] = parts_print
        cursor = json.dumps({day: fp for day, fp in done.items() if day in days}, sort_keys=True)
        return _tick_result(requests, cursor, f"no ended day of {model}'s prediction log to read")

    return served_sensor


def feedback_sensor_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_feedback_sensor"


def build_feedback_sensor(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Ingests each new or changed outcome file into outcomes[day] (run_key = day + fingerprint);
    after each outcomes materialization, re-materializes live_metrics of the days its labels
    belong to (late labels reach the days they are about)."""
    from ml_platform.assets.monitoring import DAYS_LABELLED

    location = pipeline.spec.feedback.landing
    outcomes_key, live_key = pipeline.key("outcomes"), pipeline.key("live_metrics")

    @dg.sensor(
        job=job,
        name=feedback_sensor_name(pipeline),
        minimum_interval_seconds=pipeline.settings.sensor_interval_s,
        description=f"Reads each new outcome file of {location} into outcomes, then re-scores live_metrics of the"
        " days the labels belong to.",
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def feedback_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZone):
        cursor = json.loads(context.cursor) if context.cursor else {}
        seen, after = cursor.get("files", {}), cursor.get("after")
        files = _files_of_partitions(pipeline, landing_zone.at(location))
        requests = [
            _run_request(pipeline, f"outcomes:{f.day}:{f.fingerprint}", f.day, "feedback", [outcomes_key])
            for f in _changed_files(files, seen)
        ]
        for record in materializations_after(context.instance, outcomes_key, after):
            after = record.storage_id
            labelled = record.asset_materialization.metadata.get(DAYS_LABELLED)
            for day in filter(None, str(labelled.value if labelled else "").split(", ")):
                run_key = f"live:{day}:{record.storage_id}"
                requests.append(_run_request(pipeline, run_key, day, "late labels", [live_key]))
        new_cursor = json.dumps({"files": _of_present(seen, files), "after": after})
        return _tick_result(requests, new_cursor, f"no new outcome file in {location}")

    return feedback_sensor


def decay_sensor_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_decay_sensor"


def build_decay_sensor(pipeline: PipelineRuntime, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Retrains when the live gate metric of the newest ``monitoring.sustained_days`` days (with
    enough outcomes) is below the gate's threshold, or below the production model's test score by
    more than ``monitoring.max_drop``: one run per run of decayed days, and a notification with the
    numbers."""
    monitoring = pipeline.spec.monitoring
    metric = pipeline.spec.gate_metric
    gate = next((t for t in pipeline.spec.gate_thresholds if t.metric == metric and t.of_class is None), None)
    live_label = f"Live {METRIC_LABELS.get(metric, metric).lower()}"

    @dg.sensor(
        job=job,
        name=decay_sensor_name(pipeline),
        minimum_interval_seconds=pipeline.settings.sensor_interval_s,
        description=f"Retrains {pipeline.name} when its live {metric} stays decayed for {monitoring.sustained_days}"
        " day(s) with outcomes, and says why.",
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def decay_sensor(context: dg.SensorEvaluationContext, model_store: ModelStore, notifier: Notifier):
        latest = latest_materialization_per_partition(context.instance, pipeline.key("live_metrics"))
        scores = []
        for day, record in latest.items():
            metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
            if live_label in metadata:
                scores.append(outcomes.DayScore(day, float(metadata[live_label]), int(metadata["Labelled rows"])))
        production = pipeline.production(model_store, warn=context.log.warning)
        bounds = _decay_bounds(pipeline, gate, production)
        higher = gate.higher_is_better if gate else GATE_METRICS[pipeline.task].get(metric, True)
        found, said = outcomes.decay_of(scores, bounds, higher, monitoring.sustained_days, monitoring.min_outcomes)
        if found is None:
            return dg.SkipReason(said)
        first = found.days[0].day
        if context.cursor == first:
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
        context.update_cursor(first)
        return _run_request(pipeline, f"decay:{first}", day, "decay", retrain_keys(pipeline))

    return decay_sensor


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
        higher = gate.higher_is_better if gate else GATE_METRICS[pipeline.task].get(metric, True)
        bound = tested - max_drop if higher else tested + max_drop
        bounds[f"{production.version}'s test {metric} {tested:.4f} {'-' if higher else '+'} {max_drop:g}"] = bound
    return bounds


def _run_request(
    pipeline: PipelineRuntime, run_key: str, day: str, trigger: str, assets: list[dg.AssetKey]
) -> dg.RunRequest:
    """A run of some of the pipeline's assets for one day, tagged with what triggered it."""
    return dg.RunRequest(
        run_key=run_key,
        partition_key=day,
        asset_selection=assets,
        tags={constants.TRIGGER_TAG: trigger, constants.PIPELINE_TAG: pipeline.name},
    )


def _changed_files(files: list, seen: dict[str, str]) -> list:
    """The files that are new or changed since ``seen`` ({day: fingerprint}), which records them."""
    changed = [f for f in files if seen.get(f.day) != f.fingerprint]
    seen.update({f.day: f.fingerprint for f in changed})
    return changed


def _of_present(seen: dict[str, str], files: list) -> dict[str, str]:
    """``seen`` without the days whose file is gone (a cursor stays the size of the landing)."""
    present = {f.day for f in files}
    return {day: fingerprint for day, fingerprint in seen.items() if day in present}


def _tick_result(requests: list[dg.RunRequest], cursor: str, skip_reason: str) -> dg.SensorResult:
    """The runs of a tick with its cursor, or, with none, why it skipped."""
    if not requests:
        return dg.SensorResult(skip_reason=skip_reason, cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
