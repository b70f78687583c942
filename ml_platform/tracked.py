"""What the pipeline's steps record in MLflow (``mlflow`` in pipelines.yaml): one MLflow run per
trained model (each variant too), its metrics and champion comparison from model_metrics, the gate's
verdict and the deploy. Every call goes through ``MlflowTracker``, which warns instead of failing."""

from __future__ import annotations

import math
import re

import dagster as dg

from ml_platform.ml import TrainedModel
from ml_platform.model_metrics import ModelMetrics
from ml_platform.runtime import PipelineRuntime


def track_training(context, pipeline: PipelineRuntime, trained: TrainedModel, variant: str | None) -> dict:
    """Record a fitted model as a new MLflow run; return the asset metadata that links to it."""
    tracker = pipeline.tracker(context.log.warning)
    if tracker is None:
        return {}
    name = f"{pipeline.name} {trained.fit.data_as_of}" + (f" {variant}" if variant else "")
    tags = {
        "dagster.run_id": context.run.run_id,
        "dagster.asset_key": context.asset_key.to_user_string(),
        "dagster.partition": str(context.partition_key),
        "ml_platform.pipeline": pipeline.name,
        "ml_platform.model_name": pipeline.model_name,
        "estimator": trained.recipe.estimator,
        "data_fingerprint": trained.recipe.data_fingerprint,
        "data_as_of": trained.fit.data_as_of or "",
        **({"variant": variant} if variant else {}),
        **({"pipeline_version": trained.recipe.pipeline_version} if trained.recipe.pipeline_version else {}),
        **({"feature_transform": trained.recipe.feature_transform} if trained.recipe.feature_transform else {}),
    }
    run_id = tracker.start_run(name, trained.recipe.params, tags)
    if run_id is None:
        return {}
    trained.mlflow_run_id = run_id
    fit = trained.fit
    numbers = {"training_rows": float(fit.training_rows), "fit_seconds": float(fit.fit_seconds)}
    if fit.cv_score is not None:
        numbers[f"cv_{fit.cv_metric}"] = float(fit.cv_score)
    tracker.log_metrics(run_id, numbers)
    if trained.fit.signature is not None:
        tracker.log_dict(run_id, trained.fit.signature.to_dict(), "signature.json")
    if pipeline.spec.mlflow.log_model:
        tracker.log_model(run_id, trained.model)
    tracker.end_run(run_id)
    context.log.info(f"recorded as MLflow run {run_id} (experiment {tracker.experiment!r})")
    return _link(tracker, run_id)


def track_challenger(context, pipeline: PipelineRuntime, best: TrainedModel) -> dict:
    """Mark the chosen variant's MLflow run as the challenger; the metadata that links to it."""
    run_id = best.mlflow_run_id
    tracker = _tracker_of_run(context, pipeline, run_id)
    if tracker is None:
        return {}
    tracker.set_tags(run_id, {"challenger": "true", "challenger.dagster_run_id": context.run.run_id})
    return _link(tracker, run_id)


def track_metrics(context, pipeline: PipelineRuntime, trained: TrainedModel, metrics: ModelMetrics):
    """model_metrics' scores (and the champion's, on the same rows) on the model's MLflow run:
    (the metrics, naming that run, the metadata linking to it)."""
    run_id = trained.mlflow_run_id
    tracker = _tracker_of_run(context, pipeline, run_id)
    if tracker is None:
        return metrics, {}
    metrics = metrics.with_(mlflow_run_id=run_id)
    per_class = pipeline.spec.gated_classes
    numbers = {
        f"test_{_mlflow_name(k)}": float(v)
        for k, v in {**metrics.compared_values(per_class), "test_rows": metrics.test_rows}.items()
        if math.isfinite(float(v))
    }
    for key, (low, high) in (metrics.intervals or {}).items():
        numbers[f"test_{_mlflow_name(key)}_low"], numbers[f"test_{_mlflow_name(key)}_high"] = low, high
    decision = metrics.decision
    if decision:  # the threshold the counting metrics above were taken at
        numbers["decision_threshold"] = float(decision["threshold"])
    if metrics.baseline is not None:
        numbers.update({f"baseline_{k}": float(v) for k, v in metrics.baseline.scores.items() if math.isfinite(v)})
    champion = metrics.champion
    if champion is not None and champion.compared:
        numbers.update({f"champion_{_mlflow_name(k)}": float(v) for k, v in champion.champion.items()})
        numbers.update({f"challenger_{_mlflow_name(k)}": float(v) for k, v in champion.challenger.items()})
    tracker.log_metrics(run_id, numbers)
    slices = {
        "slices": [s.to_dict() for s in metrics.slices],
        "worst_slices": [s.to_dict() for s in metrics.worst_slices],
        "champion_slices": [s.to_dict() for s in champion.slices] if champion is not None else [],
    }
    if any(slices.values()):
        tracker.log_dict(run_id, slices, SLICES_ARTIFACT)
    return metrics, _link(tracker, run_id)


SLICES_ARTIFACT = "slices.json"  # every score per slice, the champion's too, the worst slices


def _mlflow_name(key: str) -> str:
    """A value's key as an MLflow metric name: ``recall[yes]`` -> ``recall_of_yes`` (MLflow takes
    letters, digits, ``_ - . /`` and spaces)."""
    metric, _, of_class = key.partition("[")
    if not of_class:
        return metric
    return f"{metric}_of_" + re.sub(r"[^A-Za-z0-9_.\- /]", "_", of_class.removesuffix("]"))


def track_verdict(
    context, pipeline: PipelineRuntime, metrics: ModelMetrics, check_name: str, result: dg.AssetCheckResult
) -> None:
    """One check of the gate as tags of the model's MLflow run: ``gate.<check>`` and its description;
    ``gate`` is ``held back`` once a check fails, ``passed`` when the only check passes (with several,
    the deploy says it: every check passed)."""
    run_id = metrics.mlflow_run_id
    tracker = _tracker_of_run(context, pipeline, run_id)
    if tracker is None:
        return
    verdict = "passed" if result.passed else "held back"
    tags = {f"gate.{check_name}": verdict, f"gate.{check_name}.description": result.description or ""}
    if not result.passed or len(pipeline.spec.gate_thresholds) == 1:
        tags.update({"gate": verdict, "gate.description": result.description or ""})
    tracker.set_tags(run_id, tags)


def track_deploy(
    context, pipeline: PipelineRuntime, metrics: ModelMetrics, version: str, promoted: bool, gate: str
) -> None:
    """Which store version the model's MLflow run became, whether it went to production, and (every
    check of the gate passed, or it would not be deployed) the gate's values."""
    run_id = metrics.mlflow_run_id
    tracker = _tracker_of_run(context, pipeline, run_id)
    if tracker is not None:
        tags = {"model_store.version": version, "model_store.promoted": str(promoted).lower()}
        if len(pipeline.spec.gate_thresholds) > 1:
            tags.update({"gate": "passed", "gate.description": gate})
        tracker.set_tags(run_id, tags)


def run_link(context, pipeline: PipelineRuntime, run_id: str | None) -> dict:
    """The metadata that links to an MLflow run recorded earlier (a reused model or score), without
    recording anything: the reuse is the same model, so it has no run of its own."""
    tracker = _tracker_of_run(context, pipeline, run_id)
    return _link(tracker, run_id) if tracker is not None else {}


def _tracker_of_run(context, pipeline: PipelineRuntime, run_id: str | None):
    """The pipeline's tracker, when the model has an MLflow run to add to (None otherwise)."""
    return pipeline.tracker(context.log.warning) if run_id else None


def _link(tracker, run_id: str) -> dict:
    url = tracker.run_url(run_id)
    return {"MLflow run": dg.MetadataValue.url(url) if url else run_id}
