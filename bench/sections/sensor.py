"""Section "sensor": ticks of the landing sensor over 1,000 tiny files (bench/sensor_tick.py, a
fresh process that loads the code location as a code server does): tick 1 with an empty cursor,
tick 2 with its cursor (nothing changed); the tick's time and the memory it adds."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from projects import Workspace, dispose
from scaffold import BENCH, PYTHON, Row, log, verdict
from timing import RunFailed, median, repeat, run_measured

from ml_platform import constants

SENSOR_PARTITIONS_START = "2020-01-01"  # so that 1,000 consecutive days are all partitions


def write_files(landing: Path, files: int) -> None:
    """``files`` copies of one tiny parquet file, one a day from SENSOR_PARTITIONS_START."""
    import pandas as pd

    landing.mkdir()
    tiny = pd.DataFrame(
        {
            "feature_00": [0.1, 0.2, 0.3],
            "segment": ["north", "south", "east"],
            constants.DEFAULT_TARGET_COLUMN: [0, 1, 0],
        }
    )
    tiny.to_parquet(landing / "tiny.parquet", index=False)
    data = (landing / "tiny.parquet").read_bytes()
    (landing / "tiny.parquet").unlink()
    start = dt.date.fromisoformat(SENSOR_PARTITIONS_START)
    for n in range(files):
        (landing / f"{(start + dt.timedelta(days=n)).isoformat()}.parquet").write_bytes(data)


def bench_sensor(ws: Workspace, files: int, reps: int, keep: bool) -> dict:
    landing = ws.root / "landing-sensor"
    write_files(landing, files)

    def measure(rep: int) -> dict:
        root, env = ws.project(f"sensor-{rep}", landing, ML_PLATFORM_PARTITIONS_START=SENSOR_PARTITIONS_START)
        root.mkdir(exist_ok=True)
        command = [PYTHON, str(BENCH / "sensor_tick.py"), "--landing", str(landing)]
        measured = run_measured([[*command, "--result", str(root / "result.json")]], env, root / "output.log")
        record = {**measured, **json.loads((root / "result.json").read_text())}
        first = record["ticks"][0]
        if first["ingest_requests"] != files:
            raise RunFailed(f"sensor tick 1: {first['ingest_requests']} ingest requests for {files} files")
        log(
            f"sensor rep {rep}/{reps}: tick 1 {first['seconds']:.3f} s, +{first['delta_mb']:.1f} MB"
            f" ({first['run_requests']} run requests); tick 2 {record['ticks'][1]['seconds']:.3f} s;"
            f" process peak RSS {record['max_rss_mb']:.0f} MB"
        )
        dispose(root, keep)
        return record

    runs = repeat(measure, reps)
    dispose(landing, keep)
    summary = {
        f"tick{n}_{k}": median([r["ticks"][n - 1][k] for r in runs])
        for n in (1, 2)
        for k in ("seconds", "delta_mb", "peak_mb")
    }
    summary["process_max_rss_mb"] = median([r["max_rss_mb"] for r in runs])
    summary["rss_before_ticks_mb"] = median([r["rss_before_ticks_mb"] for r in runs])
    summary["peak_exact"] = all(t["peak_exact"] for r in runs for t in r["ticks"])
    return {"files": files, "runs": runs, "summary": summary}


def table_rows(sensor: dict | None) -> list[Row]:
    if not sensor:
        return [("landing sensor tick", "not run", *verdict("sensor_seconds", None))]
    s, n = sensor["summary"], sensor["files"]
    return [
        (
            f"landing sensor tick over {n:,} new files: time",
            f"{s['tick1_seconds']:.3f} s",
            *verdict("sensor_seconds", s["tick1_seconds"]),
        ),
        (
            f"landing sensor tick over {n:,} new files: memory of the tick",
            f"+{s['tick1_delta_mb']:.1f} MB",
            *verdict("sensor_mb", s["tick1_delta_mb"]),
        ),
        (
            "landing sensor: process peak RSS (code location loaded + ticks)",
            f"{s['process_max_rss_mb']:.0f} MB",
            "-",
            "",
        ),
        (f"landing sensor tick over {n:,} unchanged files: time", f"{s['tick2_seconds']:.3f} s", "-", ""),
    ]
