"""Platform settings from the environment, with defaults for the embedded local mode.

Settings shape the definitions (paths, model name, the training window), so they are read when the
code location loads. Secrets never live here: resources take them through ``dg.EnvVar``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ml_platform import clock, constants
from ml_platform.errors import ConfigError

ENVIRONMENTS = ("local", "prod")
EXECUTORS = ("in_process", "multiprocess", "celery")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Settings:
    """Everything the platform reads from the environment (see docs/configuration.md)."""

    env: str
    landing_dir: str
    model_store_dir: str
    asset_storage_dir: str
    model_name: str
    target_column: str
    feature_columns: tuple[str, ...] | None
    window_days: int
    partitions_start: str
    timezone: str
    storage_retries: int
    retry_delay_s: float
    max_runtime_s: int
    sensor_interval_s: int
    executor: str
    s3_bucket: str | None
    s3_prefix: str
    s3_endpoint_url: str | None
    aws_region: str | None


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


def _one_of(environ: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = environ.get(name, "").strip() or default
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _model_name(environ: Mapping[str, str]) -> str:
    model_name = environ.get("ML_PLATFORM_MODEL_NAME", "").strip() or constants.DEFAULT_MODEL_NAME
    if not _MODEL_NAME.match(model_name):
        raise ConfigError(
            f"ML_PLATFORM_MODEL_NAME={model_name!r} must be letters, digits, '_', '-' or '.',"
            " starting with a letter or digit"
        )
    return model_name


def _calendar(environ: Mapping[str, str]) -> tuple[str, str]:
    """(the first daily partition, the time zone of the days)."""
    start = environ.get("ML_PLATFORM_PARTITIONS_START", "").strip() or constants.DEFAULT_PARTITIONS_START
    try:
        dt.datetime.strptime(start, "%Y-%m-%d")
    except ValueError:
        raise ConfigError(f"ML_PLATFORM_PARTITIONS_START={start!r} is not a YYYY-MM-DD date") from None
    timezone = environ.get("ML_PLATFORM_TIMEZONE", "").strip() or constants.DEFAULT_TIMEZONE
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"ML_PLATFORM_TIMEZONE={timezone!r} is not an IANA time zone") from None
    return start, timezone


def _path(environ: Mapping[str, str], name: str, default: str) -> str:
    # Relative paths are taken from the directory the command runs in (the project root).
    return os.path.abspath(environ.get(name, "").strip() or default)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings; raise ConfigError naming the variable that is wrong."""
    environ = os.environ if environ is None else environ
    env = _one_of(environ, "ML_PLATFORM_ENV", ENVIRONMENTS, "local")
    executor = _one_of(environ, "ML_PLATFORM_EXECUTOR", EXECUTORS, "in_process")
    model_name = _model_name(environ)
    start, timezone = _calendar(environ)
    raw_features = environ.get("ML_PLATFORM_FEATURE_COLUMNS", "").strip()
    features = tuple(c.strip() for c in raw_features.split(",") if c.strip()) or None
    target = environ.get("ML_PLATFORM_TARGET_COLUMN", "").strip() or constants.DEFAULT_TARGET_COLUMN
    if features and target in features:
        raise ConfigError(f"ML_PLATFORM_FEATURE_COLUMNS lists the target column {target!r}")
    s3_bucket = environ.get("ML_PLATFORM_S3_BUCKET", "").strip() or None
    if env == "prod" and not s3_bucket:
        raise ConfigError("ML_PLATFORM_ENV=prod needs ML_PLATFORM_S3_BUCKET (the bucket for data and models)")
    clock.fixed_time(environ)  # a malformed ML_PLATFORM_CLOCK fails here, at load, not at its first use

    return Settings(
        env=env,
        landing_dir=_path(environ, "ML_PLATFORM_LANDING_DIR", constants.DEFAULT_LANDING_DIR),
        model_store_dir=_path(environ, "ML_PLATFORM_MODEL_STORE_DIR", constants.DEFAULT_MODEL_STORE_DIR),
        asset_storage_dir=_path(environ, "ML_PLATFORM_ASSET_STORAGE_DIR", constants.DEFAULT_ASSET_STORAGE_DIR),
        model_name=model_name,
        target_column=target,
        feature_columns=features,
        window_days=_int(environ, "ML_PLATFORM_WINDOW_DAYS", constants.DEFAULT_WINDOW_DAYS, 1),
        partitions_start=start,
        timezone=timezone,
        storage_retries=_int(environ, "ML_PLATFORM_STORAGE_RETRIES", constants.STORAGE_RETRIES, 0),
        retry_delay_s=_float(environ, "ML_PLATFORM_RETRY_DELAY_S", constants.STORAGE_RETRY_DELAY_S, 0.0),
        max_runtime_s=_int(environ, "ML_PLATFORM_MAX_RUNTIME_S", constants.DEFAULT_MAX_RUNTIME_S, 1),
        sensor_interval_s=_int(environ, "ML_PLATFORM_SENSOR_INTERVAL_S", constants.LANDING_SENSOR_INTERVAL_S, 1),
        executor=executor,
        s3_bucket=s3_bucket,
        s3_prefix=environ.get("ML_PLATFORM_S3_PREFIX", "").strip().strip("/") or "ml_platform",
        s3_endpoint_url=environ.get("ML_PLATFORM_S3_ENDPOINT_URL", "").strip() or None,
        aws_region=(environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "").strip() or None,
    )
