"""Partition-aware IO managers: parquet for tables, joblib for models and other Python values.

Layout: ``<base_dir>/<asset key path>/<partition key>.<ext>`` (``<asset>.<ext>`` when unpartitioned).
Both managers handle an output that covers several partitions (a single-run backfill returns a
``{partition_key: value}`` dict) and an input that spans several partitions (a window of days
arrives as a ``{partition_key: value}`` dict; set the input metadata ``partitions_as_dict`` to get a dict even
when the window holds one day). Writes are atomic.
"""

from __future__ import annotations

import os
import typing
from abc import abstractmethod
from typing import Any

import dagster as dg
import joblib
import pandas as pd
from pydantic import Field

from ml_platform.errors import MlPlatformError
from ml_platform.storage import atomic_write


class AssetNotMaterializedError(MlPlatformError, FileNotFoundError):
    """An input was asked for that has never been materialized."""


def _safe_segment(value: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\\" in value:
        raise MlPlatformError(f"{value!r} cannot be used as a storage path segment")
    return value


# Input metadata flag: always hand this input over as {partition_key: value}, even for one day.
PARTITIONS_AS_DICT = "partitions_as_dict"


def _wants_dict(context: dg.InputContext) -> bool:
    return bool((context.definition_metadata or {}).get(PARTITIONS_AS_DICT))


class LocalPartitionedIOManager(dg.ConfigurableIOManager):
    """Shared logic; subclasses choose the file format."""

    base_dir: str = Field(description="Folder under which asset values are stored.")

    extension: typing.ClassVar[str] = ""

    @abstractmethod
    def dump(self, obj: Any, handle: typing.BinaryIO) -> None:
        """Serialize ``obj`` into an open binary file."""

    @abstractmethod
    def load(self, path: str) -> Any:
        """Deserialize the file at ``path``."""

    def _folder(self, context: dg.InputContext | dg.OutputContext) -> str:
        if context.has_asset_key:
            parts = [_safe_segment(p) for p in context.asset_key.path]
        else:
            parts = [_safe_segment(p) for p in context.get_identifier()]
        return os.path.join(self.base_dir, *parts)

    def _path(self, context: dg.InputContext | dg.OutputContext, partition_key: str | None) -> str:
        folder = self._folder(context)
        if partition_key is None:
            return folder + self.extension
        return os.path.join(folder, _safe_segment(partition_key) + self.extension)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
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
        paths = []
        for partition_key, value in values.items():
            path = self._path(context, partition_key)
            atomic_write(path, lambda handle, value=value: self.dump(value, handle))
            paths.append(path)
        target = paths[0] if len(paths) == 1 else os.path.dirname(paths[0])
        context.add_output_metadata({"Stored at": dg.MetadataValue.path(target)})

    def load_input(self, context: dg.InputContext) -> Any:
        if not context.has_asset_partitions:
            path = self._path(context, None)
            if not os.path.exists(path):
                raise AssetNotMaterializedError(
                    f"{self._describe(context)} has not been materialized: no file at {path}"
                )
            return self.load(path)

        keys = list(context.asset_partition_keys)
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions"))
        loaded: dict[str, Any] = {}
        for partition_key in keys:
            path = self._path(context, partition_key)
            if not os.path.exists(path):
                if allow_missing:
                    context.log.warning(
                        f"{self._describe(context)} partition {partition_key} is not materialized;"
                        " leaving it out"
                    )
                    continue
                raise AssetNotMaterializedError(
                    f"{self._describe(context)} partition {partition_key} has not been materialized:"
                    f" no file at {path}"
                )
            loaded[partition_key] = self.load(path)
        if _wants_dict(context) or len(keys) != 1:
            return loaded
        return loaded[keys[0]]

    @staticmethod
    def _describe(context: dg.InputContext) -> str:
        return context.asset_key.to_user_string() if context.has_asset_key else "input"


class ParquetIOManager(LocalPartitionedIOManager):
    """pandas DataFrames as parquet files (the default IO manager)."""

    extension: typing.ClassVar[str] = ".parquet"

    def dump(self, obj: Any, handle: typing.BinaryIO) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise MlPlatformError(
                f"ParquetIOManager stores pandas DataFrames, got {type(obj).__name__}:"
                " set io_manager_key='model_io_manager' on that asset"
            )
        obj.to_parquet(handle, index=False)

    def load(self, path: str) -> Any:
        return pd.read_parquet(path)


class JoblibIOManager(LocalPartitionedIOManager):
    """Models and other Python values with joblib (a pickle: load only from storage you trust)."""

    extension: typing.ClassVar[str] = ".joblib"

    def dump(self, obj: Any, handle: typing.BinaryIO) -> None:
        joblib.dump(obj, handle)

    def load(self, path: str) -> Any:
        return joblib.load(path)
