"""load_settings: defaults, every environment override, and errors that name the variable."""

import os
from pathlib import Path

import pytest

from ml_platform.errors import ConfigError
from ml_platform.settings import Settings, load_settings


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a known folder: relative paths are taken from the working directory."""
    monkeypatch.chdir(tmp_path)
    return Path(os.getcwd())


DEFAULTS = {
    "env": "local",
    "model_name": "demo_classifier",
    "target_column": "target",
    "feature_columns": None,
    "window_days": 7,
    "partitions_start": "2025-01-01",
    "timezone": "UTC",
}


def test_defaults(cwd):
    settings = load_settings(environ={})
    for field, expected in DEFAULTS.items():
        assert getattr(settings, field) == expected, field
    assert settings.landing_dir == str(cwd / "data" / "landing")
    assert settings.model_store_dir == str(cwd / "data" / "model_store")
    assert settings.asset_storage_dir == str(cwd / "data" / "assets")
    for path in (settings.landing_dir, settings.model_store_dir, settings.asset_storage_dir):
        assert os.path.isabs(path)


def test_blank_values_fall_back_to_defaults(cwd):
    blank = {
        name: "  "
        for name in (
            "ML_PLATFORM_ENV",
            "ML_PLATFORM_LANDING_DIR",
            "ML_PLATFORM_MODEL_STORE_DIR",
            "ML_PLATFORM_ASSET_STORAGE_DIR",
            "ML_PLATFORM_MODEL_NAME",
            "ML_PLATFORM_TARGET_COLUMN",
            "ML_PLATFORM_FEATURE_COLUMNS",
            "ML_PLATFORM_WINDOW_DAYS",
            "ML_PLATFORM_PARTITIONS_START",
            "ML_PLATFORM_TIMEZONE",
        )
    }
    assert load_settings(environ=blank) == load_settings(environ={})


def test_an_explicit_environ_is_used_instead_of_the_process_environment(cwd, monkeypatch):
    monkeypatch.setenv("ML_PLATFORM_WINDOW_DAYS", "3")
    monkeypatch.setenv("ML_PLATFORM_ENV", "staging")  # invalid, but not the environ given
    assert load_settings(environ={}).window_days == 7
    monkeypatch.setenv("ML_PLATFORM_ENV", "prod")
    monkeypatch.setenv("ML_PLATFORM_S3_BUCKET", "models")
    settings = load_settings()
    assert (settings.env, settings.window_days, settings.s3_bucket) == ("prod", 3, "models")


@pytest.mark.parametrize(
    "variable, value, field, expected",
    [
        ("ML_PLATFORM_ENV", "prod", "env", "prod"),
        ("ML_PLATFORM_ENV", " local ", "env", "local"),
        ("ML_PLATFORM_LANDING_DIR", "/srv/landing", "landing_dir", "/srv/landing"),
        ("ML_PLATFORM_MODEL_STORE_DIR", "/srv/models", "model_store_dir", "/srv/models"),
        ("ML_PLATFORM_ASSET_STORAGE_DIR", "/srv/assets", "asset_storage_dir", "/srv/assets"),
        ("ML_PLATFORM_MODEL_NAME", "fraud-model_v2.1", "model_name", "fraud-model_v2.1"),
        ("ML_PLATFORM_TARGET_COLUMN", "label", "target_column", "label"),
        ("ML_PLATFORM_FEATURE_COLUMNS", "age, income ,,city", "feature_columns", ("age", "income", "city")),
        ("ML_PLATFORM_WINDOW_DAYS", "14", "window_days", 14),
        ("ML_PLATFORM_WINDOW_DAYS", " 1 ", "window_days", 1),
        ("ML_PLATFORM_PARTITIONS_START", "2024-06-30", "partitions_start", "2024-06-30"),
        ("ML_PLATFORM_TIMEZONE", "Europe/Paris", "timezone", "Europe/Paris"),
    ],
)
def test_each_variable_overrides_its_setting(cwd, variable, value, field, expected):
    # prod needs its bucket; that is the one other setting allowed to differ.
    extra = {"ML_PLATFORM_S3_BUCKET": "models"} if (variable, value) == ("ML_PLATFORM_ENV", "prod") else {}
    settings = load_settings(environ={variable: value, **extra})
    assert getattr(settings, field) == expected
    # ...and only that setting.
    defaults = load_settings(environ={})
    changed = {name for name in Settings.__dataclass_fields__ if getattr(settings, name) != getattr(defaults, name)}
    assert changed <= {field, *(["s3_bucket"] if extra else [])}


@pytest.mark.parametrize(
    "variable, field",
    [
        ("ML_PLATFORM_LANDING_DIR", "landing_dir"),
        ("ML_PLATFORM_MODEL_STORE_DIR", "model_store_dir"),
        ("ML_PLATFORM_ASSET_STORAGE_DIR", "asset_storage_dir"),
    ],
)
def test_relative_directories_are_made_absolute_from_the_working_directory(cwd, variable, field):
    settings = load_settings(environ={variable: "shared/place"})
    assert getattr(settings, field) == str(cwd / "shared" / "place")


def test_feature_columns_may_be_set_with_a_different_target(cwd):
    settings = load_settings(
        environ={"ML_PLATFORM_TARGET_COLUMN": "label", "ML_PLATFORM_FEATURE_COLUMNS": "target,age"}
    )
    assert settings.target_column == "label"
    assert settings.feature_columns == ("target", "age")


INVALID = [
    ({"ML_PLATFORM_ENV": "staging"}, "ML_PLATFORM_ENV='staging' is not one of local, prod"),
    ({"ML_PLATFORM_ENV": "PROD"}, "ML_PLATFORM_ENV='PROD'"),
    ({"ML_PLATFORM_WINDOW_DAYS": "abc"}, "ML_PLATFORM_WINDOW_DAYS='abc' is not an integer"),
    ({"ML_PLATFORM_WINDOW_DAYS": "7.5"}, "ML_PLATFORM_WINDOW_DAYS='7.5' is not an integer"),
    ({"ML_PLATFORM_WINDOW_DAYS": "0"}, "ML_PLATFORM_WINDOW_DAYS=0 must be >= 1"),
    ({"ML_PLATFORM_WINDOW_DAYS": "-3"}, "ML_PLATFORM_WINDOW_DAYS=-3 must be >= 1"),
    (
        {"ML_PLATFORM_PARTITIONS_START": "2025-13-01"},
        "ML_PLATFORM_PARTITIONS_START='2025-13-01' is not a YYYY-MM-DD date",
    ),
    ({"ML_PLATFORM_PARTITIONS_START": "yesterday"}, "ML_PLATFORM_PARTITIONS_START='yesterday'"),
    ({"ML_PLATFORM_TIMEZONE": "Mars/Base"}, "ML_PLATFORM_TIMEZONE='Mars/Base' is not an IANA time zone"),
    ({"ML_PLATFORM_TIMEZONE": "../../etc/passwd"}, "ML_PLATFORM_TIMEZONE='../../etc/passwd'"),
    ({"ML_PLATFORM_MODEL_NAME": "../x"}, "ML_PLATFORM_MODEL_NAME='../x' must be letters"),
    ({"ML_PLATFORM_MODEL_NAME": "a/b"}, "ML_PLATFORM_MODEL_NAME='a/b'"),
    ({"ML_PLATFORM_MODEL_NAME": ".hidden"}, "ML_PLATFORM_MODEL_NAME='.hidden'"),
    (
        {"ML_PLATFORM_FEATURE_COLUMNS": "age,target,income"},
        "ML_PLATFORM_FEATURE_COLUMNS lists the target column 'target'",
    ),
    (
        {"ML_PLATFORM_FEATURE_COLUMNS": "age, label", "ML_PLATFORM_TARGET_COLUMN": "label"},
        "ML_PLATFORM_FEATURE_COLUMNS lists the target column 'label'",
    ),
]


@pytest.mark.parametrize(
    "environ, message",
    INVALID,
    ids=[",".join(f"{k}={v}" for k, v in environ.items()) for environ, _ in INVALID],
)
def test_invalid_values_raise_config_error_naming_the_variable(cwd, environ, message):
    with pytest.raises(ConfigError) as raised:
        load_settings(environ=environ)
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)  # ConfigError is also a ValueError


@pytest.mark.parametrize("value", ["20250101", "2025-W01-1"])
def test_partitions_start_must_be_written_yyyy_mm_dd(cwd, value):
    with pytest.raises(ConfigError, match="ML_PLATFORM_PARTITIONS_START"):
        load_settings(environ={"ML_PLATFORM_PARTITIONS_START": value})


def test_prod_needs_a_bucket(cwd):
    with pytest.raises(ConfigError, match="ML_PLATFORM_S3_BUCKET"):
        load_settings(environ={"ML_PLATFORM_ENV": "prod"})


@pytest.mark.parametrize(
    "variable, value",
    [("ML_PLATFORM_EXECUTOR", "spark"), ("ML_PLATFORM_RETRY_DELAY_S", "soon"), ("ML_PLATFORM_SENSOR_INTERVAL_S", "0")],
)
def test_more_bad_values_name_their_variable(cwd, variable, value):
    with pytest.raises(ConfigError, match=variable):
        load_settings(environ={variable: value})
