"""`dagster asset materialize` in a subprocess on a project's environment, and what its runs left:
the check results, the tables of model_metrics, the production version."""

import subprocess
from pathlib import Path

import dagster as dg

from ml_platform_tests.support.constants import BIN, ROOT
from ml_platform_tests.support.platform import production_json


def materialize(env: dict[str, str], *args: str, expect: int = 0) -> str:
    command = [str(BIN / "dagster"), "asset", "materialize", "-m", "ml_platform.definitions", *args]
    proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == expect, f"{args} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def checks_of(env: dict[str, str], pipeline: str) -> dict[str, tuple[bool, str]]:
    """The latest result of each check of a pipeline's model_metrics: (passed, description)."""
    key = dg.AssetKey([pipeline, "model_metrics"])
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        records = instance.get_records_for_run(
            instance.get_runs(limit=1)[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
    out = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.asset_check_evaluation_data
        if evaluation.asset_key == key:
            out[evaluation.check_name] = (evaluation.passed, evaluation.description)
    return out


def model_metrics_tables(env: dict[str, str], pipeline: str) -> dict[str, list[dict]]:
    """The tables of the latest model_metrics materialization, as rows."""
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey([pipeline, "model_metrics"]))
    metadata = event.asset_materialization.metadata
    return {k: [r.data for r in v.records] for k, v in metadata.items() if isinstance(v, dg.TableMetadataValue)}


def production(env: dict[str, str], model: str) -> dict | None:
    """``ml-platform production --json`` of ``model``, or None before its first promotion."""
    if not (Path(env["ML_PLATFORM_MODEL_STORE_DIR"]) / model / "production.json").exists():
        return None
    return production_json(env, model)
