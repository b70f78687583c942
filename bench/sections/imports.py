"""Section "imports": what a fresh process pays before any work (bench/import_cost.py), layer by
layer, and the interpreter's start and exit."""

from __future__ import annotations

import json
import shutil
import subprocess

from projects import Workspace
from scaffold import BENCH, PYTHON, ROOT, log
from timing import medians, repeat, timed


def bench_imports(ws: Workspace, reps: int) -> dict:
    def measure(rep: int) -> dict:
        root, env = ws.project(f"imports-{rep}", ws.root / "no-landing")
        root.mkdir(exist_ok=True)
        out = root / "imports.json"
        with open(out, "wb") as handle:
            command = [PYTHON, str(BENCH / "import_cost.py")]
            wall, _ = timed(lambda: subprocess.run(command, env=env, cwd=ROOT, stdout=handle, check=True))
        record = {"process_wall_s": wall, **json.loads(out.read_text())}
        shutil.rmtree(root, ignore_errors=True)
        return record

    runs = repeat(measure, reps)
    summary = medians(runs, [k for k in runs[0] if k != "rep"])
    log("imports: " + ", ".join(f"{k} {v:.2f} s" for k, v in summary.items()))
    return {"runs": runs, "summary": summary}


def time_lines(imports: dict | None) -> list[str]:
    summary = (imports or {}).get("summary")
    if not summary:
        return []
    return [
        "imports in a fresh process (median): pandas+pyarrow+sklearn"
        f" {summary['pandas_pyarrow_sklearn']:.2f} s; + dagster {summary['dagster']:.2f} s;"
        f" + rest of ml_platform.definitions {summary['ml_platform_definitions_rest']:.2f} s;"
        f" (prod mode only: + dagster_aws.s3 {summary['dagster_aws_s3']:.2f} s); whole process"
        f" {summary['process_wall_s']:.2f} s, of which"
        f" interpreter start + exit {summary['process_wall_s'] - summary['total_in_process']:.2f} s"
    ]
