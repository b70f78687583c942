"""The production pointer as one typed record (ml_platform/pointer.py): the store writes the same
bytes as before, older pointers load, a broken one is a ModelStoreError that names the problem."""

import json

import pytest
from sklearn.linear_model import LogisticRegression

from ml_platform.backends.local import LocalModelStore
from ml_platform.errors import ModelStoreError
from ml_platform.pointer import Pointer
from ml_platform.version_record import VersionRecord


def test_promote_writes_a_pointer_every_reader_gets_back_typed(tmp_path):
    store = LocalModelStore(root=str(tmp_path))
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    first = store.save_version("m", model, VersionRecord(), identity="sha256:a")
    second = store.save_version("m", model, VersionRecord(), identity="sha256:b")
    store.promote("m", first.version, reason="first")
    moved = store.promote("m", second.version, reason="better", actor="me")
    assert store.pointer("m") == moved
    assert (moved.version, moved.previous, moved.sha256, moved.actor) == (
        second.version,
        first.version,
        second.sha256,
        "me",
    )
    on_disk = (tmp_path / "m" / "production.json").read_bytes()
    # The file as the platform always wrote it: six keys, sorted, indented.
    assert on_disk == json.dumps(json.loads(on_disk), indent=2, sort_keys=True).encode()
    assert set(json.loads(on_disk)) == {"version", "sha256", "promoted_at", "previous", "reason", "actor"}
    assert [p.version for p in store.history("m")] == [first.version, second.version]


def test_an_older_pointer_loads_and_keeps_what_it_does_not_know():
    old = {"version": "v1", "promoted_at": "2025-03-01T10:00:00+00:00", "reason": "first", "by": "cron"}
    pointer = Pointer.from_dict(old)
    assert (pointer.sha256, pointer.previous, pointer.actor) == (None, None, None)
    assert pointer.promoted_time.year == 2025 and pointer.to_dict()["by"] == "cron"


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"{not json", "is not JSON"),
        (b'{"promoted_at": "2025-03-01T10:00:00"}', "must name a version"),
        (b"[]", "must name"),
    ],
)
def test_a_broken_pointer_is_a_model_store_error_that_says_why(data, said):
    with pytest.raises(ModelStoreError, match=said):
        Pointer.from_bytes(data)
