"""Bad input: each gives a clear error naming the file, column or key, the run fails visibly, and the
production model in the store is left exactly as it was."""

import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform.errors import (
    CorruptLandingFileError,
    EmptyLandingFileError,
    LandingFileError,
    LandingFileMissingError,
)
from ml_platform.resources.landing_zone import LocalLandingZone
from ml_platform_tests.conftest import (
    ALL_DEFS,
    DAYS,
    MODEL_NAME,
    TARGET,
    Platform,
    check_descriptions,
    check_results,
    materialized,
    step_errors,
)

DAY = DAYS[-1]
NEW_DAY = "2026-01-08"  # the day after the seeded window: no landing file yet
NUMERIC_COLUMN = "mean radius"
DOWNSTREAM = {"training_data", "trained_model", "model_metrics", "deployed_model"}


# -- a good production model, deployed once per module and copied into each test ----------------


@pytest.fixture(scope="module")
def good_template(tmp_path_factory) -> Path:
    """Seeded landing files, ingested raw_data and a good model in production (built once)."""
    root = tmp_path_factory.mktemp("good_platform")
    with dg.instance_for_test() as instance:
        platform = Platform(
            root=root,
            landing=root / "landing",
            store_dir=root / "model_store",
            assets_dir=root / "assets",
            instance=instance,
        )
        platform.seed()
        ingest = platform.ingest_range(DAYS)
        assert ingest.success, step_errors(ingest)
        trained = platform.train()
        assert trained.success, step_errors(trained)
        assert platform.store.production(MODEL_NAME) is not None
    return root


@pytest.fixture
def deployed(good_template: Path, platform: Platform) -> Platform:
    """This test's own copy of the good platform (fresh Dagster instance, copied folders)."""
    for name in ("landing", "model_store", "assets"):
        shutil.copytree(good_template / name, platform.root / name)
    return platform


def store_state(platform: Platform) -> tuple[str, bytes, list[str]]:
    """What must not change: production version, the pointer's bytes, every stored version."""
    store = platform.store
    return (
        store.production(MODEL_NAME).version,
        (platform.store_dir / MODEL_NAME / "production.json").read_bytes(),
        [v.version for v in store.list_versions(MODEL_NAME)],
    )


def error_classes(result: dg.ExecuteInProcessResult) -> list[str]:
    """Class names of every step failure and its causes."""
    names = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            while error is not None:
                names.append(error.cls_name)
                error = error.cause
    return names


def landing_path(platform: Platform, day: str, ext: str) -> Path:
    return platform.landing / f"{day}.{ext}"


def day_frame(platform: Platform, day: str = DAY) -> pd.DataFrame:
    return pd.read_parquet(landing_path(platform, day, "parquet"))


def replace_landing(platform: Platform, day: str, ext: str, data: bytes) -> Path:
    """Make ``data`` the only landing file of ``day``."""
    for other in ("parquet", "csv"):
        landing_path(platform, day, other).unlink(missing_ok=True)
    path = landing_path(platform, day, ext)
    path.write_bytes(data)
    return path


def assert_read_failure(result, before, platform, error_class: str, *fragments: str) -> None:
    """raw_data could not read its file: the run fails, nothing downstream runs, store untouched."""
    assert not result.success
    assert error_class in error_classes(result)
    message = step_errors(result)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert not materialized(result)
    assert store_state(platform) == before


def assert_check_failure(result, before, platform, check_name: str, *fragments: str) -> None:
    """raw_data was read but breaks the contract: the check fails, the run fails, store untouched."""
    assert not result.success
    assert check_results(result)[check_name] is False
    assert check_name in step_errors(result)
    description = check_descriptions(result)[check_name]
    for fragment in fragments:
        assert fragment in description, (fragment, description)
    assert not materialized(result) & DOWNSTREAM
    assert store_state(platform) == before


# -- bad landing files, in the graph -------------------------------------------------------------


def test_missing_landing_file_names_day_and_folder(deployed):
    before = store_state(deployed)
    result = deployed.materialize("*", NEW_DAY)
    assert_read_failure(
        result, before, deployed, "LandingFileMissingError",
        f"no landing file for {NEW_DAY}", f"{NEW_DAY}.parquet", f"{NEW_DAY}.csv", str(deployed.landing),
    )


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_zero_byte_file_names_the_file(deployed, ext):
    before = store_state(deployed)
    path = replace_landing(deployed, DAY, ext, b"")
    result = deployed.materialize("*", DAY)
    assert_read_failure(result, before, deployed, "EmptyLandingFileError", str(path), "0 bytes")


def test_csv_with_header_only_fails_not_empty(deployed):
    before = store_state(deployed)
    header = ",".join(day_frame(deployed).columns) + "\n"
    replace_landing(deployed, DAY, "csv", header.encode())
    result = deployed.materialize("*", DAY)
    assert_check_failure(result, before, deployed, "not_empty", "no rows")
    assert "raw_data" in materialized(result)


def test_missing_target_column_fails_naming_target(deployed):
    before = store_state(deployed)
    deployed.write_day(DAY, day_frame(deployed).drop(columns=[TARGET]))
    result = deployed.materialize("*", DAY)
    assert_check_failure(result, before, deployed, "target_column_present", repr(TARGET), "missing")


def _random_bytes(good: bytes) -> bytes:
    return np.random.default_rng(7).bytes(4096)


def _truncated(good: bytes) -> bytes:
    return good[: len(good) // 2]


def _bad_footer(good: bytes) -> bytes:
    return good[:-12] + b"\x00" * 8 + good[-4:]  # magic bytes intact, footer length garbage


@pytest.mark.parametrize("corrupt", [_random_bytes, _truncated, _bad_footer])
def test_corrupt_parquet_names_the_file(deployed, corrupt):
    before = store_state(deployed)
    good = landing_path(deployed, DAY, "parquet").read_bytes()
    path = replace_landing(deployed, DAY, "parquet", corrupt(good))
    result = deployed.materialize("*", DAY)
    assert_read_failure(result, before, deployed, "CorruptLandingFileError", str(path), "cannot be read")


def test_semicolon_csv_parses_as_one_column_and_fails_naming_target(deployed):
    before = store_state(deployed)
    frame = day_frame(deployed)
    replace_landing(deployed, DAY, "csv", frame.to_csv(sep=";", index=False).encode())
    result = deployed.materialize("*", DAY)
    assert_check_failure(result, before, deployed, "target_column_present", repr(TARGET), "missing")
    # The message lists the one column it found, so the ';' is visible to the reader.
    assert ";".join(frame.columns[:2]) in check_descriptions(result)["target_column_present"]


def test_string_garbage_in_numeric_column_fails_naming_column(deployed):
    before = store_state(deployed)
    frame = day_frame(deployed)
    frame[NUMERIC_COLUMN] = frame[NUMERIC_COLUMN].astype(str)
    frame.loc[5, NUMERIC_COLUMN] = "abc"
    replace_landing(deployed, DAY, "csv", frame.to_csv(index=False).encode())
    result = deployed.materialize("*", DAY)
    assert_check_failure(result, before, deployed, "feature_columns_valid", repr(NUMERIC_COLUMN), "abc")


def test_two_files_for_one_day_names_both(deployed):
    before = store_state(deployed)
    deployed.write_day(DAY, day_frame(deployed), "csv")  # next to the existing parquet
    result = deployed.materialize("*", DAY)
    assert_read_failure(
        result, before, deployed, "LandingFileError",
        f"two landing files for {DAY}", f"{DAY}.parquet", f"{DAY}.csv", "keep one",
    )


# -- bad run config ------------------------------------------------------------------------------


def test_unknown_config_key_is_rejected_before_the_run(deployed):
    before = store_state(deployed)
    with pytest.raises(dg.DagsterInvalidConfigError, match="n_trees"):
        deployed.train(run_config={"ops": {"trained_model": {"config": {"n_trees": 5}}}})
    assert deployed.instance.get_runs_count() == 0
    assert store_state(deployed) == before


def test_unknown_config_key_raises_with_raise_on_error(deployed):
    before = store_state(deployed)
    with pytest.raises(dg.DagsterInvalidConfigError) as raised:
        dg.materialize(
            ALL_DEFS,
            selection="key:training_data+",
            partition_key=DAY,
            instance=deployed.instance,
            resources=deployed.resources,
            run_config={"ops": {"trained_model": {"config": {"n_trees": 5}}}},
            raise_on_error=True,
        )
    assert "n_trees" in str(raised.value) and "trained_model" in str(raised.value)
    assert store_state(deployed) == before


OUT_OF_RANGE = [
    pytest.param("trained_model", "n_estimators", -1, id="negative-n_estimators"),
    pytest.param("trained_model", "max_depth", 0, id="zero-max_depth"),
    pytest.param("model_metrics_accuracy_above_threshold", "min_accuracy", 1.5, id="min_accuracy-1.5"),
    pytest.param("model_metrics_accuracy_above_threshold", "min_accuracy", -0.1, id="min_accuracy-neg"),
]


@pytest.mark.parametrize(("op", "key", "value"), OUT_OF_RANGE)
def test_out_of_range_config_fails_the_run_naming_the_key(deployed, op, key, value):
    before = store_state(deployed)
    result = deployed.train(run_config={"ops": {op: {"config": {key: value}}}})
    assert not result.success
    message = step_errors(result)
    assert key in message and f'op "{op}"' in message
    assert "deployed_model" not in materialized(result)
    assert "accuracy_above_threshold" not in check_results(result)
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


def test_missing_file_error_names_the_files_actually_looked_for(zone):
    with pytest.raises(LandingFileError) as raised:
        zone.read("20260107")
    assert "20260107.parquet" not in str(raised.value)
