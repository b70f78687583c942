"""Real servers on 127.0.0.1 that receive notifications: an HTTP webhook and SMTP (aiosmtpd)."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class WebhookServer:
    url: str
    bodies: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    """A real HTTP server that records the JSON body of every POST and answers 200 ok (500 for a
    path ending in /fail, like a webhook whose token was revoked)."""
    received: list[dict] = []
    paths: list[str] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length).decode("utf-8"))
            with lock:
                received.append(body)
                paths.append(self.path)
            status, reply = (500, b"no") if self.path.endswith("/fail") else (200, b"ok")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format, *args) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="webhook-server", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield WebhookServer(url=f"http://{host}:{port}/hooks/ml-platform", bodies=received, paths=paths)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[EmailMessage]
    envelopes: list[tuple[str, list[str]]]


class _RecordingHandler:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that records every message it accepts."""
    handler = _RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer(host="127.0.0.1", port=controller.port, messages=handler.messages, envelopes=handler.envelopes)
    finally:
        controller.stop()


@contextlib.contextmanager
def counting_proxy(target: str) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP proxy on 127.0.0.1 in front of ``target`` (an http://host:port URL): it forwards
    every request as it is and records its method and path, so a test counts the requests a client
    made (how many times a call was tried) instead of timing it. Yields (its URL, the requests)."""
    requests: list[str] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length) if length else None
            with lock:
                requests.append(f"{self.command} {self.path}")
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            forwarded = urllib.request.Request(target + self.path, data=body, headers=headers, method=self.command)
            try:
                with urllib.request.urlopen(forwarded, timeout=30) as answer:
                    status, reply, kind = answer.status, answer.read(), answer.headers.get("Content-Type", "")
            except urllib.error.HTTPError as error:
                status, reply, kind = error.code, error.read(), error.headers.get("Content-Type", "")
            self.send_response(status)
            self.send_header("Content-Type", kind or "application/octet-stream")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

        def log_message(self, format, *args) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="counting-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
