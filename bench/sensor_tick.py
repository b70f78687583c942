"""Ticks of `landing_zone_sensor` over a landing folder, in a fresh process; JSON to ``--result``.

The process loads the code location (``ml_platform.definitions``) as a code server does, then
evaluates the sensor through ``dg.build_sensor_context`` on the instance of ``$DAGSTER_HOME``:

- tick 1: an empty cursor, so every file in the folder is new (one run request per file);
- tick 2: the cursor of tick 1, nothing changed (the steady state: a stat per file, then one
  query of the instance for ingest runs in flight before the retraining request).

Memory of a tick: the peak RSS during the tick minus the RSS just before it. The kernel's peak
(VmHWM) is reset before each tick by writing 5 to /proc/self/clear_refs; where that is refused,
the figure is the RSS after the tick minus before (``peak_exact`` false).
"""

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402

import dagster as dg  # noqa: E402

from ml_platform.backends.local import LocalLandingZone  # noqa: E402
from ml_platform.definitions import defs  # noqa: E402


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    result: dict = {"imports_s": time.perf_counter() - _T0}

    sensor = defs.resolve_sensor_def("demo_landing_zone_sensor")
    instance = dg.DagsterInstance.get()
    landing = LocalLandingZone(root=args.landing)
    result["rss_before_ticks_mb"] = _status_kb("VmRSS") / 1024

    cursor = None
    ticks = []
    for number in (1, 2):
        exact = _reset_peak()
        rss_before = _status_kb("VmRSS")
        started = time.perf_counter()
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing_zone": landing})
        outcome = sensor(context)
        seconds = time.perf_counter() - started
        rss_after = _status_kb("VmRSS")
        peak = _status_kb("VmHWM") if exact else rss_after
        requests = list(outcome.run_requests or []) if isinstance(outcome, dg.SensorResult) else []
        cursor = outcome.cursor if isinstance(outcome, dg.SensorResult) else cursor
        ticks.append(
            {
                "tick": number,
                "seconds": seconds,
                "rss_before_mb": rss_before / 1024,
                "peak_mb": peak / 1024,
                "delta_mb": (peak - rss_before) / 1024,
                "peak_exact": exact,
                "run_requests": len(requests),
                "ingest_requests": sum(1 for r in requests if r.run_key.startswith("ingest:")),
            }
        )
    result["ticks"] = ticks
    with open(args.result, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
