"""The test suite's settings and fixtures (their code lives in ml_platform_tests/support/).

Layers: ``unit/`` (no servers, no runs: seconds; `make test-fast`), ``graph/`` (the definitions run
with dg.materialize on a temp instance), ``integration/`` (real clients and servers: the dagster and
ml-platform CLIs, dagster dev, Chromium, SeaweedFS, PostgreSQL, Redis, ml-platform serve).
"""

import os
from pathlib import Path

# Set before ml_platform is imported (settings shape the definitions): retries back off from
# 0.2 s instead of 2 s so that the retry tests do not sleep for nothing, and every pipeline the
# tests (and the CLIs they start) build comes from the suite's own pipelines.yaml.
os.environ.setdefault("ML_PLATFORM_RETRY_DELAY_S", "0.2")
os.environ.setdefault("ML_PLATFORM_PIPELINES", str(Path(__file__).resolve().parent / "support" / "pipelines.yaml"))
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # the MLflow client of the tracking tests

from ml_platform_tests.support.platform import demo_frame, instance, platform, seeded  # noqa: F401
from ml_platform_tests.support.postgres_server import postgres  # noqa: F401
from ml_platform_tests.support.redis_server import redis  # noqa: F401
from ml_platform_tests.support.s3_server import s3_server  # noqa: F401
from ml_platform_tests.support.servers import smtp, webhook  # noqa: F401


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _skipped(config) -> list:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    return list(reporter.stats.get("skipped", [])) if reporter is not None else []


def pytest_sessionfinish(session, exitstatus):
    """A run that skipped anything fails under CI=true: a test that could not run proves nothing."""
    if _ci() and _skipped(session.config) and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Skipped tests, counted with why, as the last lines; under CI=true they fail the run."""
    skipped = _skipped(config)
    if not skipped:
        return
    reasons = sorted({str(r.longrepr[-1]) if isinstance(r.longrepr, tuple) else str(r.longrepr) for r in skipped})
    verdict = "this run FAILS (CI=true)" if _ci() else "set CI=true to make that a failure"
    terminalreporter.write_line("")
    for reason in reasons[:10]:
        terminalreporter.write_line(f"skipped: {reason}", yellow=True)
    terminalreporter.write_line(f"{len(skipped)} test(s) SKIPPED: {verdict}", red=True, bold=True)
