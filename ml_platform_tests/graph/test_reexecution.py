"""Re-execute a failed run "from failure" (Dagster's re-execution, as the UI's button does): only the
failed step and the steps after it run again, upstream assets are not recomputed, and the deployed
result is the one an uninterrupted run gives."""

import os
import shutil
from pathlib import Path

import dagster as dg
import joblib

from ml_platform_tests.support.constants import DAYS, END_DAY, MODEL_NAME
from ml_platform_tests.support.pipelines import ALL_DEFS
from ml_platform_tests.support.platform import Platform
from ml_platform_tests.support.results import materialized, step_errors

CHAIN_KEYS = ["training_data", "train_split", "test_split", "trained_model", "model_metrics", "deployed_model"]


def pipeline_job() -> dg.JobDefinition:
    """The training job on the folders of $REEXEC_ROOT (reconstructable: a module-level function)."""
    root = Path(os.environ["REEXEC_ROOT"])
    platform = Platform(
        root=root, landing=root / "landing", store_dir=root / "model_store", assets_dir=root / "assets", instance=None
    )  # type: ignore[arg-type]
    defs = dg.Definitions(
        assets=ALL_DEFS[:6],
        asset_checks=ALL_DEFS[6:],
        jobs=[dg.define_asset_job("training", selection=dg.AssetSelection.all())],
        resources=platform.resources,
        executor=dg.in_process_executor,
    )
    return defs.resolve_job_def("training")


def run_chain(instance: dg.DagsterInstance, **kwargs):
    return dg.execute_job(
        dg.reconstructable(pipeline_job),
        instance=instance,
        asset_selection=[dg.AssetKey(["demo", k]) for k in CHAIN_KEYS],
        tags={"dagster/partition": END_DAY},
        raise_on_error=False,
        **kwargs,
    )


def started_steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    return {
        record.event_log_entry.step_key
        for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    }


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_reexecution_from_failure_runs_only_the_failed_step(seeded: Platform, monkeypatch, tmp_path):
    ingest = seeded.ingest_range(DAYS)
    assert ingest.success, step_errors(ingest)
    monkeypatch.setenv("REEXEC_ROOT", str(seeded.root))
    instance = seeded.instance

    # The trained model cannot be stored (its folder is a file, as when a mount is missing).
    blocked = seeded.assets_dir / "demo" / "trained_model"
    blocked.write_text("not a folder")
    with run_chain(instance) as failed:
        assert not failed.success
        failed_run_id = failed.run_id
        failures = {e.step_key for e in failed.all_events if e.is_step_failure}
        assert failures == {"demo__trained_model"}
        assert "Not a directory" in step_errors(failed) or "File exists" in step_errors(failed)
    blocked.unlink()
    upstream = snapshot(seeded.assets_dir)

    # The folder is back; re-execute from failure.
    options = dg.ReexecutionOptions.from_failure(failed_run_id, instance)
    with run_chain(instance, reexecution_options=options) as rerun:
        assert rerun.success, step_errors(rerun)
        rerun_id = rerun.run_id
        assert materialized(rerun) == {"trained_model", "model_metrics", "deployed_model"}
    assert started_steps(instance, rerun_id) == {
        "demo__trained_model",
        "demo__model_metrics",
        "demo__model_metrics_accuracy_above_threshold",
        "demo__model_metrics_signature_matches_production",
        "demo__deployed_model",
    }
    assert instance.get_run_by_id(rerun_id).parent_run_id == failed_run_id
    # Upstream assets were read, not recomputed: their stored files are untouched.
    after = snapshot(seeded.assets_dir)
    rerun_outputs = ("demo/trained_model", "demo/model_metrics", "demo/deployed_model")
    assert {k: v for k, v in after.items() if not k.startswith(rerun_outputs)} == upstream
    trained = joblib.load(seeded.assets_dir / "demo" / "trained_model" / f"{END_DAY}.joblib")

    production = seeded.store.production(MODEL_NAME)
    assert production is not None
    assert production.metadata["identity"] == trained.identity

    # An uninterrupted run on a copy of the same data deploys the same model with the same metrics.
    clean_root = tmp_path / "clean"
    shutil.copytree(seeded.landing, clean_root / "landing")
    with dg.instance_for_test() as clean_instance:
        clean = Platform(
            root=clean_root,
            landing=clean_root / "landing",
            store_dir=clean_root / "model_store",
            assets_dir=clean_root / "assets",
            instance=clean_instance,
        )
        assert clean.ingest_range(DAYS).success
        assert clean.train().success
        reference = clean.store.production(MODEL_NAME)
    assert reference.metadata["identity"] == production.metadata["identity"]
    assert reference.metadata["metrics"] == production.metadata["metrics"]
    assert reference.metadata["confusion_matrix"] == production.metadata["confusion_matrix"]
