"""`contract`: a `quality:` block for pipelines.yaml that the ingested days meet."""

from __future__ import annotations

import argparse

from ml_platform.cli.common import platform_pipelines, platform_settings
from ml_platform.errors import MlPlatformError


def cmd_contract(args: argparse.Namespace) -> int:
    """Print a ``quality:`` block for pipelines.yaml that a pipeline's ingested days meet: every
    stored raw_data day, or the newest ``--days``."""
    import dagster as dg

    from ml_platform.backends.environment import backends_for
    from ml_platform.quality.suggestion import contract_yaml

    if args.days is not None and args.days < 1:
        raise MlPlatformError("--days must be >= 1")
    settings = platform_settings()
    specs = platform_pipelines(settings)
    spec = next((s for s in specs if args.model in (s.name, s.model_name)), None)
    if spec is None:
        names = ", ".join(f"{s.name} (model {s.model_name})" for s in specs)
        raise MlPlatformError(
            f"--model {args.model!r} is neither a pipeline nor a model of the pipelines file ({names})"
        )
    io_manager = backends_for(settings).io_manager
    key = dg.AssetKey([spec.name, "raw_data"])
    stored = io_manager.stored_partitions(key)
    days = stored if args.days is None else stored[-args.days :]
    if not days:
        raise MlPlatformError(
            f"no ingested days of {spec.name}: materialize {spec.name}/raw_data first"
            " (`dagster asset materialize --select 'key:" + spec.name + "/raw_data' ...`)"
        )
    frames = {day: io_manager.stored_value(key, day) for day in days}
    kinds = {f.name: f.kind for f in spec.features.columns or [] if f.kind}
    print(
        contract_yaml(
            frames, spec.target, spec.task, kinds, pipeline=spec.name, ingested=len(stored), indent=args.indent
        )
    )
    return 0


def add_commands(sub) -> None:
    con = sub.add_parser(
        "contract",
        help="print a quality: block for pipelines.yaml from the ingested days",
        description="Read a pipeline's ingested raw_data days (all of them, or the newest --days) and print a"
        " `quality:` block (null shares, ranges, categories, ids, rows, labels) that they meet, to paste"
        " into its entry of pipelines.yaml. What the days show of the values (ranges, categories, rows a"
        " day) blocks only when they span a year; from fewer days it is suggested with severity: warn.",
    )
    con.add_argument("--model", required=True, help="the pipeline (its name, or its model's name)")
    con.add_argument(
        "--days", type=int, help="read only the newest N ingested days (default: every ingested day)", metavar="N"
    )
    con.add_argument(
        "--indent",
        type=int,
        default=4,
        choices=range(0, 13),
        metavar="N",
        help="spaces before `quality:`, as the entry's keys are indented (default %(default)s)",
    )
    con.set_defaults(func=cmd_contract)
