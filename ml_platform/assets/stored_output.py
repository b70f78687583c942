"""A step's own earlier output, read back for a reuse (a model or a score of the same recipe)."""

from typing import Any

import dagster as dg

from ml_platform.errors import StorageUnavailableError
from ml_platform.retries import retried_when_unavailable


def own_stored_output(context: dg.AssetExecutionContext) -> tuple[Any, str | None]:
    """What this step's IO manager stored for its partition: (value, None), or (None, why it cannot
    be read). Unreachable storage is a retry of the step (ml_platform.retries), whatever its stage's
    retry policy."""
    io_manager = getattr(context.resources, context.assets_def.get_io_manager_key_for_asset_key(context.asset_key))
    with retried_when_unavailable(context):
        try:
            return io_manager.stored_value(context.asset_key, str(context.partition_key)), None
        except StorageUnavailableError:
            raise
        except Exception as exc:  # noqa: BLE001 - unpickling a damaged file raises anything
            return None, f"cannot be read ({type(exc).__name__}: {exc})"
