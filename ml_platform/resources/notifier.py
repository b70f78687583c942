"""Notifications: a Slack-compatible webhook and/or e-mail over SMTP, configured from the environment."""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage

import dagster as dg
from pydantic import Field

from ml_platform.errors import MlPlatformError


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
        found = []
        if self.webhook_url:
            found.append("webhook")
        if self.smtp_host and self.smtp_recipients:
            found.append("email")
        return found

    def send(
        self, subject: str, lines: list[str], fields: dict[str, str], only: list[str] | None = None
    ) -> list[str]:
        """Deliver to every configured channel (or those of them in ``only``: a pipeline's
        ``notifications``); return the channels used. Raises NotificationError naming the
        channels that failed (after trying all of them)."""
        text = "\n".join([f"*{subject}*", *lines, *(f"{k}: {v}" for k, v in fields.items())])
        errors = []
        wanted = set(self.channels if only is None else only)
        if self.webhook_url and "webhook" in wanted:
            payload = {"text": text, "subject": subject, "fields": fields}
            request = urllib.request.Request(
                self.webhook_url,
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
            except (urllib.error.URLError, OSError) as exc:
                errors.append(f"webhook: {exc}")
        if self.smtp_host and self.smtp_recipients and "email" in wanted:
            message = EmailMessage()
            message["Subject"] = subject
            message["From"] = self.smtp_sender
            message["To"] = self.smtp_recipients
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
        return [c for c in self.channels if c in wanted]


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
