"""The landing zone: where one file per day arrives (``YYYY-MM-DD.parquet`` or ``.csv``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import dagster as dg
import pandas as pd
import pyarrow as pa
from pydantic import Field

from ml_platform import constants
from ml_platform.errors import (
    ConfigError,
    CorruptLandingFileError,
    EmptyLandingFileError,
    LandingFileError,
    LandingFileMissingError,
)


@dataclass(frozen=True)
class LandingFile:
    """One day's file: where it is, and what identifies its content."""

    day: str
    location: str
    size: int
    modified: float
    sha256: str | None = None
    etag: str | None = None

    @property
    def fingerprint(self) -> str:
        """Changes whenever the content changes: the content hash once read; otherwise the
        ETag + size (S3) or size + mtime (local files), which listing gives for free."""
        if self.sha256:
            return f"sha256:{self.sha256}"
        if self.etag:
            return f"etag:{self.etag}-size:{self.size}"
        return f"size:{self.size}-mtime:{self.modified:.6f}"


def check_day(day: str) -> str:
    # Partition keys become file names: only a real date may reach the filesystem.
    try:
        return dt.datetime.strptime(day, "%Y-%m-%d").date().isoformat()
    except (TypeError, ValueError):
        raise LandingFileError(f"{day!r} is not a YYYY-MM-DD day") from None


def landing_day(name: str) -> str | None:
    """The day a landing file name stands for, or None if the name is not a landing file."""
    for ext in constants.LANDING_EXTENSIONS:
        if name.endswith(ext):
            try:
                return dt.date.fromisoformat(name[: -len(ext)]).isoformat()
            except ValueError:
                return None
    return None


def parse_landing_bytes(data: bytes, location: str) -> pd.DataFrame:
    """Parse one landing file's bytes by its extension; raise a typed error that names the file."""
    if not data:
        raise EmptyLandingFileError(f"landing file {location} is empty (0 bytes)")
    try:
        if location.endswith(".parquet"):
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_csv(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError, pd.errors.ParserError) as exc:
        # pandas raises EmptyDataError (a ValueError) for a CSV with no header either.
        if isinstance(exc, pd.errors.EmptyDataError):
            raise EmptyLandingFileError(f"landing file {location} has no header and no rows") from exc
        raise CorruptLandingFileError(f"landing file {location} cannot be read: {exc}") from exc
    return frame


class LandingZone(dg.ConfigurableResource, ABC):
    """Where daily batch files land. Implementations: local folder (S3 comes later)."""

    @abstractmethod
    def find(self, day: str) -> LandingFile:
        """The file for a day (cheap: no read); LandingFileMissingError if there is none."""

    @abstractmethod
    def read_bytes(self, landing_file: LandingFile) -> bytes:
        """The file's content."""

    @abstractmethod
    def list_files(self) -> list[LandingFile]:
        """Every day's file (cheap: names and stat, no reads), oldest day first.

        Names that are not ``YYYY-MM-DD.parquet`` / ``.csv`` (temp files, notes) are ignored.
        """

    @abstractmethod
    def at(self, location: str) -> "LandingZone":
        """The landing zone of one pipeline (``landing`` in pipelines.yaml): '.' is this one,
        a relative location is under it, an absolute one replaces it."""

    def read(self, day: str) -> tuple[pd.DataFrame, LandingFile]:
        """Read and parse one day's file; the returned LandingFile carries the content's sha256."""
        landing_file = self.find(day)
        data = self.read_bytes(landing_file)
        landing_file = replace(landing_file, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        return parse_landing_bytes(data, landing_file.location), landing_file


class LocalLandingZone(LandingZone):
    """A local folder of ``YYYY-MM-DD.parquet`` / ``.csv`` files."""

    root: str = Field(description="Folder that holds one file per day.")

    def at(self, location: str) -> "LocalLandingZone":
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
                f"two landing files for {day} in {self.root} ({', '.join(map(os.path.basename, present))}):"
                " keep one"
            )
        path = present[0]
        stat = os.stat(path)
        return LandingFile(day=day, location=path, size=stat.st_size, modified=stat.st_mtime)

    def read_bytes(self, landing_file: LandingFile) -> bytes:
        with open(landing_file.location, "rb") as handle:
            return handle.read()

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
                files.append(
                    LandingFile(day=day, location=entry.path, size=stat.st_size, modified=stat.st_mtime)
                )
        return sorted(files, key=lambda f: (f.day, f.location))


def __getattr__(name: str):
    # The S3 landing zone lives with the other S3 backends, imported only when asked for.
    if name == "S3LandingZone":
        from ml_platform import s3_backends

        return s3_backends.S3LandingZone
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
