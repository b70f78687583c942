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
