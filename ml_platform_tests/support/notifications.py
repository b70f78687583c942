"""A notifier that sends to the test's real webhook and SMTP servers, and the failure sensor run
against a real failed run."""

from email.message import EmailMessage

import dagster as dg

from ml_platform.definitions import defs
from ml_platform.resources.notifier import Notifier
from ml_platform_tests.support.servers import SmtpServer, WebhookServer

RECIPIENT = "ops@example.com"
SENDER = "ml-platform@localhost"
notify_on_run_failure = defs.get_sensor_def("notify_on_run_failure")


def notifier_for(webhook: WebhookServer, smtp: SmtpServer) -> Notifier:
    return Notifier(
        webhook_url=webhook.url,
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        smtp_recipients=RECIPIENT,
        timeout_s=5.0,
    )


def body_text(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def run_failure_event(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterEvent:
    """The run's RUN_FAILURE event, read back from the instance's event log."""
    records = instance.get_records_for_run(run_id=run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    assert len(records) == 1, f"expected one RUN_FAILURE event for run {run_id}, found {len(records)}"
    return records[0].event_log_entry.dagster_event


def evaluate_failure_sensor(instance: dg.DagsterInstance, run_id: str, notifier: Notifier) -> dg.DagsterRun:
    """Evaluate notify_on_run_failure for a failed run, as the sensor daemon would; return the run."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    assert run.status == dg.DagsterRunStatus.FAILURE
    with dg.build_run_status_sensor_context(
        sensor_name="notify_on_run_failure",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=run_failure_event(instance, run_id),
        resources={"notifier": notifier},
    ).for_run_failure() as context:
        notify_on_run_failure(context)
    return run
