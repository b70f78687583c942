"""`seed-demo`, `demo-range` and `docs`: the demo's data and days, and docs/pipelines.md."""

from __future__ import annotations

import argparse
import os

from ml_platform import constants
from ml_platform.cli.common import newest_day, platform_pipelines, platform_settings
from ml_platform.errors import MlPlatformError


def cmd_seed_demo(args: argparse.Namespace) -> int:
    """Demo data for each pipeline that declares ``demo_data`` (or the one --pipeline names)."""
    from ml_platform.demo import seed_landing

    settings = platform_settings()
    if args.days < 1:
        raise MlPlatformError("--days must be >= 1")
    if args.synthetic_rows is not None and args.synthetic_rows < 10:
        raise MlPlatformError("--synthetic-rows must be >= 10")
    specs = platform_pipelines(settings)
    if args.pipeline:
        specs = [s for s in specs if s.name == args.pipeline]
        if not specs:
            raise MlPlatformError(f"--pipeline {args.pipeline!r} is not in the pipelines file")
    else:
        specs = [s for s in specs if s.demo_data]
    end_day = args.end_day or newest_day()
    for spec in specs:
        if args.landing_dir:
            folder = args.landing_dir
        elif spec.landing.startswith("s3://"):
            raise MlPlatformError(f"pipeline {spec.name!r} lands on S3: seed-demo writes local folders")
        else:
            folder = os.path.join(settings.landing_dir, spec.landing)
        paths = seed_landing(
            folder,
            end_day=end_day,
            days=args.days,
            target=spec.target,
            synthetic_rows=args.synthetic_rows if spec.task == "classification" else None,
            seed=args.seed,
            dataset=spec.demo_data or ("breast_cancer" if spec.task == "classification" else "diabetes"),
        )
        for path in paths:
            print(path)
        if args.landing_dir:
            break
    return 0


def cmd_demo_range(args: argparse.Namespace) -> int:
    from ml_platform.demo import demo_days

    days = demo_days(args.end_day or newest_day(), args.days)
    if args.list:
        print("\n".join(days))
    else:
        print(days[-1] if args.last else f"{days[0]}...{days[-1]}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Write docs/pipelines.md from the schema's field descriptions (or --check that it is current)."""
    from ml_platform.reference import PAGE, pipelines_reference, undocumented

    missing = undocumented()
    if missing:
        raise MlPlatformError(f"fields of the pipelines file without a description: {', '.join(missing)}")
    text = pipelines_reference()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            raise MlPlatformError(f"{PAGE} is not what the schema says: run `ml-platform docs`")
        print(f"{PAGE} is current")
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


def add_commands(sub) -> None:
    """seed-demo, demo-range and docs."""
    seed = sub.add_parser("seed-demo", help="write demo landing files, one parquet per day")
    seed.add_argument(
        "--days", type=int, default=constants.DEFAULT_WINDOW_DAYS, help="number of days (default %(default)s)"
    )
    seed.add_argument("--end-day", help="last day, YYYY-MM-DD (default: the newest partition, yesterday)")
    seed.add_argument(
        "--synthetic-rows", type=int, help="rows per day of synthetic data instead of the breast cancer set"
    )
    seed.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    seed.add_argument("--pipeline", help="only this pipeline (default: every pipeline with demo_data)")
    seed.add_argument("--landing-dir", help="folder to write to (default: each pipeline's landing)")
    seed.set_defaults(func=cmd_seed_demo)

    rng = sub.add_parser("demo-range", help="print the demo's partition range FIRST...LAST")
    rng.add_argument("--days", type=int, default=constants.DEFAULT_WINDOW_DAYS)
    rng.add_argument("--end-day")
    rng.add_argument("--last", action="store_true", help="print only the last day")
    rng.add_argument("--list", action="store_true", help="print every day, one a line")
    rng.set_defaults(func=cmd_demo_range)

    docs = sub.add_parser("docs", help="write docs/pipelines.md from the schema's field descriptions")
    docs.add_argument("--check", action="store_true", help="only check that the page is current (exit 2 if not)")
    docs.set_defaults(func=cmd_docs)
