"""deployed_model: the gated model written to the model store and promoted to production."""

from dataclasses import dataclass

import dagster as dg

from ml_platform import constants
from ml_platform.asset_records import DeployedRecord
from ml_platform.assets.step import Step
from ml_platform.compiled import Parity
from ml_platform.errors import PointerConflictError
from ml_platform.metadata import signature_metadata
from ml_platform.ml import TrainedModel
from ml_platform.model_metrics import ModelMetrics
from ml_platform.recipe import platform_version
from ml_platform.resources.model_store import (
    ModelStore,
    ModelVersion,
    encode_calibration,
    encode_drift_profile,
    encode_train_rows,
)
from ml_platform.runtime import PipelineRuntime
from ml_platform.timeouts import stage_timeout
from ml_platform.tracked import track_deploy
from ml_platform.version_record import VersionRecord


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
        model_metrics: ModelMetrics,
    ) -> dg.Output[dict]:
        with stage_timeout(context, pipeline, "deploy"):
            return _deploy(Step(context, pipeline, model_store), trained_model, model_metrics)

    return deployed_model


@dataclass(frozen=True)
class Decision:
    """What deploy decided against the pointer it read: promote the version, or keep production (why)."""

    promote: bool
    note: str = ""


@dataclass(frozen=True)
class Swap:
    """What came of the pointer: promoted or not, the version it replaced, what happened."""

    promoted: bool
    replaced: str | None  # production's version it replaced; a candidate: the candidate it replaced
    note: str
    candidate: bool = False  # the version became (or already was) the rollout's candidate


def _deploy(step: Step, trained_model: TrainedModel, model_metrics: ModelMetrics) -> dg.Output[dict]:
    """Store the model (once per recipe), then decide and swap the production pointer, then say what
    happened: record / decide / swap / describe."""
    context, pipeline = step.context, step.pipeline
    version = _store(step, trained_model, model_metrics, _record(context, pipeline, trained_model, model_metrics))
    gated = ", ".join(t.name for t in pipeline.spec.gate_thresholds)
    reason = f"gate passed ({gated}) for data as of {trained_model.fit.data_as_of}"
    swap = _swap(step, version, trained_model.fit.data_as_of, reason)
    context.log.info(f"{pipeline.model_name} {version.version}: {swap.note}")
    _say_serving_path(context, version)
    gate_text = _gate_text(pipeline, model_metrics)
    track_deploy(context, pipeline, model_metrics, version.version, swap.promoted, gate_text)
    return _describe(step, version, trained_model, model_metrics, swap)


def _say_serving_path(context: dg.AssetExecutionContext, version: ModelVersion) -> None:
    """How the server will answer with the version: its compiled form, or scikit-learn (a warning, with why)."""
    parity = Parity.from_dict(version.record.parity)
    if parity is None:
        return
    said = f"{version.model_name} {version.version} serves through {parity.describe()}"
    if parity.path == "compiled":
        context.log.info(said)
    else:
        context.log.warning(said)


def _gate_text(pipeline: PipelineRuntime, model_metrics: ModelMetrics) -> str:
    """Each gated value and its threshold: "roc_auc 0.9132 (at least 0.85); recall of yes ..."."""
    parts = []
    for threshold in pipeline.spec.gate_thresholds:
        value = model_metrics.value(threshold.metric, threshold.of_class)
        shown = "not computed" if value is None else f"{value:.4f}"
        bound = "at least" if threshold.higher_is_better else "at most"
        parts.append(f"{threshold.name} {shown} ({bound} {threshold.value:g})")
    return "; ".join(parts)


def _record(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    trained_model: TrainedModel,
    model_metrics: ModelMetrics,
) -> VersionRecord:
    """What the version records about the model, its provenance and its score (VersionRecord)."""
    details = model_metrics.classification  # None for a regression
    return VersionRecord(
        recipe=trained_model.recipe,
        fit=trained_model.fit,
        metrics={**model_metrics.scores, "test_rows": model_metrics.test_rows},
        metric_intervals={k: [low, high] for k, (low, high) in (model_metrics.intervals or {}).items()},
        gate_metric=pipeline.spec.gate_metric,
        platform_version=platform_version(),
        decision_threshold=model_metrics.decision,
        parity=model_metrics.parity,
        mlflow_run_id=trained_model.mlflow_run_id,
        dagster_run_id=context.run.run_id,
        confusion_matrix=(details.confusion_matrix or None) if details else None,
        labels=(details.labels or None) if details else None,
    )


def _store(step: Step, trained_model: TrainedModel, model_metrics: ModelMetrics, record: VersionRecord) -> ModelVersion:
    """The version of this recipe in the store: written now with the files beside the model (its
    training rows' hashes, its drift profile, its calibration), or found (re-running a deploy stores nothing twice)."""
    extras = {}
    hashes = trained_model.train_row_hashes
    if hashes is not None:
        extras[constants.TRAIN_ROWS_FILENAME] = encode_train_rows(hashes)
    profile = trained_model.drift_profile
    if profile is not None:
        extras[constants.DRIFT_PROFILE_FILENAME] = encode_drift_profile(profile)
    if model_metrics.calibration is not None:
        extras[constants.CALIBRATION_FILENAME] = encode_calibration(model_metrics.calibration)
    name = step.pipeline.model_name
    version = step.model_store.save_version(
        name, trained_model.model, record, identity=trained_model.identity, extras=extras
    )
    if version.record.dagster_run_id == step.context.run.run_id:
        step.log.info(f"stored {name} {version.version} at {version.location}")
    else:
        step.log.info(f"{name} {version.version} already holds this model (same data, params, code)")
    return version


def _decide(version: ModelVersion, current: ModelVersion | None, data_as_of: str | None) -> Decision:
    """Promote ``version`` over ``current`` (production as the pointer says now)? Not when it is
    production already, nor when production was trained on newer data: a backfill of an older day
    must never move production backwards."""
    if current is not None and current.version == version.version:
        return Decision(False, "already in production")
    current_as_of = current.record.fit.data_as_of if current else None
    if current_as_of and data_as_of and current_as_of > data_as_of:
        return Decision(False, f"kept {current.version}: it was trained on newer data ({current_as_of})")
    return Decision(True)


def _swap(step: Step, version: ModelVersion, data_as_of: str | None, reason: str) -> Swap:
    """Decide and promote by compare-and-swap: if another deploy moves the pointer in between, decide
    again against what it did. With a rollout of a candidate (shadow, canary), the version becomes
    the candidate beside production instead; production does not move."""
    context, model_store, name = step.context, step.model_store, step.pipeline.model_name
    rollout = step.pipeline.spec.rollout
    for _ in range(constants.PROMOTE_ATTEMPTS):
        pointer, token = model_store.pointer_state(name)
        current = model_store.get_version(name, pointer.version) if pointer else None
        decision = _decide(version, current, data_as_of)
        if not decision.promote:
            if current is not None and current.version == version.version:
                model_store.record_history(name, pointer)  # a kill before the history record: completed
            return Swap(False, None, decision.note)
        actor = f"dagster run {context.run.run_id}"
        try:
            if rollout.uses_candidate and current is not None:
                return _propose(step, version, reason, actor)
            model_store.promote(name, version.version, reason=reason, actor=actor, expected=token)
        except PointerConflictError as exc:
            context.log.warning(f"{exc}; deciding again")
            continue
        replaced = current.version if current else None
        return Swap(
            True, replaced, f"promoted to production, replacing {replaced}" if replaced else "promoted to production"
        )
    raise PointerConflictError(
        f"the production pointer of {name} kept moving; gave up after {constants.PROMOTE_ATTEMPTS} attempts"
    )


def _propose(step: Step, version: ModelVersion, reason: str, actor: str) -> Swap:
    """The version becomes the rollout's candidate (its own pointer, compare-and-swap), replacing an
    older open candidate (said in the candidate's history and the deploy's outcome). The first
    version of a model has no production to earn its place against: it is promoted directly."""
    model_store, name, strategy = step.model_store, step.pipeline.model_name, step.pipeline.spec.rollout.strategy
    open_candidate = model_store.candidate(name)
    if open_candidate is not None and open_candidate.version == version.version:
        return Swap(False, None, f"already the {strategy} candidate", candidate=True)
    aborted = next(
        (p for p in model_store.history(name, "candidate") if p.version == version.version and p.closed == "aborted"),
        None,
    )
    if aborted is not None:  # the same recipe again: live evidence turned it down once
        return Swap(False, None, f"kept production: {version.version} was aborted as the candidate ({aborted.reason})")
    _, token = model_store.pointer_state(name, "candidate")
    replacing = f", replacing candidate {open_candidate.version}" if open_candidate else ""
    model_store.promote(
        name,
        version.version,
        reason=f"{reason}; {strategy} candidate{replacing}",
        actor=actor,
        expected=token,
        role="candidate",
    )
    step.log.info(f"{name} {version.version} is the {strategy} candidate{replacing}; production did not move")
    return Swap(
        False,
        open_candidate.version if open_candidate else None,
        f"became the {strategy} candidate{replacing}",
        candidate=True,
    )


def _serving_path(version: ModelVersion) -> str:
    parity = Parity.from_dict(version.record.parity)
    return parity.describe() if parity is not None else "scikit-learn (stored before compiled forms)"


def _describe(
    step: Step, version: ModelVersion, trained_model: TrainedModel, model_metrics: ModelMetrics, swap: Swap
) -> dg.Output[dict]:
    """deployed_model's value (what a later step or a person reads) and what the UI shows."""
    pipeline = step.pipeline
    promoted, replaced, note = swap.promoted, swap.replaced, swap.note
    metric = pipeline.spec.gate_metric
    production = step.model_store.production(pipeline.model_name)  # after the swap: ours, or another deploy's
    value = {
        "model_name": pipeline.model_name,
        "version": version.version,
        "location": version.location,
        "sha256": version.sha256,
        "promoted": promoted,
        "replaced": replaced,
        "production_version": production.version if production else None,
        "candidate": swap.candidate,
    }
    # What the notifications read back (asset_records); the rest is for people.
    record = DeployedRecord(
        version.version, promoted, note, version.location, metric, model_metrics.score(metric), swap.candidate
    )
    return dg.Output(
        value,
        metadata={
            **record.to_metadata(),
            DeployedRecord.LOCATION: dg.MetadataValue.path(version.location),
            "sha256": version.sha256,
            "Replaced": replaced or "-",
            "Production version": value["production_version"] or "-",
            "Gate": _gate_text(pipeline, model_metrics),
            "Serving path": _serving_path(version),
            **(signature_metadata(trained_model.fit.signature) if trained_model.fit.signature else {}),
        },
    )
