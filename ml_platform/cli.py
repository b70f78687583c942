"""`ml-platform`: what the `dagster` CLI does not cover (demo data, the model store)."""

from __future__ import annotations

import argparse
import json
import sys

from ml_platform import constants
from ml_platform.errors import MlPlatformError


def _settings():
    from ml_platform.settings import load_settings

    return load_settings()


def _last_day() -> str:
    from ml_platform.partitions import daily_partitions

    return daily_partitions.get_last_partition_key()


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from ml_platform.demo import seed_landing

    settings = _settings()
    if args.days < 1:
        raise MlPlatformError("--days must be >= 1")
    if args.synthetic_rows is not None and args.synthetic_rows < 10:
        raise MlPlatformError("--synthetic-rows must be >= 10")
    end_day = args.end_day or _last_day()
    paths = seed_landing(
        args.landing_dir or settings.landing_dir,
        end_day=end_day,
        days=args.days,
        target=settings.target_column,
        synthetic_rows=args.synthetic_rows,
        seed=args.seed,
    )
    for path in paths:
        print(path)
    return 0


def cmd_demo_range(args: argparse.Namespace) -> int:
    from ml_platform.demo import demo_days

    days = demo_days(args.end_day or _last_day(), args.days)
    print(days[-1] if args.last else f"{days[0]}...{days[-1]}")
    return 0


def _store(args: argparse.Namespace):
    from ml_platform.resources.model_store import LocalModelStore, model_store_for

    settings = _settings()
    store = LocalModelStore(root=args.store_dir) if args.store_dir else model_store_for(settings)
    return store, args.model or settings.model_name


def cmd_models(args: argparse.Namespace) -> int:
    store, name = _store(args)
    versions = store.list_versions(name)
    production = store.pointer(name)
    if not versions:
        print(f"no versions of {name} in {store.uri(name)}")
        return 0
    print(f"{'':2}{'version':<40} {'accuracy':>9} {'f1':>7}  data as of")
    for v in versions:
        mark = "* " if production and production["version"] == v.version else "  "
        m = v.metadata.get("metrics", {})
        accuracy, f1 = m.get("accuracy", float("nan")), m.get("f1", float("nan"))
        print(f"{mark}{v.version:<40} {accuracy:>9.4f} {f1:>7.4f}  {v.metadata.get('data_as_of', '-')}")
    print("(* = production)")
    return 0


def cmd_production(args: argparse.Namespace) -> int:
    store, name = _store(args)
    _, version = store.load(name)  # verifies the sha256
    pointer = store.pointer(name) or {}
    info = {
        "model": name,
        "version": version.version,
        "location": version.location,
        "sha256": version.sha256,
        "sha256_verified": True,
        "promoted_at": pointer.get("promoted_at"),
        "data_as_of": version.metadata.get("data_as_of"),
        "metrics": version.metadata.get("metrics"),
    }
    print(json.dumps(info, indent=2) if args.json else _human(info))
    return 0


def _human(info: dict) -> str:
    metrics = info["metrics"] or {}
    lines = [
        f"Production model : {info['model']} {info['version']}",
        f"Location         : {info['location']}",
        f"sha256 (verified): {info['sha256']}",
        f"Promoted at      : {info['promoted_at']}",
        f"Data as of       : {info['data_as_of']}",
    ]
    lines += [f"{k.capitalize():<17}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float)]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    seed = sub.add_parser("seed-demo", help="write demo landing files, one parquet per day")
    seed.add_argument(
        "--days", type=int, default=constants.DEFAULT_WINDOW_DAYS, help="number of days (default %(default)s)"
    )
    seed.add_argument("--end-day", help="last day, YYYY-MM-DD (default: the newest partition, yesterday)")
    seed.add_argument(
        "--synthetic-rows", type=int, help="rows per day of synthetic data instead of the breast cancer set"
    )
    seed.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    seed.add_argument("--landing-dir", help="folder to write to (default: ML_PLATFORM_LANDING_DIR)")
    seed.set_defaults(func=cmd_seed_demo)

    rng = sub.add_parser("demo-range", help="print the demo's partition range FIRST...LAST")
    rng.add_argument("--days", type=int, default=constants.DEFAULT_WINDOW_DAYS)
    rng.add_argument("--end-day")
    rng.add_argument("--last", action="store_true", help="print only the last day")
    rng.set_defaults(func=cmd_demo_range)

    for name, func, text in (
        ("models", cmd_models, "list model versions; * marks production"),
        ("production", cmd_production, "show the production model (sha256 verified) and its metrics"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--model", help="model name (default: ML_PLATFORM_MODEL_NAME)")
        p.add_argument(
            "--store-dir",
            help="a local model store folder (default: the store of ML_PLATFORM_ENV: "
            "ML_PLATFORM_MODEL_STORE_DIR, or the S3 bucket in prod)",
        )
        if name == "production":
            p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (MlPlatformError, ValueError) as exc:
        print(f"ml-platform: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
