"""A platform with a good model in production, built once per module and copied into each test:
what every bad input must leave untouched."""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform_tests.support.constants import DAYS, MODEL_NAME
from ml_platform_tests.support.platform import Platform
from ml_platform_tests.support.results import step_errors

DAY = DAYS[-1]
NEW_DAY = "2026-01-08"  # the day after the seeded window: no landing file yet
NUMERIC_COLUMN = "mean radius"


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
