"""`make bench`: ml_platform against the plain scikit-learn script, on this machine, in one run.

Measures (see bench/README.md):

- the pipeline (ingest the 7 window days, then train / evaluate / gate / deploy for the last day)
  on synthetic data (make_classification, 20 features + a categorical column, fixed seed) at each
  size of --sizes (rows per run, spread over 7 days), several ways, interleaved per repetition:
  the plain script, `dagster asset materialize` (two commands), and `dg.materialize` (a fresh
  process), and the plain script's work as a Prefect 3 flow (its own venv, bench/.prefect-venv);
  whole-process wall time and peak RSS of every process (os.wait4);
- a 30-day backfill of raw_data: one single-run range vs one run per day, on 2 CPUs and pinned
  to 1 CPU, plus a plain 2-process pool doing the same per-day work, as a reference;
- raw_data of the 7 window days (1M rows) with a 21-rule data contract declared, against the
  same range run without one (time, memory);
- one tick of the landing sensor over 1,000 files (time, memory);
- `dagster dev`: time to the first page and to a loaded code location;
- with --queued-backfill: a backfill of the whole training job in `dagster dev`, one run
  per day, 1 vs 2 runs at a time under the queued run coordinator.

Prints a table (measure, figure, target, met?) and writes every raw timing to
bench/results/<timestamp>.json. Never part of `make test`.

This file is the entry point: the flags, the sections in order, the report. The sections are
modules of bench/sections/ (and bench/serving.py, bench/monitoring.py); what they share is in
bench/timing.py (repetitions, medians, a process's wall time and peak RSS), bench/projects.py (the
data, the projects, the commands, what a run left behind) and bench/scaffold.py (the common flags,
the work folder, the results JSON, the targets and the table).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

try:  # run with the project's interpreter (make bench does); re-exec into .venv otherwise
    import dagster  # noqa: F401

    import ml_platform  # noqa: F401
except ImportError:
    venv_python = ROOT / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.executable) != venv_python:
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.exit("bench: dagster / ml_platform are not installed: run `make bench` (installs the project)")

# bench/, this file's folder, is on sys.path: its modules import as top-level ones.
from projects import END_DAY, WINDOW, Workspace, days_ending, rows_label, write_landing  # noqa: E402
from scaffold import (  # noqa: E402
    TARGETS,
    Row,
    add_common_flags,
    dispose_workdir,
    format_table,
    log,
    make_workdir,
    utc_stamp,
    write_results,
)
from sections import backfill, contract, dev, evaluation, imports, pipeline, queued, sensor  # noqa: E402
from sections.prefect import prefect_python, prefect_version  # noqa: E402
from timing import RunFailed  # noqa: E402

# "prefect" is the pipeline's Prefect 3 variant (and its venv), not a section of its own.
SECTIONS = (
    "pipeline",
    "backfill",
    "contract",
    "evaluation",
    "sensor",
    "dev",
    "imports",
    "queued",
    "serving",
    "monitoring",
    "prefect",
)


# -- the sections, in the order they run -----------------------------------------------------------
def run_pipeline(ws: Workspace, args: argparse.Namespace, workdir: Path, results: dict) -> dict:
    """Every size of --sizes; what was measured stays in ``results`` if a later size fails."""
    prefect = None
    if "prefect" not in args.skip:
        prefect = prefect_python()
        results["machine"]["packages"]["prefect"] = prefect_version(prefect)
    results["pipeline"] = sizes = {}
    for rows in args.sizes:
        sizes[rows_label(rows)] = pipeline.bench_pipeline(ws, rows, args.reps, args.keep, prefect)
    return sizes


def run_serving(ws: Workspace, args: argparse.Namespace, workdir: Path, results: dict) -> dict:
    import serving  # bench/serving.py (MLflow in its own venv, wrk); imported when run, as it imports pandas

    return serving.bench_serving(workdir / "serving", args.serving_seconds)


def run_monitoring(ws: Workspace, args: argparse.Namespace, workdir: Path, results: dict) -> dict:
    import monitoring  # bench/monitoring.py; imported when run, as it imports pandas

    return monitoring.bench_monitoring(workdir / "monitoring", args.monitoring_rows)


def run_dev(ws: Workspace, args: argparse.Namespace, workdir: Path, results: dict) -> dict:
    landing = workdir / "landing-dev"
    write_landing(landing, 10_000, days_ending(END_DAY, WINDOW))
    return dev.bench_dev(ws, landing, args.reps, args.keep)


# name -> runner(ws, args, workdir, results) -> the section's result
RUNNERS = {
    "imports": lambda ws, args, workdir, results: imports.bench_imports(ws, args.reps),
    "pipeline": run_pipeline,
    "backfill": lambda ws, args, workdir, results: backfill.bench_backfill(
        ws, args.backfill_days, args.backfill_rows_per_day, args.reps, args.keep
    ),
    "contract": lambda ws, args, workdir, results: contract.bench_contract(
        ws, args.contract_rows, args.reps, args.keep
    ),
    "evaluation": lambda ws, args, workdir, results: evaluation.bench_evaluation(
        ws, args.evaluation_rows, args.reps, args.keep
    ),
    "queued": lambda ws, args, workdir, results: queued.bench_queued(
        ws, args.queued_days, args.queued_rows_per_day, args.queued_reps, args.keep
    ),
    "sensor": lambda ws, args, workdir, results: sensor.bench_sensor(ws, args.sensor_files, args.reps, args.keep),
    "dev": run_dev,
    "serving": run_serving,
    "monitoring": run_monitoring,
}


def run_sections(args: argparse.Namespace, workdir: Path, results: dict) -> None:
    ws = Workspace(workdir / "projects")
    for name, runner in RUNNERS.items():
        if name not in args.skip:
            results[name] = runner(ws, args, workdir, results)


# -- the report ------------------------------------------------------------------------------------
def build_table(results: dict) -> list[Row]:
    return [
        *pipeline.table_rows(results.get("pipeline", {})),
        *backfill.table_rows(results.get("backfill")),
        *queued.table_rows(results.get("queued")),
        *contract.table_rows(results.get("contract")),
        *evaluation.table_rows(results.get("evaluation")),
        *sensor.table_rows(results.get("sensor")),
        *standalone_rows(results),
        *dev.table_rows(results.get("dev")),
    ]


def standalone_rows(results: dict) -> list[Row]:
    """The rows of bench/serving.py and bench/monitoring.py (imported only now, as the sections do:
    the driver's process does without pandas until a measure needs it)."""
    import monitoring
    import serving

    return [*serving.table_rows(results.get("serving")), *monitoring.table_rows(results.get("monitoring"))]


def where_time_goes(results: dict) -> str:
    """Measured breakdown: imports, the runs, their steps; the plain script's phases."""
    return "\n".join(
        [
            *imports.time_lines(results.get("imports")),
            *pipeline.time_lines(results.get("pipeline", {})),
            *backfill.time_lines(results.get("backfill")),
            *queued.time_lines(results.get("queued")),
        ]
    )


NOTES = (
    "Pipeline: whole processes (imports included), the CLI is two `dagster asset materialize`\n"
    "commands; peak RSS is per process (the larger CLI command). Backfill: the work inside one\n"
    "process (imports excluded: the same in every variant); the range-vs-single-runs speedup\n"
    "comes from running fewer runs, the 2nd-core row isolates parallelism. Sensor: the tick alone,\n"
    "in a process that has loaded the code location; memory = peak RSS during the tick - RSS before.\n"
    "Prefect: the plain script's functions as the tasks of one flow (bench/.prefect-venv), with\n"
    "the temporary local API server Prefect starts by default; its peak RSS is os.wait4's like\n"
    "every variant's: the larger of its two processes, not their sum; the server's is beside it."
)


def print_report(args: argparse.Namespace, results: dict, started: dt.datetime, table: list[Row], out_file: Path):
    m = results["machine"]
    took = (dt.datetime.fromisoformat(results["finished"]) - started).total_seconds()
    print()
    print(
        f"ml_platform bench: medians of {args.reps} run(s), interleaved; {m.get('cpu_model', '?')},"
        f" {m['cpus']} CPUs, {m.get('memory_gb', '?')} GB; Python {m['python']},"
        f" dagster {m['packages']['dagster']}, scikit-learn {m['packages']['scikit-learn']}"
        + (f", prefect {m['packages']['prefect']}" if "prefect" in m["packages"] else "")
        + ";"
        f" took {took:.0f} s"
    )
    print()
    print(format_table(table))
    print()
    print(NOTES)
    breakdown = where_time_goes(results)
    if breakdown:
        print()
        print("Where the time goes (medians, seconds):")
        print(breakdown)
    print()
    print(f"raw timings: {out_file.relative_to(ROOT) if out_file.is_relative_to(ROOT) else out_file}")


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = next(
            line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")
        )
        meminfo = Path("/proc/meminfo").read_text()
        info["memory_gb"] = round(int(meminfo.split("MemTotal:")[1].split()[0]) / 1024 / 1024, 1)
    except (OSError, StopIteration, IndexError):
        pass
    from importlib.metadata import version

    info["packages"] = {p: version(p) for p in ("dagster", "pandas", "numpy", "scikit-learn", "pyarrow")}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        info["git"] = commit + ("-dirty" if dirty else "")
    except OSError:
        pass
    return info


# -- main ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__.split("\n\n")[0],
        epilog="Examples: make bench; make bench BENCH_ARGS='--sizes 10000,100000,1000000';"
        " python bench/run.py --quick",
    )
    parser.add_argument(
        "--sizes", default="10000,100000", help="rows per pipeline run, comma-separated (default 10000,100000)"
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every measure (default 3)")
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke test: 10k rows, 1 repetition, no dagster dev, no backfill"
    )
    parser.add_argument(
        "--skip",
        default="",
        help=f"sections to leave out, comma-separated: {', '.join(SECTIONS)}"
        " (prefect: the pipeline's Prefect 3 variant, and installing its venv)",
    )
    add_section_flags(parser)
    return add_common_flags(parser)


def add_section_flags(parser: argparse.ArgumentParser) -> None:
    """The sizes of the sections other than the pipeline."""
    parser.add_argument("--backfill-days", type=int, default=30)
    parser.add_argument("--backfill-rows-per-day", type=int, default=50_000)
    parser.add_argument(
        "--queued-backfill",
        action="store_true",
        help="also backfill the whole training job in `dagster dev`, 1 vs 2 runs at"
        " a time (queued run coordinator; about 8 minutes per repetition)",
    )
    parser.add_argument("--queued-days", type=int, default=30)
    parser.add_argument("--queued-rows-per-day", type=int, default=1000)
    parser.add_argument("--queued-reps", type=int, default=1)
    parser.add_argument(
        "--contract-rows",
        type=int,
        default=1_000_000,
        help="rows of the window the data-contract measure ingests (default 1000000)",
    )
    parser.add_argument(
        "--evaluation-rows",
        type=int,
        default=1_000_000,
        help="window rows of the evaluation measure's daily run (default 1000000)",
    )
    parser.add_argument("--sensor-files", type=int, default=1000)
    parser.add_argument(
        "--serving-seconds", type=float, default=10.0, help="length of each serving load measure (default 10)"
    )
    parser.add_argument(
        "--monitoring-rows", type=int, default=1_000_000, help="logged requests of the monitoring day (default 1M)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.reps, args.contract_rows, args.evaluation_rows = "10000", 1, 10_000, 10_000
        args.monitoring_rows = 10_000
        args.skip = ",".join(filter(None, [args.skip, "dev", "backfill", "serving"]))
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if not args.queued_backfill:
        args.skip.add("queued")
    unknown = args.skip - set(SECTIONS)
    if unknown:
        parser.error(f"--skip: unknown section(s) {', '.join(sorted(unknown))}")
    if args.reps < 1 or any(s < 100 for s in args.sizes):
        parser.error("--reps must be >= 1 and every size >= 100 rows")
    return args


def new_results(args: argparse.Namespace, started: dt.datetime) -> dict:
    return {
        "started": started.isoformat(),
        "machine": machine(),
        "targets": TARGETS,
        "args": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()},
        "method": {
            "wall": "whole-process wall time (perf_counter around posix_spawn..wait4), imports included",
            "memory": "peak RSS of each process (ru_maxrss from os.wait4 of that process); for"
            " two CLI commands the larger of the two",
            "median_of": args.reps,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    workdir = make_workdir(args.workdir, "ml_platform_bench-")
    log(
        f"work folder {workdir}; sizes {args.sizes}; {args.reps} repetition(s);"
        f" skipping {', '.join(sorted(args.skip)) or 'nothing'}"
    )
    results = new_results(args, started)
    exit_code = 0
    try:
        run_sections(args, workdir, results)
    except RunFailed as exc:
        log(f"FAILED: {exc}")
        results["error"] = str(exc)
        exit_code = 1
    finally:
        results["finished"] = dt.datetime.now(dt.UTC).isoformat()
        table = build_table(results)
        results["table"] = [dict(zip(("measure", "figure", "target", "met"), row)) for row in table]
        out_file = write_results(results, args.results_dir, utc_stamp(started))
        dispose_workdir(workdir, args.keep or bool(exit_code))
    print_report(args, results, started, table, out_file)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
