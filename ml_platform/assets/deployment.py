"""deployed_model: the gated model written to the model store and promoted to production."""

import dagster as dg

from ml_platform import constants
from ml_platform.assets.tracked import RUN_ID, track_deploy
from ml_platform.errors import PointerConflictError
from ml_platform.estimators import HEADLINE_METRICS, METRIC_LABELS
from ml_platform.metadata import signature_metadata
from ml_platform.ml import TrainedModel, platform_version
from ml_platform.resources.model_store import ModelStore, encode_drift_profile, encode_train_rows
from ml_platform.runtime import PipelineRuntime
from ml_platform.timeouts import stage_timeout


def build_deployed_model(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    @dg.asset(
        key=pipeline.key("deployed_model"),
        ins={
            "trained_model": dg.AssetIn(key=pipeline.key("trained_model")),
            "model_metrics": dg.AssetIn(key=pipeline.key("model_metrics")),
        },
        **pipeline.asset_options("deploy", constants.ML_OWNER),
        io_manager_key="model_io_manager",
        kinds={"scikitlearn"},
        # Re-running is safe: the same model is found by its identity instead of stored twice.
        config_schema={},  # takes no config: any key given to it is refused before the run starts
        description=f"The version of model {pipeline.model_name!r} in the store that serves production,"
        " with its sha256 and provenance.",
    )
    def deployed_model(
        context: dg.AssetExecutionContext,
        model_store: ModelStore,
        trained_model: TrainedModel,
        model_metrics: dict,
    ) -> dg.Output[dict]:
        with stage_timeout(context, pipeline, "deploy"):
            return _deploy(context, pipeline, model_store, trained_model, model_metrics)

    return deployed_model


def _deploy(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    model_store: ModelStore,
    trained_model: TrainedModel,
    model_metrics: dict,
) -> dg.Output[dict]:
    name = pipeline.model_name
    metric, _, _ = pipeline.spec.gate_metric
    metadata = {
        "task": pipeline.task,
        "metrics": {k: model_metrics[k] for k in HEADLINE_METRICS[pipeline.task]},
        "gate_metric": metric,
        "estimator": trained_model.estimator,
        "params": trained_model.params,
        "variant": trained_model.extra.get("variant"),  # with model.variants: the one chosen
        "target": trained_model.target,
        "feature_columns": trained_model.feature_columns,
        "signature": trained_model.signature.to_dict() if trained_model.signature else None,
        "classes": trained_model.classes,
        "training_rows": trained_model.training_rows,
        "fit_seconds": trained_model.fit_seconds,
        "cv_metric": trained_model.extra.get("cv_metric"),  # a variant's cross-validated score
        "cv_score": trained_model.extra.get("cv_score"),
        "data_fingerprint": trained_model.data_fingerprint,
        "data_as_of": trained_model.data_as_of,
        "platform_version": platform_version(),
        "pipeline_version": trained_model.pipeline_version,
        "feature_transform": trained_model.feature_transform,
        "requirements": trained_model.requirements,
        "encoding": trained_model.encoding,
        "mlflow_run_id": trained_model.extra.get(RUN_ID),
        "dagster_run_id": context.run.run_id,
    }
    if pipeline.task == "classification":
        metadata["confusion_matrix"] = model_metrics["confusion_matrix"]
        metadata["labels"] = model_metrics["labels"]
    identity = trained_model.identity
    hashes = trained_model.extra.get("train_row_hashes")
    extras = {}
    if hashes is not None:
        extras[constants.TRAIN_ROWS_FILENAME] = encode_train_rows(hashes)
    profile = trained_model.extra.get("drift_profile")
    if profile is not None:
        extras[constants.DRIFT_PROFILE_FILENAME] = encode_drift_profile(profile)
    version = model_store.save_version(name, trained_model.model, metadata, identity=identity, extras=extras)
    if version.metadata.get("dagster_run_id") == context.run.run_id:
        context.log.info(f"stored {name} {version.version} at {version.location}")
    else:
        context.log.info(f"{name} {version.version} already holds this model (same data, params, code)")

    # Decide and promote by compare-and-swap: if another deploy moves the pointer in between,
    # decide again against what it did (an older day must never replace a newer model).
    for _ in range(constants.PROMOTE_ATTEMPTS):
        pointer, token = model_store.pointer_state(name)
        current = model_store.get_version(name, pointer["version"]) if pointer else None
        current_as_of = current.metadata.get("data_as_of") if current else None
        if current is not None and current.version == version.version:
            promoted, replaced, note = False, None, "already in production"
            model_store.record_history(name, pointer)
        elif current_as_of and trained_model.data_as_of and current_as_of > trained_model.data_as_of:
            promoted, replaced = False, None
            note = f"kept {current.version}: it was trained on newer data ({current_as_of})"
        else:
            try:
                model_store.promote(
                    name,
                    version.version,
                    reason=f"{metric} gate passed for data as of {trained_model.data_as_of}",
                    actor=f"dagster run {context.run.run_id}",
                    expected=token,
                )
            except PointerConflictError as exc:
                context.log.warning(f"{exc}; deciding again")
                continue
            promoted, replaced = True, current.version if current else None
            note = f"promoted to production, replacing {replaced}" if replaced else "promoted to production"
        break
    else:
        raise PointerConflictError(
            f"the production pointer of {name} kept moving; gave up after {constants.PROMOTE_ATTEMPTS} attempts"
        )
    context.log.info(f"{name} {version.version}: {note}")

    track_deploy(context, pipeline, model_metrics, version.version, promoted)
    production = model_store.production(name)
    record = {
        "model_name": name,
        "version": version.version,
        "location": version.location,
        "sha256": version.sha256,
        "promoted": promoted,
        "replaced": replaced,
        "production_version": production.version if production else None,
    }
    return dg.Output(
        record,
        metadata={
            "Version": version.version,
            "Location": dg.MetadataValue.path(version.location),
            "sha256": version.sha256,
            "Promoted": promoted,
            "Replaced": replaced or "-",
            "Production version": record["production_version"] or "-",
            "Outcome": note,
            METRIC_LABELS[metric]: float(model_metrics[metric]),
            "Gate metric": metric,
            **(signature_metadata(trained_model.signature) if trained_model.signature else {}),
        },
    )
