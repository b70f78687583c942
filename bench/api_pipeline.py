"""The pipeline through ml_platform's Python API: `dg.materialize` on the real definitions.

Runs in a fresh process (so imports count, as they do for the plain script and the CLI) on the
instance of ``$DAGSTER_HOME`` and the folders of the ``ML_PLATFORM_*`` variables: first
`raw_data` for the window's days in one run (its single-run backfill policy), then
`key:training_data+` for the last day. Writes phase timings as JSON to ``--out``.
"""

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402

import dagster as dg  # noqa: E402

from ml_platform.definitions import defs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", required=True, help="first day of the window")
    parser.add_argument("--last", required=True, help="last day of the window (the training day)")
    parser.add_argument("--out", required=True, help="JSON file for the phase timings")
    args = parser.parse_args()
    phases = {"imports": time.perf_counter() - _T0}

    t = time.perf_counter()
    instance = dg.DagsterInstance.get()
    assets = [*defs.assets, *defs.asset_checks]
    resources = defs.resources
    phases["instance"] = time.perf_counter() - t

    t = time.perf_counter()
    ingest = dg.materialize(
        assets,
        selection="key:demo/raw_data",
        instance=instance,
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": args.first,
            "dagster/asset_partition_range_end": args.last,
        },
    )
    phases["ingest_run"] = time.perf_counter() - t

    t = time.perf_counter()
    train = dg.materialize(
        assets,
        selection="key:demo/training_data+",
        instance=instance,
        resources=resources,
        partition_key=args.last,
    )
    phases["train_run"] = time.perf_counter() - t

    with open(args.out, "w") as handle:
        json.dump({"phases": phases, "run_ids": [ingest.run_id, train.run_id]}, handle)


if __name__ == "__main__":
    main()
