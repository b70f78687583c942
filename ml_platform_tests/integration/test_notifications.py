"""Notifications reach real servers: a Slack-compatible webhook (HTTP on 127.0.0.1) and e-mail
(an aiosmtpd SMTP server on 127.0.0.1). The sensors are evaluated against real runs: a run that
really failed, and a model that was really deployed."""

from __future__ import annotations

import dagster as dg
import pytest

from ml_platform.resources.notifier import (
    NotificationError,
    Notifier,
    notifier_from_env,
)
from ml_platform_tests.support.constants import DAYS, END_DAY, MODEL_NAME
from ml_platform_tests.support.notifications import (
    RECIPIENT,
    SENDER,
    body_text,
    evaluate_failure_sensor,
    notifier_for,
    run_failure_event,
)
from ml_platform_tests.support.pipelines import DEMO
from ml_platform_tests.support.platform import Platform
from ml_platform_tests.support.results import step_errors
from ml_platform_tests.support.servers import SmtpServer, WebhookServer, free_port

MISSING_DAY = "2026-01-01"  # `platform` has no landing files at all


# -- real servers on 127.0.0.1 -------------------------------------------------------------------


notify_on_deploy = DEMO.sensor("notify_on_deploy")


# -- evaluating the sensors against real runs ----------------------------------------------------


# -- Notifier ------------------------------------------------------------------------------------


def test_send_delivers_to_webhook_and_email(webhook: WebhookServer, smtp: SmtpServer):
    notifier = notifier_for(webhook, smtp)
    fields = {"Run id": "run-123", "Job": "training", "Failing step": "raw_data"}

    channels = notifier.send("ml_platform run failed: training", ["first line"], fields)

    assert channels == ["webhook", "email"]
    assert len(webhook.bodies) == 1
    assert webhook.paths == ["/hooks/ml-platform"]
    body = webhook.bodies[0]
    assert "ml_platform run failed: training" in body["text"]
    assert "first line" in body["text"]
    for key, value in fields.items():
        assert f"{key}: {value}" in body["text"]
    assert body["subject"] == "ml_platform run failed: training"
    assert body["fields"] == fields

    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["Subject"] == "ml_platform run failed: training"
    assert message["From"] == SENDER
    assert message["To"] == RECIPIENT
    assert smtp.envelopes == [(SENDER, [RECIPIENT])]
    text = body_text(message)
    assert "ml_platform run failed: training" in text
    assert "first line" in text
    for key, value in fields.items():
        assert f"{key}: {value}" in text
    assert "*" not in text  # Slack bold markers are stripped from the e-mail


def test_send_with_several_recipients(webhook: WebhookServer, smtp: SmtpServer):
    notifier = Notifier(smtp_host=smtp.host, smtp_port=smtp.port, smtp_recipients="ops@example.com,ml@example.com")

    assert notifier.send("hello", [], {"Version": "v1"}) == ["email"]

    assert webhook.bodies == []
    assert len(smtp.messages) == 1
    assert smtp.envelopes[0][1] == ["ops@example.com", "ml@example.com"]
    assert "Version: v1" in body_text(smtp.messages[0])


def test_unreachable_webhook_raises_naming_webhook_and_still_sends_email(smtp: SmtpServer):
    closed = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    notifier = Notifier(
        webhook_url=closed, smtp_host=smtp.host, smtp_port=smtp.port, smtp_recipients=RECIPIENT, timeout_s=5.0
    )

    with pytest.raises(NotificationError, match="webhook") as raised:
        notifier.send("subject", [], {"Run id": "r1"})

    assert "email" not in str(raised.value)  # only the channel that failed is named
    # Every channel is tried: the e-mail went out although the webhook failed first.
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["Subject"] == "subject"


def test_webhook_answering_an_http_error_raises_naming_webhook(webhook: WebhookServer):
    notifier = Notifier(webhook_url=webhook.url + "/fail", timeout_s=5.0)

    with pytest.raises(NotificationError, match="webhook: HTTP Error 500"):
        notifier.send("subject", [], {"Run id": "r1"})

    assert len(webhook.bodies) == 1  # it was delivered, and refused


def test_unreachable_smtp_raises_naming_email(webhook: WebhookServer):
    port = free_port()
    notifier = Notifier(
        webhook_url=webhook.url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_recipients=RECIPIENT,
        timeout_s=5.0,
    )

    with pytest.raises(NotificationError, match=f"email via 127.0.0.1:{port}"):
        notifier.send("subject", [], {"Run id": "r1"})

    assert len(webhook.bodies) == 1


def test_without_channels_send_delivers_nothing_and_succeeds(webhook: WebhookServer, smtp: SmtpServer):
    notifier = Notifier()

    assert notifier.channels == []
    assert notifier.send("subject", [], {"Run id": "r1"}) == []
    assert webhook.bodies == [] and smtp.messages == []


def test_notifier_from_env_delivers(monkeypatch, webhook: WebhookServer, smtp: SmtpServer):
    environ = {
        "ML_PLATFORM_WEBHOOK_URL": webhook.url,
        "ML_PLATFORM_SMTP_HOST": smtp.host,
        "ML_PLATFORM_SMTP_PORT": str(smtp.port),
        "ML_PLATFORM_SMTP_RECIPIENTS": RECIPIENT,
        "ML_PLATFORM_SMTP_SENDER": "platform@example.com",
    }
    # The resource holds dg.EnvVar references; Dagster resolves them from the process environment
    # when it builds the resource.
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    for name in ("ML_PLATFORM_SMTP_USER", "ML_PLATFORM_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)

    resource = notifier_from_env(environ)

    with dg.build_resources({"notifier": resource}) as resources:
        notifier = resources.notifier
        assert notifier.webhook_url == webhook.url
        assert notifier.smtp_port == smtp.port
        assert notifier.send("from the environment", [], {"Run id": "env-run"}) == ["webhook", "email"]

    assert len(webhook.bodies) == 1
    assert "from the environment" in webhook.bodies[0]["text"]
    assert "Run id: env-run" in webhook.bodies[0]["text"]
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["From"] == "platform@example.com"
    assert smtp.messages[0]["To"] == RECIPIENT
    assert "Run id: env-run" in body_text(smtp.messages[0])


def test_notifier_from_env_without_variables_has_no_channels():
    resource = notifier_from_env({})

    with dg.build_resources({"notifier": resource}) as resources:
        assert resources.notifier.channels == []


# -- the run-failure sensor, end to end ----------------------------------------------------------


def test_run_failure_sensor_sends_run_job_step_and_error(
    platform: Platform, instance: dg.DagsterInstance, webhook: WebhookServer, smtp: SmtpServer
):
    result = platform.materialize("key:demo/raw_data", MISSING_DAY)  # no landing file: fails for real
    assert not result.success
    assert f"no landing file for {MISSING_DAY}" in step_errors(result)

    run = evaluate_failure_sensor(instance, result.run_id, notifier_for(webhook, smtp))

    assert len(webhook.bodies) == 1
    text = webhook.bodies[0]["text"]
    fields = webhook.bodies[0]["fields"]
    assert fields["Run id"] == result.run_id
    assert fields["Job"] == run.job_name
    assert fields["Partition"] == MISSING_DAY
    assert fields["Failing step"] == "demo__raw_data"
    assert f"no landing file for {MISSING_DAY}" in fields["Error"]
    for expected in (result.run_id, run.job_name, "raw_data", f"no landing file for {MISSING_DAY}"):
        assert expected in text

    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["Subject"] == f"ml_platform run failed: {run.job_name}"
    mail = body_text(message)
    for expected in (result.run_id, run.job_name, "raw_data", f"no landing file for {MISSING_DAY}"):
        assert expected in mail


def test_run_failure_sensor_raises_when_the_webhook_is_down(
    platform: Platform, instance: dg.DagsterInstance, smtp: SmtpServer
):
    """A notification that cannot be delivered fails the sensor tick visibly (not silently)."""
    result = platform.materialize("key:demo/raw_data", MISSING_DAY)
    assert not result.success
    notifier = Notifier(
        webhook_url=f"http://127.0.0.1:{free_port()}/hook",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        smtp_recipients=RECIPIENT,
        timeout_s=5.0,
    )

    with pytest.raises(NotificationError, match="webhook"):
        evaluate_failure_sensor(instance, result.run_id, notifier)

    assert len(smtp.messages) == 1
    assert result.run_id in body_text(smtp.messages[0])


def test_run_failure_notification_names_the_corrupt_landing_file(
    seeded: Platform, instance: dg.DagsterInstance, webhook: WebhookServer, smtp: SmtpServer
):
    day = DAYS[-1]
    path = seeded.landing / f"{day}.parquet"
    path.write_bytes(b"this is not a parquet file")
    result = seeded.materialize("key:demo/raw_data", day)
    assert not result.success
    assert f"landing file {path} cannot be read" in step_errors(result)  # the run's own error names it

    evaluate_failure_sensor(instance, result.run_id, notifier_for(webhook, smtp))

    assert len(webhook.bodies) == 1
    assert webhook.bodies[0]["fields"]["Failing step"] == "demo__raw_data"
    assert f"landing file {path} cannot be read" in webhook.bodies[0]["fields"]["Error"]
    assert f"landing file {path} cannot be read" in body_text(smtp.messages[0])


# -- the deploy sensor ---------------------------------------------------------------------------


def test_deploy_sensor_announces_promoted_version(seeded: Platform, webhook: WebhookServer, smtp: SmtpServer):
    assert all(r.success for r in seeded.ingest())
    train = seeded.train()
    assert train.success
    production = seeded.store.production(MODEL_NAME)
    assert production is not None

    with dg.build_sensor_context(
        instance=seeded.instance,
        sensor_name="demo_notify_on_deploy",
        resources={"notifier": notifier_for(webhook, smtp)},
    ) as context:
        result = notify_on_deploy.evaluate_tick(context)

    assert len(webhook.bodies) == 1
    fields = webhook.bodies[0]["fields"]
    text = webhook.bodies[0]["text"]
    assert fields["Version"] == production.version
    assert fields["Promoted"] == "True"
    assert fields["Run id"] == train.run_id
    assert fields["Partition"] == train.dagster_run.tags["dagster/partition"]
    assert f"Version: {production.version}" in text
    assert "Promoted: True" in text
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["Subject"] == f"ml_platform model deployed: {MODEL_NAME}"
    assert f"Version: {production.version}" in body_text(smtp.messages[0])

    # The cursor moves past the announced materialization: the next tick announces nothing.
    assert result.cursor is not None
    with dg.build_sensor_context(
        instance=seeded.instance,
        sensor_name="demo_notify_on_deploy",
        cursor=result.cursor,
        resources={"notifier": notifier_for(webhook, smtp)},
    ) as again:
        assert notify_on_deploy.evaluate_tick(again).cursor == result.cursor
    assert len(webhook.bodies) == 1
    assert len(smtp.messages) == 1


def test_deploy_sensor_announces_each_deploy_since_the_last_tick(
    seeded: Platform, webhook: WebhookServer, smtp: SmtpServer
):
    assert all(r.success for r in seeded.ingest())
    first, second = seeded.train(DAYS[-2]), seeded.train(END_DAY)  # e.g. a two-day backfill
    assert first.success and second.success

    with dg.build_sensor_context(
        instance=seeded.instance,
        sensor_name="demo_notify_on_deploy",
        resources={"notifier": notifier_for(webhook, smtp)},
    ) as context:
        notify_on_deploy.evaluate_tick(context)

    assert [b["fields"]["Run id"] for b in webhook.bodies] == [first.run_id, second.run_id]
    assert len(smtp.messages) == 2


# -- per-pipeline channels (notifications in pipelines.yaml) --------------------------------------


def test_a_pipeline_sends_deploys_only_to_its_on_deploy_channels(platform: Platform, webhook, smtp):
    from ml_platform.demo import seed_landing
    from ml_platform_tests.support.pipelines import built_from, ingest_and_train

    built = built_from("""
        pipelines:
          - name: quiet
            target: y
            model: {estimator: random_forest, params: {n_estimators: 10, max_depth: 4}}
            notifications: {on_deploy: [email], on_failure: []}
    """)
    seed_landing(str(platform.landing / "quiet"), end_day=END_DAY, days=len(DAYS), target="y")
    assert ingest_and_train(platform, built).success
    deploy_sensor = built.sensor("notify_on_deploy")
    with dg.build_sensor_context(
        instance=platform.instance, sensor_name=deploy_sensor.name, resources={"notifier": notifier_for(webhook, smtp)}
    ) as context:
        deploy_sensor.evaluate_tick(context)
    assert webhook.bodies == []  # configured, but not this pipeline's deploy channel
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["Subject"] == "ml_platform model deployed: quiet"
    assert "Pipeline: quiet" in body_text(smtp.messages[0])


def test_run_failures_go_to_the_channels_of_the_failed_jobs_pipeline(platform: Platform, webhook, smtp):
    """notify_on_run_failure routes by job: a pipeline with `on_failure: [webhook]` e-mails nobody."""
    from ml_platform.factory import build_platform_defs
    from ml_platform_tests.support.pipelines import built_from

    built = built_from("""
        pipelines:
          - name: loud
            target: y
            notifications: {on_failure: [webhook]}
    """)
    defs = build_platform_defs([built.pipeline], platform.resources, dg.in_process_executor)
    job = defs.resolve_job_def("loud_training")
    result = job.execute_in_process(  # no landing file: raw_data fails for real
        partition_key=END_DAY,
        instance=platform.instance,
        raise_on_error=False,
        asset_selection=[dg.AssetKey(["loud", "raw_data"])],
    )
    assert not result.success
    sensor = defs.get_sensor_def("notify_on_run_failure")
    with dg.build_run_status_sensor_context(
        sensor_name="notify_on_run_failure",
        dagster_instance=platform.instance,
        dagster_run=platform.instance.get_run_by_id(result.run_id),
        dagster_event=run_failure_event(platform.instance, result.run_id),
        resources={"notifier": notifier_for(webhook, smtp)},
    ).for_run_failure() as context:
        sensor(context)
    assert len(webhook.bodies) == 1 and webhook.bodies[0]["fields"]["Job"] == "loud_training"
    assert smtp.messages == []


# -- per-pipeline recipients and on_success (the seed's `slack:` / `email:` targets) ---------------

TOLD = """
    pipelines:
      - name: told
        target: y
        model: {{estimator: random_forest, params: {{n_estimators: 10, max_depth: 4}}}}
        gate: {{min_accuracy: {threshold}, max_log_loss: 5.0}}
        notifications:
          webhook: {{url_env: TOLD_WEBHOOK_URL, channel: "#ml-alerts"}}
          email: [ml-team@company.com]
          on_failure: []
          on_success: {on_success}
"""


def _run_told_job(platform: Platform, threshold: float, on_success: str):
    """The pipeline's own training job for END_DAY after the window's days were ingested, as the
    schedule or landing sensor runs it; and the platform's definitions it belongs to."""
    from ml_platform.demo import seed_landing
    from ml_platform.factory import build_platform_defs
    from ml_platform_tests.support.pipelines import built_from

    built = built_from(TOLD.format(threshold=threshold, on_success=on_success))
    seed_landing(str(platform.landing / "told"), end_day=END_DAY, days=len(DAYS), target="y")
    defs = build_platform_defs([built.pipeline], platform.resources, dg.in_process_executor)
    ingest = dg.materialize(
        built.definitions,
        selection="key:told/raw_data",
        instance=platform.instance,
        resources=platform.resources,
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
    )
    assert ingest.success, step_errors(ingest)
    result = defs.resolve_job_def("told_training").execute_in_process(
        partition_key=END_DAY, instance=platform.instance, raise_on_error=False
    )
    return defs, result


def _evaluate(defs, platform: Platform, sensor_name: str, run_id: str, notifier: Notifier, failed: bool):
    run = platform.instance.get_run_by_id(run_id)
    kind = dg.DagsterEventType.RUN_FAILURE if failed else dg.DagsterEventType.RUN_SUCCESS
    (record,) = platform.instance.get_records_for_run(run_id=run_id, of_type=kind).records
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor_name,
        dagster_instance=platform.instance,
        dagster_run=run,
        dagster_event=record.event_log_entry.dagster_event,
        resources={"notifier": notifier},
    )
    with context.for_run_failure() if failed else context as built_context:
        defs.get_sensor_def(sensor_name)(built_context)


def test_on_success_reports_a_deploy_to_the_pipelines_own_webhook_channel_and_addresses(
    platform: Platform, webhook: WebhookServer, smtp: SmtpServer, monkeypatch
):
    # The pipeline's webhook URL is a secret: pipelines.yaml names the variable, the environment holds it.
    monkeypatch.setenv("TOLD_WEBHOOK_URL", webhook.url.rsplit("/", 1)[0] + "/told")
    defs, result = _run_told_job(platform, 0.8, "[webhook, email]")
    assert result.success, step_errors(result)
    production = platform.store.production("told")

    _evaluate(defs, platform, "notify_on_run_success", result.run_id, notifier_for(webhook, smtp), failed=False)

    assert webhook.paths == ["/hooks/told"]  # not the platform's ML_PLATFORM_WEBHOOK_URL
    (body,) = webhook.bodies
    assert body["channel"] == "#ml-alerts"
    assert body["subject"] == "ml_platform run finished: told_training"
    assert body["fields"]["Outcome"].startswith(f"deployed: told {production.version} (promoted to production")
    assert body["fields"]["Run id"] == result.run_id and body["fields"]["Partition"] == END_DAY
    (message,) = smtp.messages
    assert smtp.envelopes == [(SENDER, ["ml-team@company.com"])]  # the pipeline's addresses
    assert f"Outcome: deployed: told {production.version}" in body_text(message)

    # A run that failed for another reason (no landing file) held no model back: nothing is sent.
    failing = dg.materialize(
        built_assets(defs),
        selection="key:told/raw_data",
        partition_key="2025-12-25",
        instance=platform.instance,
        resources=platform.resources,
        raise_on_error=False,
    )
    assert not failing.success
    _evaluate(defs, platform, "notify_on_held_back_model", failing.run_id, notifier_for(webhook, smtp), failed=True)
    assert len(webhook.bodies) == 1 and len(smtp.messages) == 1


def built_assets(defs: dg.Definitions) -> list:
    return [*defs.assets, *defs.asset_checks]


def test_on_success_says_the_gate_held_the_model_back_and_an_event_can_have_its_own_recipients(
    platform: Platform, webhook: WebhookServer, smtp: SmtpServer
):
    defs, result = _run_told_job(platform, 0.999, "{email: [lead@example.com]}")
    assert not result.success  # a blocking check that fails ends the run as a failure
    assert platform.store.production("told") is None

    _evaluate(defs, platform, "notify_on_held_back_model", result.run_id, notifier_for(webhook, smtp), failed=True)

    assert webhook.bodies == []  # on_success names e-mail only
    (message,) = smtp.messages
    assert smtp.envelopes == [(SENDER, ["lead@example.com"])]
    text = body_text(message)
    # Each threshold is its own check; the message names the ones that held the model back.
    assert "Outcome: held back by the gate (1 of 2 checks): accuracy" in text and "< threshold 0.999" in text
    assert "log_loss" not in text
    # on_failure: [] — the failure sensor sends this pipeline's failures nowhere.
    sensor = defs.get_sensor_def("notify_on_run_failure")
    with dg.build_run_status_sensor_context(
        sensor_name="notify_on_run_failure",
        dagster_instance=platform.instance,
        dagster_run=platform.instance.get_run_by_id(result.run_id),
        dagster_event=run_failure_event(platform.instance, result.run_id),
        resources={"notifier": notifier_for(webhook, smtp)},
    ).for_run_failure() as context:
        sensor(context)
    assert len(smtp.messages) == 1 and webhook.bodies == []


def test_a_pipeline_webhook_whose_variable_is_unset_fails_the_tick_naming_it(
    platform: Platform, webhook: WebhookServer, smtp: SmtpServer, monkeypatch
):
    monkeypatch.delenv("TOLD_WEBHOOK_URL", raising=False)
    defs, result = _run_told_job(platform, 0.8, "[webhook]")
    assert result.success, step_errors(result)
    with pytest.raises(NotificationError, match="TOLD_WEBHOOK_URL .* is not set"):
        _evaluate(defs, platform, "notify_on_run_success", result.run_id, notifier_for(webhook, smtp), failed=False)
    assert webhook.bodies == []
