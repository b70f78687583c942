"""`ml-platform`: what the `dagster` CLI does not cover (demo data, the model store, serving)."""

from __future__ import annotations

import argparse
import sys

from ml_platform.cli import contract, demo, monitor, rollout, serve, store
from ml_platform.errors import MlPlatformError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (demo, contract, serve, monitor, rollout, store):
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (MlPlatformError, ValueError, OSError) as exc:
        print(f"ml-platform: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
