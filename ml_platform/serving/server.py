"""Running the HTTP app: one uvicorn process, or N worker processes on one port."""

from __future__ import annotations

import os
import shutil
import tempfile

from ml_platform.serving.app import CONFIG_ENV, ServeConfig


def serve(
    config: ServeConfig, host: str, port: int, workers: int, log_level: str = "info", access_log: bool = False
) -> None:
    """Serve until SIGINT/SIGTERM (requests in flight finish first). With several workers, uvicorn's
    supervisor restarts them one by one on SIGHUP; each worker also follows the pointers itself."""
    import uvicorn

    os.environ[CONFIG_ENV] = config.to_env()
    metrics_dir = None
    if workers > 1:
        # Each worker writes its metrics here; /metrics of any worker sums the live ones.
        metrics_dir = tempfile.mkdtemp(prefix="ml-platform-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "ml_platform.serving.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=access_log,
            timeout_graceful_shutdown=30,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
