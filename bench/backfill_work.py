"""One variant of the 30-day backfill, in its own process; prints its timings as JSON.

Platform variants (real definitions, the instance of ``$DAGSTER_HOME``, ``ML_PLATFORM_*`` folders):

- ``range``:  `raw_data` for every day in ONE run (its single-run backfill policy: the step reads
  the days on a thread per core), as `dagster asset materialize --partition-range` does;
- ``single``: one `raw_data` run per day, one after another (what the landing sensor requests).

Plain reference (no Dagster): the same per-day ingest work (read the file, sha256 it, parse the
parquet, validate it with the data-contract rules of ``ml_platform.quality.rules`` as the raw_data checks
do, write it back out as parquet) by

- ``plain-seq``:  a loop;
- ``plain-pool``: a 2-process ``multiprocessing`` pool.

Dagster's floor (``floor``): a range run of an asset that does no work (bench/floor_defs.py) and
records one materialization per day, as ``range`` does.

``work_s`` is the time of the work alone, after the imports (they are the same in every
variant); the caller also measures the whole process.
"""

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402

import pandas as pd  # noqa: E402

from ml_platform import constants  # noqa: E402
from ml_platform.quality.rules import evaluate  # noqa: E402 (pandas-only rules, no Dagster)

_LANDING = _OUT = ""


def _plain_ingest(day: str) -> int:
    with open(os.path.join(_LANDING, f"{day}.parquet"), "rb") as handle:
        data = handle.read()
    hashlib.sha256(data).hexdigest()
    frame = pd.read_parquet(io.BytesIO(data))
    results = evaluate(frame, constants.DEFAULT_TARGET_COLUMN, None, constants.DEFAULT_MAX_NULL_RATIO)
    if not all(r.passed for r in results):
        raise SystemExit(f"{day}: {[r.message for r in results if not r.passed]}")
    frame.to_parquet(os.path.join(_OUT, f"{day}.parquet"), index=False)
    return len(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["range", "single", "plain-seq", "plain-pool", "floor"])
    parser.add_argument("--landing", required=True)
    parser.add_argument("--days", required=True, help="comma-separated days, oldest first")
    parser.add_argument("--out", required=True, help="folder for the plain variants' output")
    parser.add_argument("--result", required=True, help="JSON file for the timings")
    args = parser.parse_args()
    days = args.days.split(",")
    result: dict = {"mode": args.mode, "days": len(days), "cpus": sorted(os.sched_getaffinity(0))}
    if args.mode.startswith("plain"):
        result.update(_plain(args.mode, args.landing, args.out, days))
    elif args.mode == "floor":
        result.update(_floor(days))
    else:
        result.update(_platform(args.mode, days))
    with open(args.result, "w") as handle:
        json.dump(result, handle)


def _plain(mode: str, landing: str, out: str, days: list[str]) -> dict:
    """The per-day work without Dagster: in a loop, or in a 2-process pool (forked: the workers
    read the folders from this module's globals)."""
    global _LANDING, _OUT
    _LANDING, _OUT = landing, out
    os.makedirs(_OUT, exist_ok=True)
    result = {"imports_s": time.perf_counter() - _T0}
    started = time.perf_counter()
    if mode == "plain-seq":
        rows = [_plain_ingest(day) for day in days]
    else:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            rows = pool.map(_plain_ingest, days, chunksize=1)
    result["work_s"] = time.perf_counter() - started
    result["rows"] = sum(rows)
    return result


def _floor(days: list[str]) -> dict:
    """Dagster's floor: one range run of bench/floor_defs.py's no-work asset."""
    import dagster as dg
    import floor_defs  # bench/, beside this file

    instance = dg.DagsterInstance.get()
    result = {"imports_s": time.perf_counter() - _T0}
    started = time.perf_counter()
    run = dg.materialize(
        [floor_defs.raw_data_range],
        instance=instance,
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )
    result["work_s"] = time.perf_counter() - started
    result["runs"] = 1
    result["materialized_days"] = len({e.partition for e in run.get_asset_materialization_events()})
    return result


def _platform(mode: str, days: list[str]) -> dict:
    """`raw_data` of ml_platform's definitions: one range run (``range``), or a run per day."""
    import dagster as dg

    from ml_platform.definitions import defs

    instance = dg.DagsterInstance.get()
    assets = [*defs.assets, *defs.asset_checks]
    result = {"imports_s": time.perf_counter() - _T0}
    started = time.perf_counter()
    if mode == "range":
        range_tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
        runs = [
            dg.materialize(
                assets, selection="key:demo/raw_data", instance=instance, resources=defs.resources, tags=range_tags
            )
        ]
    else:
        runs = [
            dg.materialize(
                assets, selection="key:demo/raw_data", instance=instance, resources=defs.resources, partition_key=day
            )
            for day in days
        ]
    result["work_s"] = time.perf_counter() - started
    result["runs"] = len(runs)
    result["materialized_days"] = len(
        {event.partition for run in runs for event in run.get_asset_materialization_events()}
    )
    return result


if __name__ == "__main__":
    main()
