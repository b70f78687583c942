"""The local backends (the default, ML_PLATFORM_ENV=local): the landing zone, the model store and
the IO managers on local folders. They implement the contracts of ``ml_platform.resources``."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from typing import Any

from pydantic import Field

from ml_platform import constants
from ml_platform.backends.base import Backends
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
from ml_platform.storage import atomic_write, atomic_write_bytes


class LocalLandingZone(LandingZone):
    """A local folder of ``YYYY-MM-DD.parquet`` / ``.csv`` files."""

    root: str = Field(description="Folder that holds one file per day.")

    def at(self, location: str) -> LocalLandingZone:
        if location in ("", "."):
            return self
        if location.startswith("s3://"):
            raise ConfigError(f"landing {location!r} is on S3: set ML_PLATFORM_ENV=prod to read from S3")
        return self.model_copy(update={"root": os.path.join(self.root, location)})

    def _candidates(self, day: str) -> list[str]:
        day = check_day(day)
        return [os.path.join(self.root, day + ext) for ext in constants.LANDING_EXTENSIONS]

    def find(self, day: str) -> LandingFile:
        day = check_day(day)
        present = [path for path in self._candidates(day) if os.path.isfile(path)]
        if not present:
            raise LandingFileMissingError(
                f"no landing file for {day}: expected {day}.parquet or {day}.csv in {self.root}"
            )
        if len(present) > 1:
            raise LandingFileError(
                f"two landing files for {day} in {self.root} ({', '.join(map(os.path.basename, present))}): keep one"
            )
        path = present[0]
        stat = os.stat(path)
        return LandingFile(day=day, location=path, size=stat.st_size, modified=stat.st_mtime)

    def read_bytes(self, landing_file: LandingFile) -> bytes:
        with open(landing_file.location, "rb") as handle:
            return handle.read()

    def local_path(self, landing_file: LandingFile) -> str | None:
        # A worker reads the file itself only where reading it is a plain file read: a subclass
        # that reads otherwise (a proxy, a test's flaky zone) is asked for the bytes.
        return landing_file.location if type(self).read_bytes is LocalLandingZone.read_bytes else None

    def list_files(self) -> list[LandingFile]:
        if not os.path.isdir(self.root):
            return []
        files = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                day = landing_day(entry.name)
                if day is None or not entry.is_file():
                    continue
                stat = entry.stat()
                files.append(LandingFile(day=day, location=entry.path, size=stat.st_size, modified=stat.st_mtime))
        return sorted(files, key=lambda f: (f.day, f.location))


class LocalModelStore(ModelStore):
    """A model store in a local folder (the default)."""

    root: str = Field(description="Folder that holds the store.")

    def _path(self, key: str) -> str:
        if key == "":
            return self.root
        parts = key.split("/")
        for part in parts:
            check_segment(part, "store key segment")
        return os.path.join(self.root, *parts)

    def write_bytes(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self._path(key), data)

    def read_bytes(self, key: str) -> bytes:
        with open(self._path(key), "rb") as handle:
            return handle.read()

    def swap_bytes(self, key: str, data: bytes, expected: str | None) -> None:
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # An exclusive lock (per host) makes read-compare-write one step for every process.
        lock_path = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.lock")
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                try:
                    with open(path, "rb") as handle:
                        actual = hashlib.sha256(handle.read()).hexdigest()
                except FileNotFoundError:
                    actual = None
                if actual != expected:
                    raise PointerConflictError(f"{path} changed meanwhile")
                atomic_write_bytes(path, data)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    def list_children(self, prefix: str) -> list[str]:
        path = self._path(prefix)
        if not os.path.isdir(path):
            return []
        return sorted(name for name in os.listdir(path) if not name.startswith("."))

    def delete_tree(self, prefix: str) -> None:
        if not prefix:
            raise ModelStoreError("delete_tree needs a folder under the store's root, not the root")
        if os.path.isdir(self._path(prefix)):
            shutil.rmtree(self._path(prefix))

    def uri(self, key: str) -> str:
        return self._path(key)


class LocalPartitionedIOManager(PartitionedIOManager):
    """Values as files under a local folder."""

    base_dir: str = Field(description="Folder under which asset values are stored.")

    def _location(self, parts: list[str]) -> str:
        return os.path.join(self.base_dir, *parts) + self.extension

    def _write(self, location: str, obj: Any) -> None:
        atomic_write(location, lambda handle: self.dump(obj, handle))

    def _read(self, location: str) -> Any:
        return self.load(location)

    def _exists(self, location: str) -> bool:
        return os.path.exists(location)

    def _local_path(self, location: str) -> str | None:
        return location

    def _names(self, parts: list[str]) -> list[str]:
        try:
            return os.listdir(os.path.join(self.base_dir, *parts))
        except (FileNotFoundError, NotADirectoryError):
            return []


class ParquetIOManager(ParquetFormat, LocalPartitionedIOManager):
    """DataFrames as local parquet files (the default IO manager)."""


class JoblibIOManager(JoblibFormat, LocalPartitionedIOManager):
    """Models and other values as local joblib files."""


def local_backends(settings) -> Backends:
    """Every backend on the local folders of the settings."""
    return Backends(
        landing_zone=LocalLandingZone(root=settings.landing_dir),
        model_store=LocalModelStore(root=settings.model_store_dir),
        io_manager=ParquetIOManager(base_dir=settings.asset_storage_dir),
        model_io_manager=JoblibIOManager(base_dir=settings.asset_storage_dir),
    )
