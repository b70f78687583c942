"""Dagster's own floor: the pipeline's shape with no work in it (make bench, "floor" variant).

Five daily-partitioned assets in a chain (raw_data -> training_data -> splits -> trained_model ->
deployed_model, as many steps as the real pipeline's assets), each returning 0 into an
in-memory IO manager, run by the in-process executor, with the same imports as the plain script
and the same ``gc.freeze()`` as ``ml_platform.definitions``. `dagster asset materialize` on this
module costs what Dagster itself costs for such a run on this instance: interpreter, imports, CLI,
code location, SQLite instance, run and step events, exit. Whatever the real pipeline takes
beyond this floor plus the plain script's work is ml_platform's. ``raw_data_range`` is the same
for the 30-day backfill: one run over a range of days that records a materialization per day.
"""

import gc

import dagster as dg
import joblib  # noqa: F401  (the plain script's imports, so that the floor includes them too)
import pandas  # noqa: F401
import sklearn.compose
import sklearn.ensemble
import sklearn.metrics
import sklearn.model_selection
import sklearn.preprocessing  # noqa: F401

days = dg.DailyPartitionsDefinition(start_date="2020-01-01", end_offset=1)


@dg.asset(partitions_def=days)
def raw_data():
    return 0


@dg.asset(partitions_def=days)
def training_data(raw_data):
    return 0


@dg.asset(partitions_def=days)
def splits(training_data):
    return 0


@dg.asset(partitions_def=days)
def trained_model(splits):
    return 0


@dg.asset(partitions_def=days)
def deployed_model(trained_model):
    return 0


@dg.asset(partitions_def=days, backfill_policy=dg.BackfillPolicy.single_run())
def raw_data_range(context: dg.AssetExecutionContext) -> None:
    """The backfill's floor: a range of days in one run, one materialization per day, no work."""
    context.log.info(f"{len(context.partition_keys)} days, no work")


defs = dg.Definitions(
    assets=[raw_data, training_data, splits, trained_model, deployed_model, raw_data_range],
    resources={"io_manager": dg.mem_io_manager},
    executor=dg.in_process_executor,
)

gc.freeze()
