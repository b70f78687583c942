"""Deploys at the same time from several processes, on the local store and on S3: the pointer
ends on one complete version, every pointer move is in the history, no artifact is overwritten."""

import multiprocessing
import os

import pytest
from sklearn.linear_model import LogisticRegression

from ml_platform.backends.local import LocalModelStore
from ml_platform.backends.s3 import S3ModelStore
from ml_platform.errors import PointerConflictError
from ml_platform_tests.support.constants import MODEL_NAME

PROCESSES = 4


def _deploy(store_kwargs: dict, kind: str, number: int, start, results) -> None:
    """One deploying process: store a version, then promote it by compare-and-swap."""
    from dagster_aws.s3 import S3Resource

    if kind == "s3":
        store_kwargs = {**store_kwargs, "s3": S3Resource(**store_kwargs["s3"])}
        store = S3ModelStore(**store_kwargs)
    else:
        store = LocalModelStore(**store_kwargs)
    model = LogisticRegression(C=1.0 + number).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    version = store.save_version(MODEL_NAME, model, {"process": number}, identity=f"process-{number}")
    # Every process reads the pointer's state, then all swap at once from that same state: one
    # wins, each other one meets a conflict, reads again and tries again on top of the winner.
    _, token = store.pointer_state(MODEL_NAME)
    start.wait()
    conflicts = 0
    while True:
        try:
            store.promote(MODEL_NAME, version.version, reason=f"process {number}", expected=token)
            break
        except PointerConflictError:
            conflicts += 1
            _, token = store.pointer_state(MODEL_NAME)
    results.put((number, version.version, conflicts, os.getpid()))


def _run_deploys(kind: str, store_kwargs: dict):
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_deploy, args=(store_kwargs, kind, n, start, results)) for n in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    return [results.get(timeout=5) for _ in procs]


@pytest.fixture(params=["local", "s3"])
def store_setup(request, tmp_path):
    if request.param == "local":
        kwargs = {"root": str(tmp_path / "store")}
        return "local", kwargs, LocalModelStore(**kwargs)
    server = request.getfixturevalue("s3_server")
    prefix = f"{server.fresh_prefix()}/model_store"
    kwargs = {
        "s3": {"endpoint_url": server.endpoint, "region_name": "us-east-1"},
        "bucket": server.bucket,
        "prefix": prefix,
    }
    return "s3", kwargs, S3ModelStore(s3=server.resource(), bucket=server.bucket, prefix=prefix)


def test_concurrent_deploys_leave_one_complete_version_and_a_full_history(store_setup):
    kind, kwargs, store = store_setup
    outcomes = _run_deploys(kind, kwargs)
    versions = {number: version for number, version, _, _ in outcomes}
    assert len(set(versions.values())) == PROCESSES  # nobody overwrote another's version
    # The race happened: all swapped from one state, so all but one were refused at least once.
    conflicts = sorted(count for _, _, count, _ in outcomes)
    assert conflicts[0] == 0 and all(count >= 1 for count in conflicts[1:]), conflicts

    pointer = store.pointer(MODEL_NAME)
    history = store.history(MODEL_NAME)
    # Every promotion happened once, each on top of the one before: a chain, no lost update.
    assert sorted(h.version for h in history) == sorted(versions.values())
    chain = {h.previous: h.version for h in history}
    assert len(chain) == PROCESSES and None in chain
    walked, step = [], None
    while step in chain:
        step = chain[step]
        walked.append(step)
    assert walked[-1] == pointer.version and len(walked) == PROCESSES

    # The pointer names a complete version whose artifact loads and verifies.
    model, version = store.load(MODEL_NAME)
    assert version.version == pointer.version and model.predict([[3.0]])[0] == 1
    for number, name in versions.items():
        assert store.get_version(MODEL_NAME, name).metadata["process"] == number
