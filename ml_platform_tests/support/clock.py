"""A clock a test sets and moves, in place of the platform's (``ml_platform.clock``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo


def local_time(day: str, time: str, zone: str) -> dt.datetime:
    """``time`` (HH:MM[:SS]) of ``day`` in ``zone``, as an aware UTC datetime."""
    moment = dt.datetime.combine(dt.date.fromisoformat(day), dt.time.fromisoformat(time), ZoneInfo(zone))
    return moment.astimezone(dt.UTC)


@dataclass
class SetClock:
    """Says ``moment`` until moved."""

    moment: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.moment

    def move(self, **delta: float) -> None:
        self.moment += dt.timedelta(**delta)
