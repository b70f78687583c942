"""The S3 backends (ML_PLATFORM_ENV=prod): landing zone, IO managers and model store on a bucket.

They implement the contracts of ``ml_platform.resources`` (``LandingZone``,
``PartitionedIOManager``, ``ModelStore``), over ``backends/s3_bucket.py``'s ``S3Bucket``.
They live apart so that local mode never imports boto3 and dagster-aws: that costs about half a
second at the start of every process (each `dagster` command, each run, each code server).
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

from dagster_aws.s3 import S3Resource
from pydantic import Field

from ml_platform import constants
from ml_platform.backends.base import Backends
from ml_platform.backends.s3_bucket import PreconditionFailed, S3Bucket, client_for
from ml_platform.errors import (
    ConfigError,
    LandingFileError,
    LandingFileMissingError,
    ModelStoreError,
    PointerConflictError,
)
from ml_platform.resources.io_managers import (
    JoblibFormat,
    ParquetFormat,
    PartitionedIOManager,
)
from ml_platform.resources.landing_zone import (
    LandingFile,
    LandingZone,
    check_day,
    landing_day,
)
from ml_platform.resources.model_store import ModelStore, check_segment


class S3LandingZone(LandingZone):
    """``YYYY-MM-DD.parquet`` / ``.csv`` objects under a prefix of an S3 bucket."""

    s3: S3Resource = Field(description="dagster-aws S3 resource (endpoint, region, credentials chain).")
    bucket: str = Field(description="Bucket of the landing zone.")
    prefix: str = Field(default="landing", description="Key prefix under which files land.")

    def _bucket(self) -> S3Bucket:
        return S3Bucket(client_for(self.s3), self.bucket, self.prefix)

    def at(self, location: str) -> S3LandingZone:
        if location in ("", "."):
            return self
        if location.startswith("s3://"):
            bucket, _, prefix = location.removeprefix("s3://").partition("/")
            return self.model_copy(update={"bucket": bucket, "prefix": prefix.strip("/")})
        if os.path.isabs(location):
            raise ConfigError(f"landing {location!r} is a local folder, but ML_PLATFORM_ENV=prod reads from S3")
        return self.model_copy(update={"prefix": f"{self.prefix.strip('/')}/{location.strip('/')}".strip("/")})

    def find(self, day: str) -> LandingFile:
        day = check_day(day)
        bucket = self._bucket()
        present = [o for o in (bucket.head(day + ext) for ext in constants.LANDING_EXTENSIONS) if o]
        if not present:
            raise LandingFileMissingError(
                f"no landing file for {day}: expected {day}.parquet or {day}.csv in {bucket.uri('')}"
            )
        if len(present) > 1:
            raise LandingFileError(
                f"two landing files for {day} in {bucket.uri('')} ({', '.join(o.key for o in present)}): keep one"
            )
        obj = present[0]
        return LandingFile(day=day, location=bucket.uri(obj.key), size=obj.size, modified=obj.modified, etag=obj.etag)

    def read_bytes(self, landing_file: LandingFile) -> bytes:
        bucket = self._bucket()
        return bucket.get(landing_file.location.removeprefix(bucket.uri("")))

    def list_files(self) -> list[LandingFile]:
        bucket = self._bucket()
        files = []
        for obj in bucket.objects(""):
            day = landing_day(obj.key) if "/" not in obj.key else None
            if day is not None:
                files.append(
                    LandingFile(
                        day=day, location=bucket.uri(obj.key), size=obj.size, modified=obj.modified, etag=obj.etag
                    )
                )
        return sorted(files, key=lambda f: (f.day, f.location))


class S3ModelStore(ModelStore):
    """A model store in an S3 bucket (any S3-compatible server through ``endpoint_url``).

    Each object is written with one PUT, which S3 makes atomic; the order of writes (artifact,
    metadata, pointer) gives the same guarantees as the local store.
    """

    s3: S3Resource = Field(description="dagster-aws S3 resource (endpoint, region, credentials chain).")
    bucket: str = Field(description="Bucket that holds the store.")
    prefix: str = Field(default="model_store", description="Key prefix of the store in the bucket.")

    def _bucket(self) -> S3Bucket:
        return S3Bucket(client_for(self.s3), self.bucket, self.prefix)

    @staticmethod
    def _key(key: str) -> str:
        if key == "":
            return key  # the store root (list_children)
        for part in key.split("/"):
            check_segment(part, "store key segment")
        return key

    def write_bytes(self, key: str, data: bytes) -> None:
        self._bucket().put(self._key(key), data)

    def read_bytes(self, key: str) -> bytes:
        return self._bucket().get(self._key(key))

    def swap_bytes(self, key: str, data: bytes, expected: str | None) -> None:
        # S3 conditional writes: If-Match the ETag of the state compared, or If-None-Match: *.
        bucket = self._bucket()
        relative = self._key(key)
        head = bucket.head(relative)
        if expected is None:
            if head is not None:
                raise PointerConflictError(f"{bucket.uri(relative)} was created meanwhile")
            condition = {"IfNoneMatch": "*"}
        else:
            if head is None or hashlib.sha256(bucket.get(relative)).hexdigest() != expected:
                raise PointerConflictError(f"{bucket.uri(relative)} changed meanwhile")
            condition = {"IfMatch": f'"{head.etag}"'}
        try:
            bucket.put(relative, data, **condition)
        except PreconditionFailed:
            raise PointerConflictError(f"{bucket.uri(relative)} changed meanwhile") from None

    def exists(self, key: str) -> bool:
        return self._bucket().head(self._key(key)) is not None

    def list_children(self, prefix: str) -> list[str]:
        return [n for n in self._bucket().children(self._key(prefix)) if not n.startswith(".")]

    def delete_tree(self, prefix: str) -> None:
        if not prefix:
            raise ModelStoreError("delete_tree needs a folder under the store's root, not the root")
        bucket = self._bucket()
        folder = self._key(prefix).rstrip("/")
        # The folder's own key last: S3 has none (deleting it is a no-op), S3-compatible servers
        # with real directories (SeaweedFS) list an emptied folder until it is deleted.
        bucket.delete([item.key for item in bucket.objects(folder)] + [f"{folder}/"])

    def uri(self, key: str) -> str:
        return self._bucket().uri(key)


def s3_resource(settings) -> S3Resource:
    """The S3 resource of the platform settings (endpoint and region; credentials from the chain)."""
    return S3Resource(endpoint_url=settings.s3_endpoint_url, region_name=settings.aws_region)


class S3PartitionedIOManager(PartitionedIOManager):
    """Values as objects under a prefix of an S3 bucket."""

    s3: S3Resource = Field(description="dagster-aws S3 resource (endpoint, region, credentials chain).")
    bucket: str = Field(description="Bucket that holds asset values.")
    prefix: str = Field(default="assets", description="Key prefix of asset values in the bucket.")

    def _bucket(self) -> S3Bucket:
        return S3Bucket(client_for(self.s3), self.bucket, self.prefix)

    def _location(self, parts: list[str]) -> str:
        return self._bucket().uri("/".join(parts) + self.extension)

    def _relative(self, location: str) -> str:
        return location.removeprefix(self._bucket().uri(""))

    def _write(self, location: str, obj: Any) -> None:
        buffer = io.BytesIO()
        self.dump(obj, buffer)
        self._bucket().put(self._relative(location), buffer.getvalue())

    def _read(self, location: str) -> Any:
        return self.load(io.BytesIO(self._bucket().get(self._relative(location))))

    def _exists(self, location: str) -> bool:
        return self._bucket().head(self._relative(location)) is not None

    def _names(self, parts: list[str]) -> list[str]:
        return self._bucket().children("/".join(parts))


class S3ParquetIOManager(ParquetFormat, S3PartitionedIOManager):
    """DataFrames as parquet objects on S3."""


class S3JoblibIOManager(JoblibFormat, S3PartitionedIOManager):
    """Models and other values as joblib objects on S3."""


def s3_backends(settings) -> Backends:
    """Every backend in the settings' bucket, each under its own prefix."""
    s3 = s3_resource(settings)
    bucket, prefix = settings.s3_bucket, settings.s3_prefix
    return Backends(
        landing_zone=S3LandingZone(s3=s3, bucket=bucket, prefix=f"{prefix}/landing"),
        model_store=S3ModelStore(s3=s3, bucket=bucket, prefix=f"{prefix}/model_store"),
        io_manager=S3ParquetIOManager(s3=s3, bucket=bucket, prefix=f"{prefix}/assets"),
        model_io_manager=S3JoblibIOManager(s3=s3, bucket=bucket, prefix=f"{prefix}/assets"),
    )
