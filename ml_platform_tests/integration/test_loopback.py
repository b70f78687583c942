"""Every server the project starts listens on 127.0.0.1 only: the ones the test fixtures start
(SeaweedFS, PostgreSQL, Redis, the webhook and SMTP receivers) here, `dagster dev` in
test_webserver.py. The docs' and Makefile's `dagster dev` lines pass `-h 127.0.0.1`."""

import re
from urllib.parse import urlparse

from ml_platform_tests.support.constants import ROOT
from ml_platform_tests.support.postgres_server import postgres  # noqa: F401 (fixture)
from ml_platform_tests.support.redis_server import redis  # noqa: F401 (fixture)
from ml_platform_tests.support.sockets import (
    listening_addresses,
    only_loopback,
    owner_group_of_port,
)


def assert_server_on_loopback(port: int) -> None:
    group = owner_group_of_port(port)
    assert group is not None, f"nothing listens on port {port}"
    addresses = listening_addresses(group)
    assert addresses and only_loopback(addresses), addresses


def test_s3_server_listens_on_loopback_only(s3_server):
    assert_server_on_loopback(urlparse(s3_server.endpoint).port)


def test_postgres_listens_on_loopback_only(postgres):  # noqa: F811
    assert_server_on_loopback(postgres.port)


def test_redis_listens_on_loopback_only(redis):  # noqa: F811
    assert_server_on_loopback(urlparse(redis).port)


def test_notification_receivers_listen_on_loopback(webhook, smtp):
    for port in (urlparse(webhook.url).port, smtp.port):
        listeners = {a for a in listening_addresses(owner_group_of_port(port)) if a[1] == port}
        assert listeners and only_loopback(listeners), listeners


def test_every_documented_dagster_dev_line_binds_to_loopback():
    lines = [
        line
        for path in ("README.md", "docs/operations.md", "Makefile", "deploy/kubernetes/README.md")
        for line in (ROOT / path).read_text().splitlines()
        if re.search(r"dagster(\)|\s)+dev\b", line) and re.search(r"\s-(m|w|f)\s", line)
    ]
    assert lines, "no `dagster dev` command line found"
    for line in lines:
        assert "-h 127.0.0.1" in line, line
