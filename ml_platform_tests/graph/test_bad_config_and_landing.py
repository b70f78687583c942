"""Bad input: each gives a clear error naming the file, column or key, the run fails visibly, and the
production model in the store is left exactly as it was.

Every bad input run through the pipeline is one row of test_bad_input_matrix.py, which uses the
good platform built here; this module keeps the landing zone on its own and the config error that
`raise_on_error=True` raises."""

from pathlib import Path

import dagster as dg
import pytest

from ml_platform.backends.local import LocalLandingZone
from ml_platform.errors import (
    CorruptLandingFileError,
    EmptyLandingFileError,
    LandingFileError,
    LandingFileMissingError,
)
from ml_platform_tests.support.constants import TARGET
from ml_platform_tests.support.good_platform import DAY, deployed, good_template, store_state  # noqa: F401 (fixtures)
from ml_platform_tests.support.pipelines import ALL_DEFS

# -- bad run config ------------------------------------------------------------------------------


def test_unknown_config_key_raises_with_raise_on_error(deployed):
    before = store_state(deployed)
    with pytest.raises(dg.DagsterInvalidConfigError) as raised:
        dg.materialize(
            ALL_DEFS,
            selection="key:demo/training_data+",
            partition_key=DAY,
            instance=deployed.instance,
            resources=deployed.resources,
            run_config={"ops": {"demo__trained_model": {"config": {"n_trees": 5}}}},
            raise_on_error=True,
        )
    assert "n_trees" in str(raised.value) and "trained_model" in str(raised.value)
    assert store_state(deployed) == before


# -- the landing zone on its own -----------------------------------------------------------------


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


@pytest.fixture
def zone(landing: Path) -> LocalLandingZone:
    return LocalLandingZone(root=str(landing))


def test_read_missing_day_raises_missing_error(zone, landing):
    with pytest.raises(LandingFileMissingError) as raised:
        zone.read(DAY)
    assert isinstance(raised.value, FileNotFoundError)
    assert DAY in str(raised.value) and str(landing) in str(raised.value)


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        (f"{DAY}.csv", b"", "0 bytes"),
        (f"{DAY}.parquet", b"", "0 bytes"),
        (f"{DAY}.csv", b"  \n\n", "no header and no rows"),
    ],
)
def test_read_empty_file_raises_empty_error(zone, landing, name, data, says):
    (landing / name).write_bytes(data)
    with pytest.raises(EmptyLandingFileError) as raised:
        zone.read(DAY)
    assert str(landing / name) in str(raised.value) and says in str(raised.value)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        (f"{DAY}.parquet", b"this is not parquet at all"),
        (f"{DAY}.parquet", b"PAR1garbagePAR1"),
        (f"{DAY}.csv", b"a,b\n1,2\n1,2,3,4\n"),
        (f"{DAY}.csv", b"\x82\xff\x00\x91binary"),
    ],
    ids=["parquet-text", "parquet-magic-only", "csv-ragged", "csv-binary"],
)
def test_read_corrupt_file_raises_corrupt_error(zone, landing, name, data):
    (landing / name).write_bytes(data)
    with pytest.raises(CorruptLandingFileError) as raised:
        zone.read(DAY)
    assert str(landing / name) in str(raised.value) and "cannot be read" in str(raised.value)


def test_read_two_files_for_one_day_raises(zone, landing, demo_frame):
    demo_frame.head().to_parquet(landing / f"{DAY}.parquet")
    demo_frame.head().to_csv(landing / f"{DAY}.csv", index=False)
    with pytest.raises(LandingFileError, match="keep one"):
        zone.read(DAY)


@pytest.mark.parametrize("key", ["../etc", "../../etc/passwd", "2026-01-07/../x", "", "2026-13-01"])
def test_read_refuses_a_partition_key_that_is_not_a_day(zone, landing, key):
    (landing.parent / "etc.csv").write_text("a,target\n1,0\n")  # what '../etc' would reach
    with pytest.raises(LandingFileError) as raised:
        zone.read(key)
    assert type(raised.value) is LandingFileError
    assert repr(key) in str(raised.value) and "YYYY-MM-DD" in str(raised.value)


def test_read_good_file_returns_rows_and_fingerprint(zone, landing, demo_frame):
    demo_frame.head(10).to_csv(landing / f"{DAY}.csv", index=False)
    frame, landing_file = zone.read(DAY)
    assert len(frame) == 10 and TARGET in frame.columns
    assert landing_file.fingerprint.startswith("sha256:")
    assert landing_file.location == str(landing / f"{DAY}.csv")


def test_missing_file_error_names_the_files_actually_looked_for(zone, landing):
    # Files of the day under names the zone does not look for: the error names the ones it does.
    (landing / DAY.replace("-", "")).with_suffix(".parquet").write_bytes(b"PAR1")
    (landing / f"{DAY}.json").write_text("{}")
    with pytest.raises(LandingFileMissingError) as raised:
        zone.read(DAY)
    message = str(raised.value)
    assert message == f"no landing file for {DAY}: expected {DAY}.parquet or {DAY}.csv in {landing}"
