"""What the commands share: the settings, the pipelines file, the model store of the environment."""

from __future__ import annotations

import argparse
import sys

from ml_platform.errors import MlPlatformError


def platform_settings():
    from ml_platform.settings import load_settings

    return load_settings()


def newest_day() -> str:
    from ml_platform.partitions import daily_partitions

    return daily_partitions.get_last_partition_key()


def platform_pipelines(settings):
    from ml_platform.loading import load_pipelines

    return load_pipelines(settings)


def store_of(args: argparse.Namespace):
    from ml_platform.backends.environment import model_store_of

    settings = platform_settings()
    store = model_store_of(settings, args.store_dir)
    return store, args.model or settings.model_name


def add_store_dir(parser) -> None:
    parser.add_argument(
        "--store-dir",
        help="a local model store folder (default: the store of ML_PLATFORM_ENV: "
        "ML_PLATFORM_MODEL_STORE_DIR, or the S3 bucket in prod)",
    )


def pipelines_if_readable(settings, without: str) -> list:
    """The pipelines (for their serving or drift settings), or none when the file cannot be read,
    saying what that means (``without``): a command on named models (``--model``) needs only the
    store."""
    try:
        return platform_pipelines(settings)
    except MlPlatformError as exc:
        print(f"note: the pipelines file was not read ({exc}): {without}", file=sys.stderr, flush=True)
        return []


def from_instance(read, without: str, say_unset: bool = True):
    """``read(instance)`` on the Dagster instance of DAGSTER_HOME, or None, saying on stderr why not
    and what that means (``without``): no DAGSTER_HOME (said when ``say_unset``), or an instance
    that cannot be read (its first line only: Dagster's config errors run over many lines)."""
    import os

    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        if say_unset:
            print(f"note: DAGSTER_HOME is not set: {without}", file=sys.stderr)
        return None
    try:
        with dg.DagsterInstance.get() as instance:
            return read(instance)
    except Exception as exc:  # noqa: BLE001 - the command goes on without it, and the note says why
        said = (str(exc).strip().splitlines() or [""])[0]
        print(
            f"note: {without}: the instance of DAGSTER_HOME cannot be read ({type(exc).__name__}: {said})",
            file=sys.stderr,
        )
        return None
