"""A run killed (SIGKILL) in the middle of a deploy: the store still serves the previous production
model with a valid sha256, the leftovers are ignored, and the next run completes.

The runs are real `dagster asset materialize` processes on a project-local instance; the kill
comes from ml_platform_tests/support/killpoint.py at one point of the model store's writes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ml_platform.backends.local import LocalModelStore
from ml_platform.demo import seed_landing
from ml_platform_tests.support.constants import BIN, DAYS, END_DAY, MODEL_NAME, TARGET
from ml_platform_tests.support.killpoint import POINTS
from ml_platform_tests.support.platform import project_env, project_vars

MODULE = "ml_platform.definitions"
# Points after which the new version is already in production (the pointer has moved).
POINTER_MOVED = {"before-history"}


def chain_args(n_estimators: int) -> list[str]:
    config = {"ops": {"demo__trained_model": {"config": {"n_estimators": n_estimators}}}}
    return [
        "asset",
        "materialize",
        "-m",
        MODULE,
        "--select",
        "key:demo/training_data+",
        "--partition",
        END_DAY,
        "--config-json",
        json.dumps(config),
    ]


def dagster(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dagster"), *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def deployed_project(tmp_path_factory) -> Path:
    """A project with ingested data and one model in production (built once, copied per test)."""
    root = tmp_path_factory.mktemp("deployed")
    env = project_env(root)
    seed_landing(str(root / "landing"), end_day=END_DAY, days=len(DAYS), target=TARGET)
    ingest = dagster(
        env,
        "asset",
        "materialize",
        "-m",
        MODULE,
        "--select",
        "key:demo/raw_data",
        "--partition-range",
        f"{DAYS[0]}...{DAYS[-1]}",
    )
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    train = dagster(env, *chain_args(10))
    assert train.returncode == 0, train.stderr[-3000:]
    return root


def store_state(root: Path) -> tuple[str, bytes]:
    store = LocalModelStore(root=str(root / "model_store"))
    model, version = store.load(MODEL_NAME)  # verifies the sha256
    assert hasattr(model, "predict")
    return version.version, (root / "model_store" / MODEL_NAME / "production.json").read_bytes()


@pytest.mark.parametrize("point", POINTS)
def test_a_run_killed_mid_deploy_leaves_a_loadable_store_and_the_rerun_completes(
    deployed_project: Path, tmp_path: Path, point: str
):
    root = tmp_path / "project"
    shutil.copytree(deployed_project, root)
    env = project_vars(root)  # the copied project's folders
    store = LocalModelStore(root=str(root / "model_store"))
    before_version, before_pointer = store_state(root)
    versions_before = {v.version for v in store.list_versions(MODEL_NAME)}

    marker = tmp_path / "killed.txt"
    killed = subprocess.run(
        [sys.executable, "-m", "ml_platform_tests.support.killpoint", point, str(marker), "--", *chain_args(12)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, f"not killed ({killed.returncode}): {killed.stderr[-3000:]}"
    assert marker.exists(), "the run died before reaching the kill point"

    # Right after the crash: production loads, with a verified sha256.
    version_now, pointer_now = store_state(root)
    listed = {v.version for v in store.list_versions(MODEL_NAME)}
    if point in POINTER_MOVED:
        new_version = version_now
        assert new_version not in versions_before and listed == versions_before | {new_version}
        assert json.loads(pointer_now)["previous"] == before_version
    else:
        assert (version_now, pointer_now) == (before_version, before_pointer)
        # An interrupted version is never listed; a complete one waits unpromoted.
        extra = listed - versions_before
        assert len(extra) == (1 if point in ("before-pointer", "pointer-mid-write") else 0)
    leftovers = sorted(p.name for p in (root / "model_store").rglob(".tmp-*"))
    if point.endswith("mid-write"):
        assert leftovers, "the kill should have left the half-written temporary file"

    # The rerun (same command, no kill) completes and serves a complete new version.
    rerun = dagster(env, *chain_args(12))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    final_version, final_pointer = store_state(root)
    assert final_version != before_version
    record = json.loads(final_pointer)
    assert record["previous"] == before_version
    final = store.get_version(MODEL_NAME, final_version)
    assert final.metadata["params"]["n_estimators"] == 12
    # Each complete version is stored once (the rerun reuses one a crash left unpromoted).
    assert {v.version for v in store.list_versions(MODEL_NAME)} == versions_before | {final_version}
    # The history has every pointer move, including one a kill left unrecorded.
    history = store.history(MODEL_NAME)
    assert [h.version for h in history] == [before_version, final_version]
    assert history[-1].to_dict() == record  # the record on disk, as the store reads it back
    # Leftover temporary files stay hidden from every reader of the store.
    assert all(not name.startswith(".") for name in store.list_children(MODEL_NAME))
