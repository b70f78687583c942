"""Memory the steps before a fit have freed, given back to the operating system.

glibc's malloc keeps freed memory for reuse instead of returning it: the parquet reads and writes
of training_data and the splits free a few hundred MB (at 1M rows) that a process still holds when
the fit, the run's peak, starts. ``malloc_trim(0)`` returns the free pages of every arena. On a C
library without it (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def resident_mb() -> int | None:
    """This process's resident memory in MB (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (OSError, ValueError, IndexError):
        return None


def release_freed_memory() -> int | None:
    """Give the memory this process has freed back to the OS; the MB it released, or None where
    the C library cannot (then nothing happens)."""
    trim = _malloc_trim()
    if trim is None:
        return None
    before = resident_mb()
    trim(0)
    after = resident_mb()
    return max(0, before - after) if before is not None and after is not None else None
