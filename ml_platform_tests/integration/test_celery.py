"""The Celery executor for real: Redis on 127.0.0.1 as broker and result backend, two
`dagster-celery worker` processes, runs launched by `dagster asset materialize` with
ML_PLATFORM_EXECUTOR=celery.

What "steps spread over workers" means here, honestly: the pipeline is a linear chain, so ONE run
of one day never has two steps ready at once, and `raw_data` has a single-run backfill policy, so
a range of days is ONE run with one `raw_data` step (it reads the days in parallel threads). What
spreads is the backfill as a whole: the ingest run over many days, then one training run per day
(what a backfill of `<name>_training` launches) running at the same time, every step of every
run a Celery task taken by whichever worker is free. The proof is Dagster's own event log: the
engine event dagster-celery writes for each step names the worker that ran it, and STEP_START
records the PID of the process that ran the step (not the process that launched the run).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.backends.local import LocalModelStore
from ml_platform.demo import demo_days
from ml_platform_tests.support.constants import BIN, END_DAY, MODEL_NAME, ROOT, WINDOW
from ml_platform_tests.support.good_platform import deployed  # noqa: F401
from ml_platform_tests.support.platform import project_env
from ml_platform_tests.support.redis_server import redis  # noqa: F401 (fixture, used by name)

WORKER_CONFIG = ROOT / "deploy" / "celery" / "worker.yaml"
WORKER_NAMES = ("ml-platform-a", "ml-platform-b")
READY_TIMEOUT_S = 90
RUN_TIMEOUT_S = 180
# The training backfill: one run per day for the last days, launched at the same time.
TRAINING_DAYS = 3
ALL_DAYS = demo_days(END_DAY, WINDOW + TRAINING_DAYS - 1)

pytestmark = pytest.mark.cli


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class CeleryCluster:
    env: dict[str, str]
    workers: list[Worker]
    home: Path

    def logs(self) -> str:
        return "\n".join(f"--- worker {w.name} ---\n{w.log_text()[-4000:]}" for w in self.workers)


def _stop_groups(procs: list[subprocess.Popen], grace_s: float = 15.0) -> None:
    """Stop workers by their process groups (the CLI, Celery's main process and its pool), all at
    once: SIGTERM (Celery's warm shutdown), then SIGKILL whatever is left after `grace_s`."""

    def signal_group(proc: subprocess.Popen, sig: int) -> bool:
        try:
            os.killpg(proc.pid, sig)  # started with start_new_session=True: group id = its pid
            return True
        except ProcessLookupError:
            return False

    for proc in procs:
        signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    alive = list(procs)
    while alive and time.monotonic() < deadline:
        alive = [proc for proc in alive if signal_group(proc, 0)]
        time.sleep(0.1)
    for proc in alive:
        signal_group(proc, signal.SIGKILL)
    for proc in procs:
        if proc.poll() is None:
            proc.wait(timeout=5)


@pytest.fixture
def celery_cluster(redis: str, tmp_path: Path) -> Iterator[CeleryCluster]:
    """A project on temp folders whose runs use the Celery executor, and two workers on it."""
    env = project_env(tmp_path)
    env.update(
        {
            "ML_PLATFORM_EXECUTOR": "celery",
            "ML_PLATFORM_CELERY_BROKER": f"{redis}/0",
            "ML_PLATFORM_CELERY_BACKEND": f"{redis}/1",
            # `dagster-celery worker start` runs `celery` from PATH: the venv's.
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    workers: list[Worker] = []
    try:
        for name in WORKER_NAMES:
            log = tmp_path / f"{name}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [
                        str(BIN / "dagster-celery"),
                        "worker",
                        "start",
                        "-A",
                        "dagster_celery.app",
                        "-y",
                        str(WORKER_CONFIG),
                        "--name",
                        name,
                        "--loglevel",
                        "INFO",
                        # Celery's own options go after `--`: one process per worker, so each worker
                        # runs one step at a time and a second ready step must go to the other one.
                        "--",
                        "--concurrency",
                        "1",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            workers.append(Worker(name=name, proc=proc, log=log))
        cluster = CeleryCluster(env=env, workers=workers, home=Path(env["DAGSTER_HOME"]))

        # Ready = consuming from the broker ("<name>@<host> ready." in its log).
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = list(workers)
        while waiting and time.monotonic() < deadline:
            for worker in list(waiting):
                if worker.proc.poll() is not None:
                    pytest.fail(f"worker {worker.name} exited with {worker.proc.returncode}\n{cluster.logs()}")
                if f"{worker.name}@" in worker.log_text() and " ready." in worker.log_text():
                    waiting.remove(worker)
            time.sleep(0.2)
        if waiting:
            names = [w.name for w in waiting]
            pytest.fail(f"workers not ready after {READY_TIMEOUT_S}s: {names}\n{cluster.logs()}")
        yield cluster
    finally:
        _stop_groups([worker.proc for worker in workers])


def materialize(cluster: CeleryCluster, *args: str) -> subprocess.Popen:
    """`dagster asset materialize` in the background: it orchestrates the run, the workers run the steps."""
    return subprocess.Popen(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "ml_platform.definitions", *args],
        cwd=ROOT,
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(cluster: CeleryCluster, procs: list[subprocess.Popen]) -> None:
    """Wait for every launched run (none is left behind polling workers that are gone), then
    check that each exited 0."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    outputs = []
    for proc in procs:
        try:
            output, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        outputs.append(output)
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{output[-6000:]}\n{cluster.logs()}"


@dataclass
class StepRecord:
    run_id: str
    step_key: str
    worker: str | None = None
    pid: int | None = None
    start: float | None = None
    end: float | None = None


def step_records(instance: dg.DagsterInstance, run_id: str) -> tuple[int | None, dict[str, StepRecord]]:
    """The PID that orchestrated a run, and per step: the Celery worker that took it (from the
    engine event dagster-celery writes in the worker), the PID that ran it, when it ran."""
    steps: dict[str, StepRecord] = defaultdict(lambda: StepRecord(run_id, ""))
    run_pid = None
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind == dg.DagsterEventType.RUN_START:
            run_pid = event.pid
        if event.step_key is None:
            continue
        step = steps[event.step_key]
        step.step_key = event.step_key
        if kind == dg.DagsterEventType.ENGINE_EVENT:
            worker = (event.engine_event_data.metadata or {}).get("Celery worker")
            if worker is not None:
                step.worker = str(worker.value)
        elif kind == dg.DagsterEventType.STEP_START:
            step.pid, step.start = event.pid, record.timestamp
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            step.end = record.timestamp
    return run_pid, {k: v for k, v in steps.items() if v.start is not None}


def test_backfill_steps_spread_over_two_celery_workers(celery_cluster: CeleryCluster, tmp_path: Path):
    cluster = celery_cluster
    subprocess.run(
        [str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY, "--days", str(len(ALL_DAYS))],
        cwd=ROOT,
        env=cluster.env,
        check=True,
        capture_output=True,
        timeout=120,
    )

    # 1. The ingest backfill: every day in ONE run (raw_data's single-run policy), through Celery.
    finish(
        cluster,
        [materialize(cluster, "--select", "key:demo/raw_data", "--partition-range", f"{ALL_DAYS[0]}...{ALL_DAYS[-1]}")],
    )
    # 2. The training backfill: one run per day, all launched at once; with two single-process
    #    workers, the steps of these runs are shared between them.
    training_days = ALL_DAYS[-TRAINING_DAYS:]
    finish(
        cluster,
        [materialize(cluster, "--select", "key:demo/training_data+", "--partition", day) for day in training_days],
    )

    with dg.DagsterInstance.from_config(str(cluster.home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 + TRAINING_DAYS
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [r.status for r in runs]
        ingest = [r for r in runs if r.tags.get("dagster/asset_partition_range_start")]
        assert len(ingest) == 1
        assert ingest[0].tags["dagster/asset_partition_range_end"] == ALL_DAYS[-1]
        raw = instance.fetch_materializations(dg.AssetKey(["demo", "raw_data"]), limit=100).records
        assert {r.partition_key for r in raw} == set(ALL_DAYS)
        deployed = instance.fetch_materializations(dg.AssetKey(["demo", "deployed_model"]), limit=100).records
        assert sorted(r.partition_key for r in deployed) == training_days

        all_steps: list[StepRecord] = []
        for run in runs:
            run_pid, steps = step_records(instance, run.run_id)
            assert steps, f"run {run.run_id} ran no step"
            for step in steps.values():
                # Every step went through Celery, was taken by one of OUR workers, and ran in a
                # worker process, not in the `dagster asset materialize` process that launched it.
                assert step.worker is not None, f"{step.step_key} of {run.run_id} has no Celery worker event"
                assert step.worker.split("@")[0] in WORKER_NAMES, step.worker
                assert step.pid is not None and step.pid != run_pid, (step, run_pid)
            all_steps.extend(steps.values())

    by_worker: dict[str, list[StepRecord]] = defaultdict(list)
    for step in all_steps:
        by_worker[step.worker.split("@")[0]].append(step)
    summary = {w: sorted(f"{s.step_key}[{s.run_id[:8]}] pid {s.pid}" for s in ss) for w, ss in by_worker.items()}
    print("steps per worker:", summary)  # shown with -rP or -s
    # The backfill's steps ran in BOTH workers, i.e. in (at least) two different processes.
    assert set(by_worker) == set(WORKER_NAMES), summary
    pids = {name: {s.pid for s in steps} for name, steps in by_worker.items()}
    assert not (pids[WORKER_NAMES[0]] & pids[WORKER_NAMES[1]]), pids
    # The workers' own logs agree: each ran execute_plan tasks.
    for worker in cluster.workers:
        assert "Task execute_plan[" in worker.log_text() and "succeeded" in worker.log_text(), worker.name

    # The model store got a production model, from one of the training runs, sha256 verified.
    store = LocalModelStore(root=str(tmp_path / "model_store"))
    model, version = store.load(MODEL_NAME)
    assert model is not None
    assert version.metadata["dagster_run_id"] in {r.run_id for r in runs}
    assert version.metadata["data_as_of"] in training_days
    assert len(store.list_versions(MODEL_NAME)) == TRAINING_DAYS
