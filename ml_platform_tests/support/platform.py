"""One isolated platform per test (folders, resources, a Dagster instance), its fixtures, and the
environment of a project on temp folders for the CLI tests."""

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.backends.local import (
    JoblibIOManager,
    LocalLandingZone,
    LocalModelStore,
    ParquetIOManager,
)
from ml_platform.demo import breast_cancer_frame, seed_landing
from ml_platform_tests.support.constants import (
    BIN,
    CHAIN,
    DAYS,
    END_DAY,
    ROOT,
    TARGET,
    TEST_PIPELINES_FILE,
    WINDOW,
)
from ml_platform_tests.support.pipelines import ALL_DEFS


@dataclass
class Platform:
    """One isolated platform: folders, resources and a Dagster instance."""

    root: Path
    landing: Path
    store_dir: Path
    assets_dir: Path
    instance: dg.DagsterInstance

    @property
    def store(self) -> LocalModelStore:
        return LocalModelStore(root=str(self.store_dir))

    @property
    def resources(self) -> dict:
        return {
            "landing_zone": LocalLandingZone(root=str(self.landing)),
            "model_store": self.store,
            "io_manager": ParquetIOManager(base_dir=str(self.assets_dir)),
            "model_io_manager": JoblibIOManager(base_dir=str(self.assets_dir)),
        }

    def write_day(self, day: str, frame: pd.DataFrame, fmt: str = "parquet") -> Path:
        path = self.landing / f"{day}.{fmt}"
        self.landing.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        return path

    def seed(self, end_day: str = END_DAY, days: int = WINDOW, **kwargs) -> list[str]:
        return seed_landing(str(self.landing), end_day=end_day, days=days, target=TARGET, **kwargs)

    def materialize(
        self, selection, partition_key: str, run_config: dict | None = None, tags: dict | None = None
    ) -> dg.ExecuteInProcessResult:
        """Run like a launched run would: `selection` is a selection string or asset keys."""
        if isinstance(selection, list):
            selection = dg.AssetSelection.assets(*selection)
        return dg.materialize(
            ALL_DEFS,
            selection=selection,
            partition_key=partition_key,
            instance=self.instance,
            resources=self.resources,
            run_config=run_config or {},
            tags=tags,
            raise_on_error=False,
        )

    def ingest(self, days: list[str] = DAYS) -> list[dg.ExecuteInProcessResult]:
        """raw_data one run per day, as the landing sensor does."""
        return [self.materialize("key:demo/raw_data", day) for day in days]

    def ingest_range(self, days: list[str] = DAYS) -> dg.ExecuteInProcessResult:
        """raw_data for consecutive days in ONE run (its single-run backfill policy)."""
        return dg.materialize(
            ALL_DEFS,
            selection="key:demo/raw_data",
            instance=self.instance,
            resources=self.resources,
            tags={
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            },
            raise_on_error=False,
        )

    def train(self, day: str = END_DAY, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
        return self.materialize(CHAIN, day, run_config)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def platform(tmp_path: Path, instance: dg.DagsterInstance) -> Platform:
    return Platform(
        root=tmp_path,
        landing=tmp_path / "landing",
        store_dir=tmp_path / "model_store",
        assets_dir=tmp_path / "assets",
        instance=instance,
    )


@pytest.fixture
def seeded(platform: Platform) -> Platform:
    platform.seed()
    return platform


@pytest.fixture(scope="session")
def demo_frame() -> pd.DataFrame:
    return breast_cancer_frame(TARGET)


def project_vars(root: Path) -> dict[str, str]:
    """Environment of the project whose folders (and DAGSTER_HOME) are under ``root``."""
    return {
        **os.environ,
        "DAGSTER_HOME": str(root / "dagster_home"),
        "ML_PLATFORM_LANDING_DIR": str(root / "landing"),
        "ML_PLATFORM_MODEL_STORE_DIR": str(root / "model_store"),
        "ML_PLATFORM_ASSET_STORAGE_DIR": str(root / "assets"),
        "ML_PLATFORM_PIPELINES": os.environ.get("ML_PLATFORM_PIPELINES", str(TEST_PIPELINES_FILE)),
    }


def project_env(root: Path) -> dict[str, str]:
    """Environment of a project on temp folders under ``root``, with its own migrated DAGSTER_HOME
    (created once, before anything can run concurrently)."""
    home = root / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = project_vars(root)
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=env, check=True, capture_output=True, timeout=120)
    return env


def cli_json(env: dict[str, str], *args: str) -> dict | list:
    """``ml-platform ARGS`` (a command with ``--json``) in a project's environment, parsed."""
    shown = subprocess.run(
        [str(BIN / "ml-platform"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def production_json(env: dict[str, str], model: str) -> dict:
    """``ml-platform production --json --model MODEL`` in a project's environment, parsed."""
    return cli_json(env, "production", "--json", "--model", model)


def service_unavailable(what: str, how_to_install: str) -> None:
    """A test needs a real server that cannot be started: fail under CI, skip (saying how to get
    it) on a developer's machine."""
    message = f"{what} is not available: {how_to_install}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def yesterday() -> str:
    return (dt.date.today() - dt.timedelta(days=1)).isoformat()
