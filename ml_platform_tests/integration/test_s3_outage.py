"""Storage outages in ML_PLATFORM_ENV=prod (issue 6), against a real S3 server that is really
stopped and started again: SeaweedFS (`weed mini`) of this module's own, so the shared session
server is never interrupted.

- a transient outage (the server is stopped when a run starts and comes back while the run waits
  for its next retry) is retried by the storage retry policy: the run succeeds and deploys;
- a permanent outage (the server stays stopped) fails the run after the configured retries with
  StorageUnavailableError naming the endpoint, and the run-failure sensor sends it; the
  production model is untouched.

The runs are real runs of the `dagster` CLI (a subprocess, with its own DAGSTER_HOME) of the
daily pipeline for one day (`key:raw_data+`, what the training job runs): its first
storage access is raw_data reading the landing file, a step with the storage retry policy. Their
events are read back from that instance. Boto3's own retries (dagster-aws: standard mode,
max_attempts=5, i.e. 6 attempts with a 50 ms-based backoff) make a refused connection fail within
about 1.5 s, so each step attempt fails fast and the Dagster retry policy does the waiting.

A retraining run alone (`key:training_data+`, what the landing sensor launches) reads and writes
only through the IO managers: they turn StorageUnavailableError into a retry of the step with the
same backoff, so those steps retry an outage too (and nothing else: bad config is not retried).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.backends.s3_bucket import S3Bucket
from ml_platform.demo import demo_days
from ml_platform.errors import StorageUnavailableError
from ml_platform.settings import load_settings
from ml_platform_tests.support.constants import BIN, END_DAY, MODEL_NAME, ROOT, WINDOW
from ml_platform_tests.support.notifications import (
    body_text,
    evaluate_failure_sensor,
    notifier_for,
)
from ml_platform_tests.support.platform import project_env
from ml_platform_tests.support.results import materialized, step_errors
from ml_platform_tests.support.s3 import S3Platform, s3_platform_on
from ml_platform_tests.support.s3_server import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    S3Server,
    WeedMini,
    _wait_for_bucket,
    running_weed_mini,
)
from ml_platform_tests.support.servers import SmtpServer, WebhookServer

# One day more than the window: production is first trained on the window ending the day before
# END_DAY; the run under test ingests END_DAY and trains on the window ending it (a new model).
SEEDED_DAYS = demo_days(END_DAY, WINDOW + 1)
PREVIOUS_DAY = SEEDED_DAYS[-2]
# The run under test: the daily pipeline for END_DAY (what the training job runs).
RUN_SELECTION = "key:demo/raw_data+"
STORAGE_STEP = "demo__raw_data"  # the run's first storage access: it reads the landing file
UNAVAILABLE = "StorageUnavailableError"


# -- a private S3 server that can be stopped and started again --------------------------------

CANARY = "outage-canary"  # an object that must read back before a restarted server counts as up
STOP_TIMEOUT_S = 10  # SIGTERM, then SIGKILL: a stop never holds a test for long


@pytest.fixture(scope="module")
def weed_mini() -> Iterator[WeedMini]:
    # Pinned internal ports: a restart finds its master, volume server and filer where they were.
    with running_weed_mini("weed-outage-") as mini:
        yield mini


def stop_server(mini: WeedMini) -> None:
    """SIGTERM; back as soon as the S3 endpoint refuses connections (the filer and volume server
    finish stopping while the run starts: the next start waits for them)."""
    mini.stop(timeout=STOP_TIMEOUT_S, wait=False)
    assert not mini.running


def start_server(mini: WeedMini, timeout: float = 60) -> None:
    """Start the server again and wait until it serves the canary: after a restart, SeaweedFS's
    S3 gateway answers 500 InternalError ("volume not found") until the volume server has
    re-registered with the master (usually at once, sometimes seconds later)."""
    mini.start()
    canary = S3Bucket(mini.server().client(), mini.bucket)
    deadline = time.monotonic() + timeout
    while True:
        try:
            canary.get(CANARY)
            return
        except StorageUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def outage_server(weed_mini: WeedMini, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """The private server, running (whatever the previous test left), with the platform's
    credentials in the environment (the standard AWS chain)."""
    for key, value in (
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", REGION),
    ):
        monkeypatch.setenv(key, value)
    if not weed_mini.running:
        start_server(weed_mini)
    server = weed_mini.server()
    _wait_for_bucket(server)
    canary = S3Bucket(server.client(), server.bucket)
    if canary.head(CANARY) is None:
        canary.put(CANARY, b"up")
    yield server
    if not weed_mini.running:
        start_server(weed_mini)  # never leave it stopped for the next test


class OutageProject(S3Platform):
    """An ML_PLATFORM_ENV=prod platform on the private server, and the environment of its CLI runs."""

    env: dict[str, str]


def prod_platform(tmp_path: Path, server: S3Server, instance: dg.DagsterInstance) -> OutageProject:
    return s3_platform_on(server, tmp_path, instance, OutageProject)


@pytest.fixture
def project(tmp_path: Path, outage_server: S3Server) -> Iterator[OutageProject]:
    """A prod-mode project on its own S3 prefix, with the DAGSTER_HOME its CLI runs use, and a
    model in production trained on the window ending PREVIOUS_DAY."""
    env = project_env(tmp_path / "project")
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        platform = prod_platform(tmp_path, outage_server, instance)
        platform.env = {**env, **outage_server.env(platform.prefix)}
        platform.seed(end_day=END_DAY, days=len(SEEDED_DAYS))  # landing files on S3
        ingest = platform.ingest_range(SEEDED_DAYS[:-1])
        assert ingest.success, step_errors(ingest)
        train = platform.train(PREVIOUS_DAY)
        assert train.success, step_errors(train)
        assert platform.store.production(MODEL_NAME) is not None
        yield platform


# -- helpers ---------------------------------------------------------------------------------


class CliRun:
    """`dagster asset materialize` of RUN_SELECTION for END_DAY, in a subprocess."""

    def __init__(self, project: OutageProject, retries: int, delay_s: float) -> None:
        self.instance = project.instance
        self.known = {run.run_id for run in self.instance.get_runs()}
        self.log_path = project.root / f"cli-{len(self.known)}.log"
        env = {
            **project.env,
            "ML_PLATFORM_STORAGE_RETRIES": str(retries),
            "ML_PLATFORM_RETRY_DELAY_S": str(delay_s),
        }
        with open(self.log_path, "wb") as log:  # a file, not a pipe: nothing can block on it
            self.proc = subprocess.Popen(
                [
                    str(BIN / "dagster"),
                    "asset",
                    "materialize",
                    "-m",
                    "ml_platform.definitions",
                    "--select",
                    RUN_SELECTION,
                    "--partition",
                    END_DAY,
                ],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._run_id: str | None = None

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def run_id(self) -> str | None:
        if self._run_id is None:
            new = [run.run_id for run in self.instance.get_runs() if run.run_id not in self.known]
            assert len(new) <= 1, new
            self._run_id = new[0] if new else None
        return self._run_id

    def events(self, event_type: dg.DagsterEventType, step: str | None = STORAGE_STEP) -> list[dg.DagsterEvent]:
        if self.run_id is None:
            return []
        records = self.instance.get_records_for_run(run_id=self.run_id, of_type=event_type).records
        return [r.event_log_entry.dagster_event for r in records if step is None or r.event_log_entry.step_key == step]

    def wait_for(self, event_type: dg.DagsterEventType, count: int, timeout: float = 120) -> None:
        """Until the storage step has `count` events of this type (the run must still be going)."""
        deadline = time.monotonic() + timeout
        while len(self.events(event_type)) < count:
            assert self.proc.poll() is None, f"the run ended before {count} {event_type}:\n{self.output}"
            assert time.monotonic() < deadline, f"no {count} {event_type} in {timeout} s:\n{self.output}"
            time.sleep(0.1)

    def wait(self, timeout: float = 180) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def error_chain(error) -> str:
    """Class names and messages of an error and its causes, one per line."""
    lines = []
    while error is not None:
        lines.append(f"{error.cls_name}: {error.message.strip()}")
        error = error.cause
    return "\n".join(lines)


def production_pointer(project: OutageProject) -> bytes:
    return project.bucket.get(f"model_store/{MODEL_NAME}/production.json")


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.cli
def test_transient_outage_is_retried_and_the_run_deploys(project: OutageProject, weed_mini: WeedMini):
    # Waits of 0-0.5, 0.5-1, 1.5-2, 3.5-4, 7.5-8 and 15.5-16 s ((2^n - 1) x 0.25 s, +/- 0.25 s of
    # jitter): once the server is back (after the second failure), 28 s or more are left for it
    # to serve again, plus boto3's own retries (up to ~1.5 s an attempt).
    retries, delay_s = 6, 0.25
    before = project.store.production(MODEL_NAME)
    endpoint = weed_mini.endpoint

    stop_server(weed_mini)
    run = CliRun(project, retries=retries, delay_s=delay_s)
    try:
        # The outage overlaps the run for certain: the server comes back only once the storage
        # step has failed twice (connection refused); the next attempt is 1.5-2 s later.
        run.wait_for(dg.DagsterEventType.STEP_UP_FOR_RETRY, 2)
        start_server(weed_mini)
        returncode = run.wait()
    finally:
        run.kill()
    assert returncode == 0, run.output

    assert project.instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS
    up_for_retry = run.events(dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert 2 <= len(up_for_retry) <= retries
    assert len(run.events(dg.DagsterEventType.STEP_RESTARTED)) == len(up_for_retry)
    assert len(run.events(dg.DagsterEventType.STEP_START)) == 1
    assert len(run.events(dg.DagsterEventType.STEP_SUCCESS)) == 1
    assert run.events(dg.DagsterEventType.STEP_FAILURE, step=None) == []
    # Each retry says why: storage unavailable; while stopped, S3 could not be reached at this
    # endpoint (a later one may be the restarting server's 500 InternalError).
    chains = [error_chain(e.event_specific_data.error) for e in up_for_retry]
    assert all(UNAVAILABLE in chain for chain in chains), chains
    assert all(f"cannot reach S3 at {endpoint}" in chain for chain in chains[:2]), chains
    # The rest of the chain ran once, after the storage step, and stored everything.
    for step in ("demo__training_data", "demo__trained_model", "demo__deployed_model"):
        assert run.events(dg.DagsterEventType.STEP_UP_FOR_RETRY, step=step) == []
        assert len(run.events(dg.DagsterEventType.STEP_SUCCESS, step=step)) == 1
    materializations = run.events(dg.DagsterEventType.ASSET_MATERIALIZATION, step=None)
    assert {e.asset_key.to_user_string() for e in materializations} >= {
        f"demo/{name}"
        for name in (
            "raw_data",
            "training_data",
            "train_split",
            "test_split",
            "trained_model",
            "model_metrics",
            "deployed_model",
        )
    }

    # The new model serves, from S3, with a verified sha256; the previous one is still stored.
    model, version = project.store.load(MODEL_NAME)
    assert version.version != before.version
    assert version.metadata["data_as_of"] == END_DAY
    assert version.metadata["dagster_run_id"] == run.run_id
    assert json.loads(production_pointer(project))["version"] == version.version
    assert version.location.startswith(f"s3://{project.server.bucket}/{project.prefix}/model_store/")
    assert hasattr(model, "predict")
    assert {v.version for v in project.store.list_versions(MODEL_NAME)} == {before.version, version.version}


@pytest.mark.cli
def test_permanent_outage_fails_after_the_retries_and_is_announced(
    project: OutageProject, weed_mini: WeedMini, webhook: WebhookServer, smtp: SmtpServer
):
    retries = 2
    before = project.store.production(MODEL_NAME)
    pointer = production_pointer(project)
    endpoint = weed_mini.endpoint

    stop_server(weed_mini)
    run = CliRun(project, retries=retries, delay_s=0.2)
    try:
        returncode = run.wait()
    finally:
        run.kill()
    assert returncode != 0, run.output

    # The run failed in its storage step after every retry, naming the endpoint and the object.
    dagster_run = project.instance.get_run_by_id(run.run_id)
    assert dagster_run.status == dg.DagsterRunStatus.FAILURE
    assert len(run.events(dg.DagsterEventType.STEP_START)) == 1
    assert len(run.events(dg.DagsterEventType.STEP_UP_FOR_RETRY)) == retries
    assert len(run.events(dg.DagsterEventType.STEP_RESTARTED)) == retries
    [failure] = run.events(dg.DagsterEventType.STEP_FAILURE, step=None)
    assert failure.step_key == STORAGE_STEP
    chain = error_chain(failure.step_failure_data.error)
    assert UNAVAILABLE in chain and f"cannot reach S3 at {endpoint}" in chain, chain
    assert f"s3://{project.server.bucket}/{project.prefix}/landing/{END_DAY}" in chain, chain
    assert run.events(dg.DagsterEventType.ASSET_MATERIALIZATION, step=None) == []
    assert run.events(dg.DagsterEventType.STEP_START, step="demo__training_data") == []

    # The run-failure sensor, evaluated against that run, sends run, step and storage error.
    evaluate_failure_sensor(project.instance, run.run_id, notifier_for(webhook, smtp))
    assert len(webhook.bodies) == 1 and len(smtp.messages) == 1
    fields, text, mail = webhook.bodies[0]["fields"], webhook.bodies[0]["text"], body_text(smtp.messages[0])
    assert fields["Run id"] == run.run_id
    assert fields["Job"] == dagster_run.job_name
    assert fields["Partition"] == END_DAY
    assert fields["Failing step"] == STORAGE_STEP
    assert UNAVAILABLE in fields["Error"] and f"cannot reach S3 at {endpoint}" in fields["Error"]
    for expected in (run.run_id, STORAGE_STEP, UNAVAILABLE, f"cannot reach S3 at {endpoint}"):
        assert expected in text and expected in mail

    # Back up: the production model is the one before the outage, untouched and loadable.
    start_server(weed_mini)
    assert production_pointer(project) == pointer
    model, version = project.store.load(MODEL_NAME)  # sha256 verified
    assert version.version == before.version and hasattr(model, "predict")
    assert [v.version for v in project.store.list_versions(MODEL_NAME)] == [before.version]
    assert project.bucket.head(f"assets/demo/raw_data/{END_DAY}.parquet") is None


def test_outage_in_a_retraining_run_is_retried(
    tmp_path: Path, outage_server: S3Server, instance: dg.DagsterInstance, weed_mini: WeedMini
):
    retries = load_settings().storage_retries  # this process's settings (conftest: 0.2 s delays)
    if retries < 1:
        pytest.skip("ML_PLATFORM_STORAGE_RETRIES=0: nothing to retry")
    platform = prod_platform(tmp_path, outage_server, instance)

    stop_server(weed_mini)
    try:
        result = platform.train(END_DAY)  # in-process: key:training_data+ for END_DAY
    finally:
        start_server(weed_mini)

    assert not result.success and "training_data" not in materialized(result)
    assert UNAVAILABLE in step_errors(result)
    retried = [
        e
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY and e.step_key == "demo__training_data"
    ]
    assert len(retried) == retries
