"""What the IO managers and the model stores share about storage: atomic local file writes, and the
one rule a name must meet to become a path segment."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import BinaryIO

from ml_platform.errors import MlPlatformError

# mkstemp creates files readable by their owner only; stored files get the usual umask-based mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Write a file so that readers see the old content or the new, never a partial file.

    The content goes to a temporary file in the same folder, is flushed to disk, and is renamed over
    the target; a failure removes the temporary file and leaves the target as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    atomic_write(path, lambda handle: handle.write(data))


def check_segment(value: str, what: str, error: type[MlPlatformError] = MlPlatformError) -> str:
    """``value`` if it can be one segment of a storage path (a model name, a version, an asset key's
    part, a partition key): nothing that climbs out of a root (``..``, a separator), nothing empty,
    nothing hidden (a leading ``.``: temporary files and markers are). ``error`` otherwise."""
    if not value or value in (".", "..") or "/" in value or "\\" in value or value.startswith("."):
        raise error(f"{value!r} cannot be used as a storage path segment ({what})")
    return value
