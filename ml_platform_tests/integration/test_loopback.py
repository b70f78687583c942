"""Every server the project starts listens on 127.0.0.1 only by default: `ml-platform serve`
(test_serving.py reads its listening sockets from /proc), `dagster dev` with everything it starts
(test_webserver.py), and every `dagster dev` line the docs and the Makefile give a user (here).

The test fixtures' own servers (SeaweedFS, PostgreSQL, Redis, the receivers) are not the project's:
what they bind says nothing about the platform, so no test here checks them."""

import re

from ml_platform_tests.support.constants import ROOT


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
