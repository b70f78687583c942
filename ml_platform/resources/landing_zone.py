"""The landing zone: where one file per day arrives (``YYYY-MM-DD.parquet`` or ``.csv``)."""

from __future__ import annotations

import datetime as dt
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import dagster as dg
import pandas as pd

from ml_platform import constants
from ml_platform.day_work import parse_landing_bytes
from ml_platform.errors import LandingFileError


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


class LandingZone(dg.ConfigurableResource, ABC):
    """Where daily batch files land. Implementations: ``backends/local.py`` (a folder) and ``backends/s3.py``
    (a bucket prefix)."""

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
    def at(self, location: str) -> LandingZone:
        """The landing zone of one pipeline (``landing`` in pipelines.yaml): '.' is this one,
        a relative location is under it, an absolute one replaces it."""

    def local_path(self, landing_file: LandingFile) -> str | None:
        """The file's path when it is a local file (a worker process can then read it itself),
        else None."""
        return None

    def read(self, day: str) -> tuple[pd.DataFrame, LandingFile]:
        """Read and parse one day's file; the returned LandingFile carries the content's sha256."""
        return self.read_file(self.find(day))

    def read_file(self, landing_file: LandingFile) -> tuple[pd.DataFrame, LandingFile]:
        """Read and parse a file that ``find`` returned; the returned LandingFile carries the
        content's sha256."""
        data = self.read_bytes(landing_file)
        landing_file = replace(landing_file, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        return parse_landing_bytes(data, landing_file.location), landing_file
