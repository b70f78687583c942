"""Notifications: a Slack-compatible webhook and/or e-mail over SMTP, configured from the environment;
a pipeline's ``notifications`` route each event to channels and recipients of its own."""

from __future__ import annotations

import json
import os
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage

import dagster as dg
from pydantic import Field

from ml_platform.errors import MlPlatformError
from ml_platform.spec import Route


class NotificationError(MlPlatformError):
    """A configured channel could not deliver a message."""


class Notifier(dg.ConfigurableResource):
    """Sends a message to every configured channel; with none configured it only logs."""

    webhook_url: str | None = Field(
        default=None, description="Slack-compatible incoming webhook: a JSON POST with a 'text' field."
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for e-mail notifications.")
    smtp_port: int = Field(default=25, description="SMTP port.")
    smtp_sender: str = Field(default="ml-platform@localhost", description="From address.")
    smtp_recipients: str | None = Field(default=None, description="Comma-separated To addresses.")
    smtp_user: str | None = Field(default=None, description="SMTP login, if the server needs one.")
    smtp_password: str | None = Field(default=None, description="SMTP password (from the environment).")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection with STARTTLS.")
    timeout_s: float = Field(default=10.0, description="Network timeout per channel.")

    @property
    def channels(self) -> list[str]:
        """The channels configured in the environment (a pipeline's route can add its own webhook)."""
        return self._configured(Route())

    def _webhook_url(self, route: Route) -> str | None:
        if route.webhook_url_env:
            # The pipeline's own webhook: its URL is a secret, read from the environment when sending.
            return os.environ.get(route.webhook_url_env) or None
        return self.webhook_url

    def _recipients(self, route: Route) -> str | None:
        return ", ".join(route.email) if route.email else self.smtp_recipients

    def _configured(self, route: Route) -> list[str]:
        found = []
        if self._webhook_url(route) or route.webhook_url_env:
            found.append("webhook")
        if self.smtp_host and self._recipients(route):
            found.append("email")
        return found

    def send(self, subject: str, lines: list[str], fields: dict[str, str], route: Route | None = None) -> list[str]:
        """Deliver to every configured channel, or to those of a pipeline's ``route`` (its channels
        and recipients for this event: ``NotificationsSpec.route``); return the channels used.
        Raises NotificationError naming the channels that failed (after trying all of them)."""
        route = route or Route()
        text = "\n".join([f"*{subject}*", *lines, *(f"{k}: {v}" for k, v in fields.items())])
        errors = []
        configured = self._configured(route)
        wanted = [c for c in configured if route.channels is None or c in route.channels]
        if "webhook" in wanted:
            url = self._webhook_url(route)
            payload = {"text": text, "subject": subject, "fields": fields}
            if route.webhook_channel:
                payload["channel"] = route.webhook_channel
            if url is None:
                errors.append(f"webhook: {route.webhook_url_env} (the pipeline's webhook URL) is not set")
            else:
                request = urllib.request.Request(
                    url,
                    data=json.dumps(payload).encode(),
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                try:
                    with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                        response.read()
                except (urllib.error.URLError, OSError) as exc:
                    errors.append(f"webhook: {exc}")
        if "email" in wanted:
            message = EmailMessage()
            message["Subject"] = subject
            message["From"] = self.smtp_sender
            message["To"] = self._recipients(route)
            message.set_content(text.replace("*", ""))
            try:
                with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_s) as smtp:
                    if self.smtp_starttls:
                        smtp.starttls()
                    if self.smtp_user:
                        smtp.login(self.smtp_user, self.smtp_password or "")
                    smtp.send_message(message)
            except (smtplib.SMTPException, OSError) as exc:
                errors.append(f"email via {self.smtp_host}:{self.smtp_port}: {exc}")
        if errors:
            raise NotificationError("notification failed: " + "; ".join(errors))
        return wanted


# Environment variable -> Notifier field. Values are passed as dg.EnvVar, read only at run time.
NOTIFIER_ENV = {
    "ML_PLATFORM_WEBHOOK_URL": "webhook_url",
    "ML_PLATFORM_SMTP_HOST": "smtp_host",
    "ML_PLATFORM_SMTP_PORT": "smtp_port",
    "ML_PLATFORM_SMTP_SENDER": "smtp_sender",
    "ML_PLATFORM_SMTP_RECIPIENTS": "smtp_recipients",
    "ML_PLATFORM_SMTP_USER": "smtp_user",
    "ML_PLATFORM_SMTP_PASSWORD": "smtp_password",
}


def notifier_from_env(environ) -> Notifier:
    """A Notifier whose configured fields come from the environment through dg.EnvVar."""
    fields = {}
    for variable, field in NOTIFIER_ENV.items():
        if environ.get(variable):
            fields[field] = dg.EnvVar.int(variable) if field == "smtp_port" else dg.EnvVar(variable)
    if environ.get("ML_PLATFORM_SMTP_STARTTLS", "").lower() in ("1", "true", "yes"):
        fields["smtp_starttls"] = True
    return Notifier(**fields)
