"""The ModelStore contract, run against every backend.

Every test in the contract section takes the parametrized ``store`` fixture. To put another backend
(an S3 store, say) under the same contract, add one ``Backend`` entry to ``STORE_BACKENDS``: how to
build it inside a test's sandbox, and how to list the raw objects it holds (temp files included,
which the store's own API hides) inside and outside its root.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from ml_platform.backends.local import LocalModelStore
from ml_platform.backends.s3 import S3ModelStore
from ml_platform.backends.s3_bucket import S3Bucket
from ml_platform.errors import (
    ModelIntegrityError,
    ModelStoreError,
    ModelVersionNotFoundError,
    NoProductionModelError,
    PointerConflictError,
)
from ml_platform.resources import ModelStore, ModelVersion
from ml_platform.signature import Signature, infer_signature

MODEL = "churn"
ARTIFACT = "model.joblib"
METADATA = "metadata.json"
POINTER = "production.json"


# -- backends ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """What the contract needs from one backend."""

    make: Callable[[Path], ModelStore]
    # Every object under the store root, as "/"-joined keys, temporary files included.
    raw_keys: Callable[[ModelStore, Path], set[str]]
    # Every object the backend holds in the sandbox outside the store root (should stay empty).
    outside_root: Callable[[ModelStore, Path], set[str]]


def _walk(folder: Path, skip: Path | None = None) -> set[str]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in filenames + dirnames:
            path = Path(dirpath, name)
            if path != skip:
                found.add(path.relative_to(folder).as_posix())
    return found


def _local_keys(store: ModelStore, sandbox: Path) -> set[str]:
    root = Path(store.root)
    return {key for key in _walk(root) if (root / key).is_file()}


def _local_outside(store: ModelStore, sandbox: Path) -> set[str]:
    return _walk(sandbox, skip=Path(store.root))


LOCAL = Backend(
    make=lambda sandbox: LocalModelStore(root=str(sandbox / "store")),
    raw_keys=_local_keys,
    outside_root=_local_outside,
)


def _s3_store(sandbox: Path) -> ModelStore:
    # The sandbox's name is unique per test: it becomes the store's prefix in the shared bucket.
    server = _S3["server"]
    return S3ModelStore(s3=server.resource(), bucket=server.bucket, prefix=f"{sandbox.parent.name}/store")


def _s3_keys(store: ModelStore, sandbox: Path) -> set[str]:
    return {o.key for o in S3Bucket(store.s3.get_client(), store.bucket, store.prefix).objects("")}


def _s3_outside(store: ModelStore, sandbox: Path) -> set[str]:
    # Everything under the test's own prefix but outside the store, plus the local sandbox.
    bucket = S3Bucket(store.s3.get_client(), store.bucket, sandbox.parent.name)
    return {o.key for o in bucket.objects("") if not o.key.startswith("store/")} | _walk(sandbox)


S3 = Backend(make=_s3_store, raw_keys=_s3_keys, outside_root=_s3_outside)
_S3: dict = {}

STORE_BACKENDS = [pytest.param(LOCAL, id="local"), pytest.param(S3, id="s3")]


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ModelStore:
    if request.param is S3:
        _S3["server"] = request.getfixturevalue("s3_server")  # started only when an S3 test runs
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    return request.param.make(sandbox)


@dataclass
class Raw:
    """A backend's raw objects, bypassing the ModelStore API."""

    keys: Callable[[], set[str]]
    outside_root: Callable[[], set[str]]

    def temp_files(self) -> set[str]:
        return {k for k in self.keys() if k.rsplit("/", 1)[-1].startswith(".tmp-")}


@pytest.fixture
def raw(request: pytest.FixtureRequest, store: ModelStore, tmp_path: Path) -> Raw:
    backend: Backend = request.node.callspec.params["store"]
    sandbox = tmp_path / "sandbox"
    return Raw(
        keys=lambda: backend.raw_keys(store, sandbox),
        outside_root=lambda: backend.outside_root(store, sandbox),
    )


# -- helpers -------------------------------------------------------------------------------------

X = np.array([[0.0, 1.0], [1.0, 0.5], [2.0, 0.0], [3.0, -0.5], [4.0, -1.0], [5.0, -1.5]])
Y = np.array([0, 0, 0, 1, 1, 1])


def fitted(c: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=c).fit(X, Y)


def save(store: ModelStore, identity: str | None = None, **metadata) -> ModelVersion:
    return store.save_version(MODEL, fitted(), {"metrics": {"accuracy": 1.0}, **metadata}, identity)


def history(store: ModelStore) -> list[dict]:
    return [json.loads(store.read_bytes(f"{MODEL}/history/{name}")) for name in store.list_children(f"{MODEL}/history")]


# -- the contract --------------------------------------------------------------------------------


def test_save_version_writes_artifact_and_metadata(store, raw):
    before = dt.datetime.now(dt.UTC)
    version = store.save_version(
        MODEL, fitted(), {"metrics": {"accuracy": 0.93}, "params": {"C": 1.0}}, identity="data-1"
    )
    after = dt.datetime.now(dt.UTC)

    prefix = f"{MODEL}/{version.version}"
    # The version, its recipe's index entry, and the mark that the (new) store's recipes are indexed.
    assert raw.keys() == {
        f"{prefix}/{ARTIFACT}",
        f"{prefix}/{METADATA}",
        _recipe_key("data-1"),
        f"{MODEL}/recipes/INDEXED",
    }
    assert json.loads(store.read_bytes(_recipe_key("data-1"))) == {"identity": "data-1", "version": version.version}
    assert version.model_name == MODEL
    assert version.location == store.uri(prefix)

    artifact = store.read_bytes(f"{prefix}/{ARTIFACT}")
    recorded = json.loads(store.read_bytes(f"{prefix}/{METADATA}"))
    assert recorded == version.metadata
    assert recorded["sha256"] == hashlib.sha256(artifact).hexdigest() == version.sha256
    assert recorded["size_bytes"] == len(artifact)
    assert recorded["identity"] == "data-1"
    assert recorded["version"] == version.version
    assert recorded["model_name"] == MODEL
    assert before <= dt.datetime.fromisoformat(recorded["created_at"]) <= after
    # The caller's metadata is kept as given.
    assert recorded["metrics"] == {"accuracy": 0.93}
    assert recorded["params"] == {"C": 1.0}


def test_the_signature_round_trips_through_the_store(store):
    frame = pd.DataFrame({"x": [0.5, 1.5, np.nan], "segment": ["a", "b", None], "flag": [True, False, True]})
    signature = infer_signature(frame, "target", "classification", [0, 1])
    saved = save(store, signature=signature.to_dict())
    loaded = store.get_version(MODEL, saved.version)
    assert Signature.of_version(loaded.metadata) == signature
    assert Signature.of_version(store.list_versions(MODEL)[0].metadata).digest == signature.digest


def test_list_models_names_every_model_with_a_complete_version(store):
    assert store.list_models() == []
    save(store)
    store.save_version("other", fitted(), {"metrics": {}})
    store.write_bytes("incomplete/v1/model.joblib", b"no metadata yet")
    assert store.list_models() == [MODEL, "other"]


def test_list_versions_is_oldest_first_and_ignores_incomplete_versions(store):
    assert store.list_versions(MODEL) == []
    saved = [save(store, identity=f"data-{n}") for n in range(3)]
    # An interrupted save: the artifact is there, metadata.json never got written.
    store.write_bytes(f"{MODEL}/v99991231T235959999999Z-deadbeef/{ARTIFACT}", b"half a model")

    listed = store.list_versions(MODEL)
    assert [v.version for v in listed] == [v.version for v in saved]
    created = [dt.datetime.fromisoformat(v.metadata["created_at"]) for v in listed]
    assert created == sorted(created)
    assert all(v.metadata["identity"] == f"data-{n}" for n, v in enumerate(listed))


def test_nothing_is_in_production_before_the_first_promotion(store):
    assert store.production(MODEL) is None  # an unknown model
    version = save(store)
    assert store.production(MODEL) is None  # a saved but never promoted model
    assert store.pointer(MODEL) is None
    with pytest.raises(NoProductionModelError, match=MODEL):
        store.load(MODEL)
    # An explicit version still loads.
    model, loaded = store.load(MODEL, version.version)
    assert loaded.version == version.version


def test_promote_moves_the_pointer_and_records_history(store):
    first, second = save(store, identity="a"), save(store, identity="b")

    record = store.promote(MODEL, first.version, reason="first model")
    assert record.previous is None
    assert store.production(MODEL).version == first.version
    pointer = json.loads(store.read_bytes(f"{MODEL}/{POINTER}"))
    assert pointer == record.to_dict()  # the file holds what promote returned
    assert pointer["version"] == first.version
    assert pointer["sha256"] == first.sha256
    assert pointer["reason"] == "first model"
    dt.datetime.fromisoformat(pointer["promoted_at"])

    record = store.promote(MODEL, second.version, reason="better accuracy")
    assert record.previous == first.version
    assert store.production(MODEL).version == second.version
    assert json.loads(store.read_bytes(f"{MODEL}/{POINTER}"))["previous"] == first.version

    moves = history(store)
    assert [(m["version"], m["previous"], m["reason"]) for m in moves] == [
        (first.version, None, "first model"),
        (second.version, first.version, "better accuracy"),
    ]
    assert moves[-1] == json.loads(store.read_bytes(f"{MODEL}/{POINTER}"))
    # A history record is not mistaken for a version.
    assert [v.version for v in store.list_versions(MODEL)] == [first.version, second.version]


def test_a_candidate_pointer_moves_beside_production_with_its_own_history(store):
    """A rollout's candidate: its own pointer and history; production never moves with it; a newer
    candidate names the one it replaced; a closed candidate is no candidate; a stale token conflicts."""
    first, second, third = save(store, identity="a"), save(store, identity="b"), save(store, identity="c")
    store.promote(MODEL, first.version, reason="first model")
    assert store.candidate(MODEL) is None

    proposed = store.promote(MODEL, second.version, reason="gate passed", role="candidate")
    assert (proposed.version, proposed.previous, proposed.closed) == (second.version, None, None)
    assert store.candidate(MODEL).version == second.version
    assert store.production(MODEL).version == first.version  # production did not move
    assert json.loads(store.read_bytes(f"{MODEL}/candidate.json")) == proposed.to_dict()

    _, token = store.pointer_state(MODEL, "candidate")
    replaced = store.promote(MODEL, third.version, reason="newer", role="candidate", expected=token)
    assert replaced.previous == second.version
    with pytest.raises(PointerConflictError):  # decided on the state before the replacement
        store.close_candidate(MODEL, "aborted", "late", expected=token)

    closed = store.close_candidate(MODEL, "aborted", "worse on live outcomes", actor="rollout sensor")
    assert (closed.version, closed.closed, closed.actor) == (third.version, "aborted", "rollout sensor")
    assert store.candidate(MODEL) is None and store.pointer(MODEL, "candidate").closed == "aborted"
    with pytest.raises(ModelStoreError, match="no open candidate"):
        store.close_candidate(MODEL, "promoted", "twice")

    moves = store.history(MODEL, "candidate")
    assert [(m.version, m.previous, m.closed) for m in moves] == [
        (second.version, None, None),
        (third.version, second.version, None),
        (third.version, third.version, "aborted"),
    ]
    assert [m.version for m in store.history(MODEL)] == [first.version]  # production's history alone
    # A candidate that production already serves (a promotion a crash left unclosed) is no candidate.
    store.promote(MODEL, second.version, reason="again", role="candidate")
    store.promote(MODEL, second.version, reason="promoted on live evidence")
    assert store.candidate(MODEL) is None
    with pytest.raises(ModelStoreError, match="not 'staging'"):
        store.pointer(MODEL, "staging")


@pytest.mark.parametrize("missing", ["incomplete", "nonexistent"])
def test_promoting_a_missing_version_is_refused_and_leaves_the_pointer(store, raw, missing):
    current = save(store, identity="a")
    store.promote(MODEL, current.version, reason="baseline")
    if missing == "incomplete":
        version = "v99991231T235959999999Z-deadbeef"
        store.write_bytes(f"{MODEL}/{version}/{ARTIFACT}", pickle.dumps(fitted()))
    else:
        version = "v20000101T000000000000Z-00000000"
    pointer_before = store.read_bytes(f"{MODEL}/{POINTER}")
    keys_before = raw.keys()

    with pytest.raises(ModelVersionNotFoundError, match=version):
        store.promote(MODEL, version, reason="should not happen")
    with pytest.raises(ModelVersionNotFoundError):
        store.load(MODEL, version)

    assert store.read_bytes(f"{MODEL}/{POINTER}") == pointer_before
    assert store.production(MODEL).version == current.version
    assert raw.keys() == keys_before  # no history record either
    assert len(history(store)) == 1


def test_load_refuses_a_tampered_artifact(store):
    version = save(store)
    store.promote(MODEL, version.version, reason="baseline")
    key = f"{MODEL}/{version.version}/{ARTIFACT}"
    tampered = store.read_bytes(key) + b"tampered"
    store.write_bytes(key, tampered)

    with pytest.raises(ModelIntegrityError) as production_load:
        store.load(MODEL)
    message = str(production_load.value)
    assert version.sha256 in message
    assert hashlib.sha256(tampered).hexdigest() in message
    assert version.version in message
    with pytest.raises(ModelIntegrityError):
        store.load(MODEL, version.version)


def test_same_identity_returns_the_existing_version(store, raw):
    first = store.save_version(MODEL, fitted(c=1.0), {"run": 1}, identity="data-abc")
    keys = raw.keys()

    again = store.save_version(MODEL, fitted(c=0.1), {"run": 2}, identity="data-abc")
    assert again.version == first.version
    assert again.metadata == first.metadata  # the first record, not the second call's metadata
    assert raw.keys() == keys  # nothing written

    other = store.save_version(MODEL, fitted(c=1.0), {"run": 3}, identity="data-xyz")
    assert other.version != first.version
    assert [v.version for v in store.list_versions(MODEL)] == [first.version, other.version]


def _recipe_key(identity: str) -> str:
    return f"{MODEL}/recipes/{hashlib.sha256(identity.encode()).hexdigest()}.json"


def _version_before_the_index(store: ModelStore, identity: str, stamp: str) -> str:
    """A version as a store written before the recipe index holds it: artifact and metadata, no entry."""
    buffer = io.BytesIO()
    joblib.dump(fitted(), buffer)
    artifact = buffer.getvalue()
    version = f"v{stamp}Z-{hashlib.sha256(artifact).hexdigest()[:8]}"
    store.write_bytes(f"{MODEL}/{version}/{ARTIFACT}", artifact)
    store.write_bytes(
        f"{MODEL}/{version}/{METADATA}",
        json.dumps(
            {
                "model_name": MODEL,
                "version": version,
                "identity": identity,
                "sha256": hashlib.sha256(artifact).hexdigest(),
                "size_bytes": len(artifact),
                "created_at": "2020-01-01T00:00:00+00:00",
                "extras": [],
            }
        ).encode(),
    )
    return version


def test_find_version_reads_the_recipe_index(store):
    first, second = save(store, identity="a"), save(store, identity="b")
    assert store.find_version(MODEL, "a").version == first.version
    assert store.find_version(MODEL, "b").version == second.version
    assert store.find_version(MODEL, "never stored") is None


def test_versions_stored_before_the_index_are_found_by_one_scan_that_indexes_them(store, raw):
    older = _version_before_the_index(store, "old recipe", "20200101T000000000000")
    newer = _version_before_the_index(store, "old recipe", "20200102T000000000000")
    other = _version_before_the_index(store, "other recipe", "20200103T000000000000")
    assert not [k for k in raw.keys() if "/recipes/" in k]

    found = store.find_version(MODEL, "old recipe")
    assert found.version == newer and older != newer  # the newest of that recipe
    # The scan wrote an entry for every recipe it read, and the mark that the store is indexed.
    assert json.loads(store.read_bytes(_recipe_key("old recipe")))["version"] == newer
    assert json.loads(store.read_bytes(_recipe_key("other recipe")))["version"] == other
    assert store.exists(f"{MODEL}/recipes/INDEXED")
    assert store.find_version(MODEL, "not there") is None
    # Saving that recipe again returns the version found, and writes nothing.
    keys = raw.keys()
    assert store.save_version(MODEL, fitted(), {}, identity="old recipe").version == newer
    assert raw.keys() == keys


def test_a_damaged_index_entry_is_settled_by_a_scan(store):
    version = save(store, identity="a")
    store.write_bytes(_recipe_key("a"), b"{not json")
    assert store.find_version(MODEL, "a").version == version.version
    assert json.loads(store.read_bytes(_recipe_key("a")))["version"] == version.version  # repaired
    # An entry naming a version of another recipe is not believed either.
    other = save(store, identity="b")
    store.write_bytes(_recipe_key("a"), json.dumps({"identity": "a", "version": other.version}).encode())
    assert store.find_version(MODEL, "a").version == version.version


def test_without_identity_every_save_is_a_new_version(store):
    first, second = save(store), save(store)
    assert first.version != second.version
    assert [v.version for v in store.list_versions(MODEL)] == [first.version, second.version]


BAD_NAMES = ["..", ".", "../escape", "a/b", "a/../../escape", ".hidden", "", "a\\b"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_names_that_could_leave_the_root_are_refused(store, raw, bad):
    good = save(store)
    keys = raw.keys()
    operations = {
        "save_version": lambda: store.save_version(bad, fitted(), {}),
        "list_versions": lambda: store.list_versions(bad),
        "get_version model": lambda: store.get_version(bad, good.version),
        "get_version version": lambda: store.get_version(MODEL, bad),
        "production": lambda: store.production(bad),
        "promote model": lambda: store.promote(bad, good.version, reason="x"),
        "promote version": lambda: store.promote(MODEL, bad, reason="x"),
        "load model": lambda: store.load(bad),
        "load version": lambda: store.load(MODEL, bad),
    }
    for name, operation in operations.items():
        with pytest.raises(ModelStoreError):
            operation()
            pytest.fail(f"{name} accepted {bad!r}")
    assert raw.outside_root() == set()
    assert raw.keys() == keys
    assert store.pointer(MODEL) is None


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_pointer_refuses_names_that_could_leave_the_root(store, raw, bad):
    good = save(store)
    store.promote(good.model_name, good.version, reason="baseline")
    with pytest.raises(ModelStoreError):
        store.pointer(bad)
    assert raw.outside_root() == set()


def test_writes_leave_no_temp_files(store, raw):
    first, second = save(store, identity="a"), save(store, identity="b")
    store.promote(MODEL, first.version, reason="one")
    store.promote(MODEL, second.version, reason="two")
    store.load(MODEL)
    assert raw.temp_files() == set()
    assert raw.outside_root() == set()


def test_the_loaded_model_predicts_like_the_saved_one(store):
    model = fitted(c=0.5)
    version = store.save_version(MODEL, model, {"metrics": {}})
    store.promote(MODEL, version.version, reason="test")

    loaded, loaded_version = store.load(MODEL)
    assert loaded_version.version == version.version
    assert loaded_version.sha256 == version.sha256
    assert isinstance(loaded, LogisticRegression)
    rows = np.array([[0.5, 0.8], [4.5, -1.2], [2.5, -0.2]])
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))


class _HoldsALambda:
    def __init__(self) -> None:
        self.score = lambda x: x


@pytest.mark.parametrize(
    "unpicklable",
    [threading.Lock(), _HoldsALambda(), {"model": fitted(), "lock": threading.Lock()}],
    ids=["lock", "lambda", "model-with-lock"],
)
def test_a_failed_save_leaves_no_new_version_and_the_pointer_unchanged(store, raw, unpicklable):
    current = save(store, identity="a")
    store.promote(MODEL, current.version, reason="baseline")
    keys = raw.keys()
    pointer = store.read_bytes(f"{MODEL}/{POINTER}")

    with pytest.raises((TypeError, pickle.PicklingError, AttributeError)):
        store.save_version(MODEL, unpicklable, {"metrics": {}}, identity="b")

    assert raw.keys() == keys  # no version folder, no temp file
    assert raw.temp_files() == set()
    assert [v.version for v in store.list_versions(MODEL)] == [current.version]
    assert store.read_bytes(f"{MODEL}/{POINTER}") == pointer
    model, version = store.load(MODEL)
    assert version.version == current.version
    assert model.predict(X).tolist() == Y.tolist()


def test_metadata_that_cannot_be_recorded_leaves_no_new_version(store, raw):
    current = save(store, identity="a")
    store.promote(MODEL, current.version, reason="baseline")
    pointer = store.read_bytes(f"{MODEL}/{POINTER}")

    with pytest.raises(TypeError):
        # json cannot write tuple keys: this fails after the artifact has been written.
        store.save_version(MODEL, fitted(), {"per_class": {(0, 1): 0.5}}, identity="b")

    assert [v.version for v in store.list_versions(MODEL)] == [current.version]
    assert raw.temp_files() == set()
    assert store.read_bytes(f"{MODEL}/{POINTER}") == pointer
    # The identity was not taken by the failed save: a correct retry writes a new version.
    retry = store.save_version(MODEL, fitted(), {"per_class": {"0,1": 0.5}}, identity="b")
    assert [v.version for v in store.list_versions(MODEL)] == [current.version, retry.version]


# -- local backend only --------------------------------------------------------------------------


def test_local_store_files_are_real_files_under_the_root(tmp_path):
    store = LocalModelStore(root=str(tmp_path / "store"))
    version = save(store)
    store.promote(MODEL, version.version, reason="test")
    folder = tmp_path / "store" / MODEL / version.version
    assert (folder / ARTIFACT).is_file()
    assert (
        json.loads((folder / METADATA).read_text())["sha256"]
        == hashlib.sha256((folder / ARTIFACT).read_bytes()).hexdigest()
    )
    assert json.loads((tmp_path / "store" / MODEL / POINTER).read_text())["version"] == version.version
    assert len(list((tmp_path / "store" / MODEL / "history").glob("*.json"))) == 1


def test_local_store_files_are_readable_by_the_group_like_ordinary_files(tmp_path):
    old = os.umask(0o022)
    try:
        store = LocalModelStore(root=str(tmp_path / "store"))
        version = save(store)
        store.promote(MODEL, version.version, reason="test")
    finally:
        os.umask(old)
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o644, path


def test_delete_tree_deletes_a_folder_and_nothing_beside_it(store, raw):
    """The prediction log's retention: one day folder goes, the next day and the versions stay."""
    version = save(store)
    for day in ("2026-01-01", "2026-01-02"):
        for part in ("a.parquet", "b.parquet"):
            store.write_bytes(f"{MODEL}/prediction_log/{day}/{part}", b"rows")
    store.delete_tree(f"{MODEL}/prediction_log/2026-01-01")
    assert store.list_children(f"{MODEL}/prediction_log") == ["2026-01-02"]
    assert store.list_children(f"{MODEL}/prediction_log/2026-01-02") == ["a.parquet", "b.parquet"]
    assert store.get_version(MODEL, version.version).version == version.version
    store.delete_tree(f"{MODEL}/prediction_log/2025-12-31")  # nothing there: nothing to do
    with pytest.raises(ModelStoreError, match="not the root"):
        store.delete_tree("")
    assert not raw.outside_root()
