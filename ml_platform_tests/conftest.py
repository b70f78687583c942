"""Shared fixtures: temp folders, a temp Dagster instance, seeded landing data, resources."""

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Set before ml_platform is imported (settings shape the definitions): retries back off from
# 0.2 s instead of 2 s so that the retry tests do not sleep for nothing.
os.environ.setdefault("ML_PLATFORM_RETRY_DELAY_S", "0.2")

import dagster as dg  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ml_platform.definitions import pipelines as BUILT_PIPELINES
from ml_platform.demo import breast_cancer_frame, demo_days, seed_landing
from ml_platform.io_managers import JoblibIOManager, ParquetIOManager
from ml_platform.resources import LocalLandingZone, LocalModelStore
from ml_platform_tests.servers import smtp, webhook  # noqa: F401 (fixtures, used by name)

# Fixed days inside the partitions definition, so results do not depend on today's date.
END_DAY = "2026-01-07"
WINDOW = 7
DAYS = demo_days(END_DAY, WINDOW)
MODEL_NAME = "demo_classifier"
TARGET = "target"

# The demo pipeline of pipelines.yaml (its first entry), as the code location builds it.
DEMO = next(b for b in BUILT_PIPELINES if b.pipeline.name == "demo")
PREFIX = DEMO.pipeline.name
ALL_DEFS = DEMO.definitions
CHAIN = "key:demo/training_data+"
BIN = Path(sys.executable).parent  # the venv's console scripts: dagster, ml-platform


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


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """check name -> passed, for every check evaluated in a run."""
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }


def check_descriptions(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """check name -> the description its result gave."""
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.description or ""
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }


def project_vars(root: Path) -> dict[str, str]:
    """Environment of the project whose folders (and DAGSTER_HOME) are under ``root``."""
    return {
        **os.environ,
        "DAGSTER_HOME": str(root / "dagster_home"),
        "ML_PLATFORM_LANDING_DIR": str(root / "landing"),
        "ML_PLATFORM_MODEL_STORE_DIR": str(root / "model_store"),
        "ML_PLATFORM_ASSET_STORAGE_DIR": str(root / "assets"),
    }


def project_env(root: Path) -> dict[str, str]:
    """Environment of a project on temp folders under ``root``, with its own migrated DAGSTER_HOME
    (created once, before anything can run concurrently)."""
    home = root / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = project_vars(root)
    subprocess.run(
        [str(BIN / "dagster"), "instance", "migrate"], env=env, check=True, capture_output=True, timeout=120
    )
    return env


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    """The assets a run materialized; the demo pipeline's by name (``raw_data``), others by key."""
    return {
        e.asset_key.to_user_string().removeprefix(f"{PREFIX}/")
        for e in result.get_asset_materialization_events()
    }


def step_errors(result: dg.ExecuteInProcessResult) -> str:
    """All step failure messages of a run, joined (for asserting on error text)."""
    texts = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            while error is not None:
                texts.append(error.message)
                error = error.cause
    return "\n".join(texts)


def service_unavailable(what: str, how_to_install: str) -> None:
    """A test needs a real server that cannot be started: fail under CI, skip (saying how to get
    it) on a developer's machine."""
    message = f"{what} is not available: {how_to_install}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def yesterday() -> str:
    return (dt.date.today() - dt.timedelta(days=1)).isoformat()


os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


# Real servers, shared by name across test modules (imported last: they use the helpers above).
from ml_platform_tests.s3_server import s3_server  # noqa: E402, F401
