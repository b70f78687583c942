"""Partition-aware IO managers: parquet for tables, joblib for models and other Python values.

Layout: ``<root>/<asset key path>/<partition key>.<ext>`` (``<asset>.<ext>`` when unpartitioned),
where the root is a local folder or an S3 bucket + prefix. Every manager handles an output that
covers several partitions (a single-run backfill returns a ``{partition_key: value}`` dict) and an
input that spans several partitions (a window of days arrives as a ``{partition_key: value}``
dict; set the input metadata ``partitions_as_dict`` to get a dict even when the window holds one
day). Writes are atomic: temp file + rename locally, one PUT on S3.

A step that writes or reads a range of days in worker processes (``day_work``) asks for local
paths instead of values: ``stored_path`` for an output it writes itself, ``stored_days`` for
partitions it reads itself. ``stored_value`` hands a step its own earlier output;
``stored_partitions`` lists what is stored of an asset.
"""

import os
import typing
from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg
import joblib
import pandas as pd

from ml_platform.errors import MlPlatformError
from ml_platform.retries import retried_when_unavailable
from ml_platform.storage import check_segment

# Input metadata flag: always hand this input over as {partition_key: value}, even for one day.
PARTITIONS_AS_DICT = "partitions_as_dict"
# Input metadata flag: leave out the mapped partitions that were never materialized.
ALLOW_MISSING_PARTITIONS = "allow_missing_partitions"


class StoredFiles(dict):
    """{partition_key: local path} of stored partitions, not loaded (see ``stored_days``)."""


class AssetNotMaterializedError(MlPlatformError, FileNotFoundError):
    """An input was asked for that has never been materialized."""


def _safe_segment(value: str) -> str:
    return check_segment(value, "an asset key's part or a partition key")


def _each(function: Callable[[Any], Any], items: list) -> list:
    """``function`` over ``items``, on a thread per core when there are several: parquet encoding
    and decoding release the GIL, and S3 transfers wait on the network."""
    if len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), max(2, os.cpu_count() or 1))) as pool:
        return list(pool.map(function, items))


def _wants_dict(context: dg.InputContext) -> bool:
    return bool((context.definition_metadata or {}).get(PARTITIONS_AS_DICT))


# -- formats ---------------------------------------------------------------------------------------
class ParquetFormat:
    """pandas DataFrames as parquet."""

    extension: typing.ClassVar[str] = ".parquet"

    @staticmethod
    def dump(obj: Any, handle: typing.BinaryIO) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise MlPlatformError(
                f"the parquet IO manager stores pandas DataFrames, got {type(obj).__name__}:"
                " set io_manager_key='model_io_manager' on that asset"
            )
        obj.to_parquet(handle, index=False)

    @staticmethod
    def load(source: str | typing.BinaryIO) -> Any:
        return pd.read_parquet(source)


class JoblibFormat:
    """Any Python value with joblib (a pickle: load only from storage you trust)."""

    extension: typing.ClassVar[str] = ".joblib"

    @staticmethod
    def dump(obj: Any, handle: typing.BinaryIO) -> None:
        joblib.dump(obj, handle)

    @staticmethod
    def load(source: str | typing.BinaryIO) -> Any:
        return joblib.load(source)


# -- the partition logic, over any storage ---------------------------------------------------------
class PartitionedIOManager(dg.ConfigurableIOManager):
    """Partition handling shared by every backend; backends implement four primitives."""

    extension: typing.ClassVar[str] = ""

    @abstractmethod
    def dump(self, obj: Any, handle: typing.BinaryIO) -> None: ...

    @abstractmethod
    def load(self, source: str | typing.BinaryIO) -> Any: ...

    @abstractmethod
    def _location(self, parts: list[str]) -> str:
        """Where the value with this relative path (no extension) lives."""

    @abstractmethod
    def _write(self, location: str, obj: Any) -> None:
        """Store ``obj`` at ``location`` atomically."""

    @abstractmethod
    def _read(self, location: str) -> Any:
        """Load the value at ``location``."""

    @abstractmethod
    def _exists(self, location: str) -> bool: ...

    def _local_path(self, location: str) -> str | None:
        """``location`` as a local file path, or None when the storage is not a local folder."""
        return None

    @abstractmethod
    def _names(self, parts: list[str]) -> list[str]:
        """The names stored directly under the folder ``parts`` (none when there is no such folder)."""

    def stored_partitions(self, asset_key: dg.AssetKey) -> list[str]:
        """The partition keys stored for ``asset_key``, sorted (for a reader outside a run, such as
        ``ml-platform contract``, that takes what was ingested)."""
        names = self._names([_safe_segment(p) for p in asset_key.path])
        return sorted(
            n.removesuffix(self.extension) for n in names if n.endswith(self.extension) and not n.startswith(".")
        )

    def stored_path(self, asset_key: dg.AssetKey, partition_key: str) -> str | None:
        """The local file path where this manager stores ``asset_key``'s partition, or None when
        its storage is not a local folder. A step that writes the file there itself (atomically)
        returns a MaterializeResult, so that this manager does not write it again."""
        parts = [_safe_segment(p) for p in asset_key.path] + [_safe_segment(partition_key)]
        return self._local_path(self._location(parts))

    def _parts(self, context: dg.InputContext | dg.OutputContext) -> list[str]:
        path = context.asset_key.path if context.has_asset_key else context.get_identifier()
        return [_safe_segment(p) for p in path]

    def _path(self, context: dg.InputContext | dg.OutputContext, partition_key: str | None) -> str:
        parts = self._parts(context)
        if partition_key is not None:
            parts = [*parts, _safe_segment(partition_key)]
        return self._location(parts)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        with retried_when_unavailable(context):
            self._handle_output(context, obj)

    def load_input(self, context: dg.InputContext) -> Any:
        with retried_when_unavailable(context):
            return self._load_input(context)

    def _handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if not context.has_asset_partitions:
            values = {None: obj}
        else:
            keys = list(context.asset_partition_keys)
            if isinstance(obj, dict) and set(obj) == set(keys):
                values = obj
            elif len(keys) == 1:
                values = {keys[0]: obj}
            else:
                raise MlPlatformError(
                    f"{context.asset_key.to_user_string()} covers {len(keys)} partitions in this run;"
                    " return a {partition_key: value} dict with one entry per partition"
                )
        locations = [self._path(context, partition_key) for partition_key in values]
        # A range of days (a single-run backfill) is written on several threads.
        _each(lambda item: self._write(*item), list(zip(locations, values.values())))
        target = locations[0] if len(locations) == 1 else locations[0].rsplit("/", 1)[0]
        context.add_output_metadata({"Stored at": dg.MetadataValue.path(target)})

    def _load_input(self, context: dg.InputContext) -> Any:
        if not context.has_asset_partitions:
            location = self._path(context, None)
            if not self._exists(location):
                raise AssetNotMaterializedError(
                    f"{self._describe(context)} has not been materialized: nothing at {location}"
                )
            return self._read(location)

        keys = list(context.asset_partition_keys)
        allow_missing = bool((context.definition_metadata or {}).get(ALLOW_MISSING_PARTITIONS))
        present = self._present(self._parts(context), self._describe(context), keys, allow_missing, context.log)
        # A window or a range of days is read on several threads.
        loaded = dict(zip(present, _each(self._read, list(present.values()))))
        if _wants_dict(context) or len(keys) != 1:
            return loaded
        return loaded[keys[0]]

    def _present(self, parts: list[str], describe: str, keys: list[str], allow_missing: bool, log) -> dict[str, str]:
        """{partition_key: location} of the stored partitions among ``keys``; a missing one is left
        out with a warning (``allow_missing``) or raises AssetNotMaterializedError."""
        present: dict[str, str] = {}
        for partition_key in keys:
            location = self._location([*parts, _safe_segment(partition_key)])
            if not self._exists(location):
                if allow_missing:
                    log.warning(f"{describe} partition {partition_key} is not materialized; leaving it out")
                    continue
                raise AssetNotMaterializedError(
                    f"{describe} partition {partition_key} has not been materialized: nothing at {location}"
                )
            present[partition_key] = location
        return present

    def stored_days(self, asset_key: dg.AssetKey, partition_keys: list[str]) -> dict[str, Any]:
        """``asset_key``'s stored partitions, for a step that reads them itself (the raw_data checks):
        StoredFiles {partition_key: local path} when they are local files (the step reads them
        itself, a range in worker processes), else {partition_key: value}. A partition never
        materialized raises AssetNotMaterializedError; unreachable storage, StorageUnavailableError."""
        present = self._present(
            [_safe_segment(p) for p in asset_key.path], asset_key.to_user_string(), list(partition_keys), False, None
        )
        paths = {key: self._local_path(location) for key, location in present.items()}
        if all(paths.values()):
            return StoredFiles(paths)
        return dict(zip(present, _each(self._read, list(present.values()))))

    def stored_value(self, asset_key: dg.AssetKey, partition_key: str) -> Any:
        """The value stored for ``asset_key``'s partition, or None when nothing is stored there: a
        step that reuses its own earlier output (a model of the same recipe) reads it here.
        Unreachable storage raises StorageUnavailableError."""
        location = self._location([*(_safe_segment(p) for p in asset_key.path), _safe_segment(partition_key)])
        if not self._exists(location):
            return None
        return self._read(location)

    @staticmethod
    def _describe(context: dg.InputContext) -> str:
        return context.asset_key.to_user_string() if context.has_asset_key else "input"
