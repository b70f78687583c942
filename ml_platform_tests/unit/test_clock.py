"""The platform's clock: the wall clock, or the time ML_PLATFORM_CLOCK fixes; a malformed value is
refused with the variable's name, when the settings load."""

import datetime as dt

import pytest

from ml_platform import clock
from ml_platform.errors import ConfigError
from ml_platform.settings import load_settings


def test_the_wall_clock_unless_a_time_is_fixed(monkeypatch):
    monkeypatch.delenv(clock.ENV_VAR, raising=False)
    before = dt.datetime.now(dt.UTC)
    assert before <= clock.now() <= dt.datetime.now(dt.UTC)
    monkeypatch.setenv(clock.ENV_VAR, "2026-01-10T00:02:00+01:00")
    assert clock.now() == dt.datetime(2026, 1, 9, 23, 2, tzinfo=dt.UTC) == clock.now()  # it stands still
    assert clock.now().tzinfo == dt.UTC
    monkeypatch.setenv(clock.ENV_VAR, "2026-01-09T23:02:00Z")
    assert clock.now() == dt.datetime(2026, 1, 9, 23, 2, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("tomorrow", "ML_PLATFORM_CLOCK='tomorrow' is not an ISO 8601 time"),
        ("2026-01-10T00:02:00", "ML_PLATFORM_CLOCK='2026-01-10T00:02:00' has no UTC offset"),
        ("2026-01-10", "has no UTC offset"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_variable(monkeypatch, value, says):
    with pytest.raises(ConfigError, match=says):
        load_settings(environ={clock.ENV_VAR: value})
    monkeypatch.setenv(clock.ENV_VAR, value)
    with pytest.raises(ConfigError, match=says):
        clock.now()
