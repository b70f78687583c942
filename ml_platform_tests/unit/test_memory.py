"""Memory freed before a fit is given back to the OS (glibc keeps it otherwise)."""

import gc

from ml_platform.memory import release_freed_memory, resident_mb


def test_memory_freed_below_a_live_allocation_is_given_back_to_the_os():
    blocks = [bytearray(4096) for _ in range(50_000)]  # ~200 MB of malloc'd blocks
    pin = bytearray(4096)  # allocated after them: glibc cannot shrink its heap past it by itself
    assert resident_mb() is not None
    del blocks
    gc.collect()
    held = resident_mb()
    released = release_freed_memory()
    after = resident_mb()
    assert released is not None, "malloc_trim is missing from this C library (the platform runs on glibc)"
    assert held - after >= 100 and released >= 100, (held, after, released)
    assert len(pin) == 4096
