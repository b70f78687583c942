"""Run the `dagster` CLI in this process and SIGKILL it at one point of a model store write.

    python -m ml_platform_tests.killpoint POINT MARKER -- asset materialize -m ml_platform.definitions ...

The pipeline runs in the CLI process (the in-process executor, the default), so killing this
process kills the run the way a crash, an OOM kill or a node loss would: no exception handler,
no cleanup. Before the kill the process writes MARKER, so a test knows the point was reached.

Points, in the order a deploy writes (all inside ML_PLATFORM_MODEL_STORE_DIR):

- ``artifact-mid-write``: half of ``model.joblib`` is in its temporary file;
- ``artifact-written``: ``model.joblib`` is complete, ``metadata.json`` not written yet;
- ``metadata-mid-write``: half of ``metadata.json`` is in its temporary file;
- ``before-pointer``: the version is complete, the production pointer not moved yet;
- ``pointer-mid-write``: half of the new ``production.json`` is in its temporary file (the
  pointer lock is held);
- ``before-history``: the pointer moved, its history record not written yet.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

POINTS = (
    "artifact-mid-write",
    "artifact-written",
    "metadata-mid-write",
    "before-pointer",
    "pointer-mid-write",
    "before-history",
)


def _die(marker: str, what: str) -> None:
    Path(marker).write_text(what)
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str, marker: str) -> None:
    """Wrap the store's write primitives so that the process dies at ``point``."""
    from ml_platform import storage
    from ml_platform.backends.local import LocalModelStore

    store_root = os.path.realpath(os.environ["ML_PLATFORM_MODEL_STORE_DIR"])
    real_atomic_write = storage.atomic_write
    real_swap = LocalModelStore.swap_bytes

    def atomic_write(path, write):
        in_store = os.path.realpath(path).startswith(store_root + os.sep)
        name = os.path.basename(path)
        mid = {
            "artifact-mid-write": "model.joblib",
            "metadata-mid-write": "metadata.json",
            "pointer-mid-write": "production.json",
        }.get(point)
        if in_store and name == mid:

            def half(handle):
                buffer = io.BytesIO()
                write(buffer)
                data = buffer.getvalue()
                handle.write(data[: len(data) // 2])
                handle.flush()
                os.fsync(handle.fileno())
                _die(marker, f"{point}: {len(data) // 2} of {len(data)} bytes of {path}")

            return real_atomic_write(path, half)
        if in_store and name == "metadata.json" and point == "artifact-written":
            _die(marker, f"{point}: before {path}")
        return real_atomic_write(path, write)

    def swap_bytes(self, key, data, expected):
        if point == "before-pointer":
            _die(marker, f"{point}: before {key}")
        real_swap(self, key, data, expected)
        if point == "before-history":
            _die(marker, f"{point}: after {key}")

    storage.atomic_write = atomic_write
    LocalModelStore.swap_bytes = swap_bytes


def main() -> None:
    point, marker, separator, *args = sys.argv[1:]
    if point not in POINTS or separator != "--":
        raise SystemExit(f"usage: killpoint {{{','.join(POINTS)}}} MARKER -- DAGSTER_ARGS...")
    install(point, marker)
    from dagster._cli import main as dagster_main  # what the `dagster` script runs

    sys.argv = ["dagster", *args]
    sys.exit(dagster_main())


if __name__ == "__main__":
    main()
