"""The daily run with a champion in production, with or without the evaluation's extras.

Runs in a fresh process on the instance of ``$DAGSTER_HOME`` and the folders of the
``ML_PLATFORM_*`` variables: `raw_data` of every day in one run, the day before ``--day`` trained
and deployed (the champion; not timed), then the daily run of ``--day`` (`key:training_data+`):
the model, the do-nothing baseline, the bootstrap intervals, the paired bootstrap against the
champion and the slices (those the pipelines file declares, and the worst slices of every
categorical feature). ``--plain`` switches the baseline, the intervals, the paired bootstrap and the
worst slices off in this process (a patch of the bench: the platform has no such switch; its
pipelines file declares no slices), which is the daily run as it was before them. Writes phase
timings as JSON to ``--out``.
"""

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402

import dagster as dg  # noqa: E402

from ml_platform.assets import evaluation  # noqa: E402
from ml_platform.definitions import defs  # noqa: E402
from ml_platform.model_metrics import Baseline  # noqa: E402


def switch_off_extras() -> None:
    evaluation.baseline_scores = lambda pipeline, train_split, test_split: Baseline("off", {})
    evaluation.intervals = lambda *args, **kwargs: {}
    evaluation.paired_differences = lambda *args, **kwargs: {}
    evaluation.worst_slices = lambda *args, **kwargs: []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", required=True, help="first landing day")
    parser.add_argument("--champion-day", required=True, help="the day the champion is trained for")
    parser.add_argument("--day", required=True, help="the daily run's day (the last landing day)")
    parser.add_argument("--out", required=True, help="JSON file for the phase timings")
    parser.add_argument("--plain", action="store_true", help="without baseline, intervals, paired bootstrap")
    args = parser.parse_args()
    if args.plain:
        switch_off_extras()
    phases = {"imports": time.perf_counter() - _T0}
    instance = dg.DagsterInstance.get()
    assets, resources = [*defs.assets, *defs.asset_checks], defs.resources
    t = time.perf_counter()
    dg.materialize(
        assets,
        selection="key:demo/raw_data",
        instance=instance,
        resources=resources,
        tags={"dagster/asset_partition_range_start": args.first, "dagster/asset_partition_range_end": args.day},
    )
    phases["ingest_run"] = time.perf_counter() - t
    deployed = {}
    for day in (args.champion_day, args.day):
        started = time.perf_counter()
        # The daily run may hold its model back (the gate): it ran all the same, and is timed.
        result = dg.materialize(
            assets,
            selection="key:demo/training_data+",
            instance=instance,
            resources=resources,
            partition_key=day,
            raise_on_error=False,
        )
        phases["champion_run" if day == args.champion_day else "daily_run"] = time.perf_counter() - started
        deployed[day] = result.success
    with open(args.out, "w") as handle:
        json.dump({"phases": phases, "deployed": deployed}, handle)


if __name__ == "__main__":
    main()
