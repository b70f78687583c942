"""Atomic local file writes shared by the IO managers and the local model store."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import BinaryIO

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
