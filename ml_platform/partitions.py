"""Daily partitions and the training-window mapping.

Each pipeline builds its own daily partitions (its time zone and start; ``PipelineRuntime.partitions``);
``daily_partitions`` here, in ML_PLATFORM_TIMEZONE, is the platform default the ``ml-platform``
commands use for "yesterday".
"""

import warnings

import dagster as dg

from ml_platform.settings import load_settings

# Features we rely on knowingly, pinned to Dagster 1.13.27 (docs/design.md): partitioned asset
# checks (preview), single-run backfill policies and clipped window mappings (beta).
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*allow_nonexistent_upstream.*")
# The all-assets job runs one partition per run; single-run ranges are for raw_data on its own.
warnings.filterwarnings("ignore", message=".*materializes assets with varying BackfillPolicies.*")

_settings = load_settings()

# One partition per day of landing data. The newest partition is yesterday: a day is complete
# once it has ended in the configured time zone. (Pipelines: the same, in their own time zone.)
daily_partitions = dg.DailyPartitionsDefinition(start_date=_settings.partitions_start, timezone=_settings.timezone)


def training_window(window_days: int) -> dg.TimeWindowPartitionMapping:
    """Map day D of the training chain to days D-(N-1) .. D of raw_data.

    Days before the first partition are dropped rather than failing, so the first week trains on
    what exists.
    """
    return dg.TimeWindowPartitionMapping(
        start_offset=-(window_days - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
    )
