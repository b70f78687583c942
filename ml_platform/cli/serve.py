"""`serve`: the production models over HTTP (and a rollout's candidate beside them)."""

from __future__ import annotations

import argparse

from ml_platform import constants
from ml_platform.cli.common import pipelines_if_readable, platform_pipelines, platform_settings
from ml_platform.errors import MlPlatformError


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the production models over HTTP until stopped (SIGINT/SIGTERM)."""
    from ml_platform.resources.model_store import check_segment
    from ml_platform.serving.server import serve

    settings = platform_settings()
    specs = (
        platform_pipelines(settings)
        if not args.model
        else pipelines_if_readable(
            settings, "every served model's requests are logged whole, days in UTC, production answers all"
        )
    )
    models = args.model or [spec.model_name for spec in specs]
    for name in models:
        check_segment(name, "model name")
    if args.workers < 1:
        raise MlPlatformError("--workers must be >= 1")
    if args.reload_interval <= 0:
        raise MlPlatformError("--reload-interval must be > 0 seconds")
    if args.max_body_mb <= 0:
        raise MlPlatformError("--max-body-mb must be > 0")
    if args.log_flush_s <= 0:
        raise MlPlatformError("--log-flush-s must be > 0 seconds")
    if not 0 < args.port < 65536:
        raise MlPlatformError(f"--port {args.port} is not a TCP port")
    config = _config(args, models, specs)
    rollouts = [f"{name} {r['strategy']}" for name, r in config.rollout.items() if r["strategy"] != "direct"]
    print(
        f"serving {', '.join(config.models)} on http://{args.host}:{args.port}"
        f" ({args.workers} worker{'s' if args.workers > 1 else ''}; pointers followed every"
        f" {args.reload_interval:g} s and on SIGHUP)" + (f"; rollout: {', '.join(rollouts)}" if rollouts else ""),
        flush=True,
    )
    serve(config, args.host, args.port, args.workers, log_level=args.log_level, access_log=args.access_log)
    return 0


def _config(args: argparse.Namespace, models: list[str], specs: list):
    """The server's config: the models, each pipeline's serving.log and rollout."""
    from ml_platform.serving.app import ServeConfig

    return ServeConfig(
        models=list(dict.fromkeys(models)),
        store_dir=args.store_dir,
        reload_interval_s=args.reload_interval,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_batch_rows=args.max_batch_rows,
        # Each model's serving.log of pipelines.yaml; --no-log turns every one off.
        log={name: {"enabled": False} for name in models}
        if args.no_log
        else {spec.model_name: {**spec.serving.log.model_dump(), "timezone": spec.schedule.timezone} for spec in specs},
        log_flush_s=args.log_flush_s,
        # Each pipeline's rollout (shadow and canary follow the candidate too); a model without a pipeline: direct.
        rollout={
            spec.model_name: spec.rollout.model_dump(include={"strategy", "share", "route_by", "mirror"})
            for spec in specs
            if spec.model_name in models
        },
    )


def add_commands(sub) -> None:
    srv = sub.add_parser(
        "serve",
        help="serve the production models over HTTP (hot reload, metrics)",
        description="Serve every model of the pipelines file (or the --model ones) over HTTP:"
        " POST /v1/models/NAME/predict, GET /v1/models, /livez, /readyz, /metrics."
        " ML_PLATFORM_SERVE_TOKEN, when set, is the bearer token every route but the probes needs.",
    )
    srv.add_argument("--model", action="append", help="a model to serve (repeat; default: every pipeline's)")
    srv.add_argument("--host", default=constants.SERVE_HOST, help="address to bind (default %(default)s)")
    srv.add_argument("--port", type=int, default=constants.SERVE_PORT, help="port (default %(default)s)")
    srv.add_argument("--workers", type=int, default=1, help="worker processes on the port (default %(default)s)")
    srv.add_argument(
        "--reload-interval",
        type=float,
        default=constants.SERVE_RELOAD_INTERVAL_S,
        help="seconds between looks at the production pointers (default %(default)s)",
    )
    srv.add_argument(
        "--max-body-mb",
        type=float,
        default=constants.SERVE_MAX_BODY_MB,
        help="largest request body, in MiB; larger ones get 413 (default %(default)s)",
    )
    srv.add_argument(
        "--max-batch-rows",
        type=int,
        default=constants.SERVE_MAX_BATCH_ROWS,
        help="most rows scored in one predict call when requests arrive together (default %(default)s)",
    )
    srv.add_argument("--store-dir", help="a local model store folder (default: the store of ML_PLATFORM_ENV)")
    srv.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    srv.add_argument("--access-log", action="store_true", help="log every request (uvicorn's access log)")
    srv.add_argument(
        "--no-log", action="store_true", help="keep no prediction log (default: each pipeline's serving.log)"
    )
    srv.add_argument(
        "--log-flush-s",
        type=float,
        default=1.0,
        help="how often the prediction log is written, in seconds (default %(default)s)",
    )
    srv.set_defaults(func=cmd_serve)
