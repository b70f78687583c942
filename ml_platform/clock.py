"""What time it is, for the platform: the one ``now()`` behind every decision that depends on the
time of day — the day a prediction belongs to, whether a day of the log has ended, which day
folders the log's retention deletes.

Code that decides by the time takes a clock (a function of no arguments returning an aware UTC
datetime) as a parameter or attribute, ``now`` by default, so a test hands it a fixed one. A process
started as a whole (``ml-platform serve``, ``dagster dev``, its runs and sensors) reads
``ML_PLATFORM_CLOCK`` instead: an ISO 8601 time with its offset, e.g. ``2026-01-10T00:02:00+01:00``,
at which the platform's clock stands still in that process. A test and ops facility: a malformed
value is refused (ConfigError naming the variable), at settings load and on every read.

Timestamps that decide nothing (when a version was saved, a part's file name) stay the wall clock's.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable, Mapping

from ml_platform.errors import ConfigError

ENV_VAR = "ML_PLATFORM_CLOCK"
Clock = Callable[[], dt.datetime]


def wall() -> dt.datetime:
    """The machine's clock, in UTC."""
    return dt.datetime.now(dt.UTC)


def now() -> dt.datetime:
    """The platform's time, in UTC: ``ML_PLATFORM_CLOCK`` when it is set, the wall clock otherwise."""
    return fixed_time() or wall()


def fixed_time(environ: Mapping[str, str] | None = None) -> dt.datetime | None:
    """The time ``ML_PLATFORM_CLOCK`` fixes (in UTC), or None when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    return parse(value) if value else None


@functools.lru_cache(maxsize=16)
def parse(value: str) -> dt.datetime:
    """An ``ML_PLATFORM_CLOCK`` value as an aware UTC datetime; ConfigError when it is not one."""
    example = "e.g. 2026-01-10T00:02:00+01:00 or 2026-01-09T23:02:00Z"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{ENV_VAR}={value!r} is not an ISO 8601 time ({example})") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{ENV_VAR}={value!r} has no UTC offset: the time it means is ambiguous ({example})")
    return moment.astimezone(dt.UTC)
