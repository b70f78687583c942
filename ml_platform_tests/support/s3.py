"""A platform in prod mode (ML_PLATFORM_ENV=prod) on the test's own prefix of the S3 test server."""

import io
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.backends.environment import backends_for
from ml_platform.backends.s3 import S3ModelStore
from ml_platform.backends.s3_bucket import S3Bucket
from ml_platform.definitions import resources_for
from ml_platform.settings import load_settings
from ml_platform_tests.support.platform import Platform
from ml_platform_tests.support.s3_server import S3Server


class S3Platform(Platform):
    """The same platform, with ML_PLATFORM_ENV=prod resources on the test's own S3 prefix."""

    server: S3Server
    prefix: str

    @property
    def settings(self):
        return load_settings(self.server.env(self.prefix))

    @property
    def resources(self) -> dict:
        return resources_for(self.settings)

    @property
    def store(self) -> S3ModelStore:
        return backends_for(self.settings).model_store

    @property
    def bucket(self) -> S3Bucket:
        return S3Bucket(self.server.client(), self.server.bucket, self.prefix)

    def write_day(self, day: str, frame: pd.DataFrame, fmt: str = "parquet") -> str:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False) if fmt == "parquet" else frame.to_csv(buffer, index=False)
        self.bucket.put(f"landing/{day}.{fmt}", buffer.getvalue())
        return self.bucket.uri(f"landing/{day}.{fmt}")

    def seed(self, **kwargs) -> list[str]:
        local = super().seed(**kwargs)  # into the local temp folder, then up to S3
        for path in map(Path, local):
            self.bucket.put(f"landing/{path.name}", path.read_bytes())
        return local


def s3_platform_on(server: S3Server, root: Path, instance: dg.DagsterInstance, cls=None) -> S3Platform:
    """A prod platform (``cls``, default S3Platform) on ``server`` under a fresh prefix."""
    platform = (cls or S3Platform)(
        root=root,
        landing=root / "landing",
        store_dir=root / "model_store",
        assets_dir=root / "assets",
        instance=instance,
    )
    platform.server, platform.prefix = server, server.fresh_prefix()
    return platform


@pytest.fixture
def s3_platform(s3_server: S3Server, tmp_path: Path, instance: dg.DagsterInstance) -> S3Platform:
    return s3_platform_on(s3_server, tmp_path, instance)
