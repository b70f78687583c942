"""model_metrics: how the trained model does on the held-out split."""

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from ml_platform import constants
from ml_platform.assets.evaluation_display import metrics_metadata
from ml_platform.assets.step import Step
from ml_platform.assets.stored_output import own_stored_output
from ml_platform.compiled import Parity, parity_of
from ml_platform.errors import DataValidationError, MlPlatformError, ModelStoreError
from ml_platform.estimate import fit_calibration
from ml_platform.instance_queries import latest_data_version
from ml_platform.intervals import LEVEL, RESAMPLES, Outputs, intervals, paired_differences
from ml_platform.metrics import GATE_METRICS
from ml_platform.ml import (
    TrainedModel,
    classification_metrics,
    features_and_target,
    frame_fingerprint,
    predict_outputs,
    regression_metrics,
    row_hashes,
)
from ml_platform.model_metrics import Baseline, ChampionComparison, ModelMetrics, SignatureComparison, score_key
from ml_platform.recipe import platform_version
from ml_platform.resources.model_store import ModelStore, ModelVersion, decode_train_rows
from ml_platform.retries import retried_when_unavailable
from ml_platform.runtime import PipelineRuntime
from ml_platform.signature import compare as compare_signatures
from ml_platform.slices import (
    MAX_VALUES,
    WORST,
    compare_slices,
    is_categorical,
    scores_of_slices,
    slice_labels,
    worst_slices,
)
from ml_platform.timeouts import stage_timeout
from ml_platform.tracked import run_link, track_metrics


def baseline_scores(pipeline: PipelineRuntime, train_split: pd.DataFrame, test_split: pd.DataFrame) -> Baseline:
    """scikit-learn's do-nothing model, as a user would write it (``DummyClassifier()``,
    ``DummyRegressor()``), fitted on the training rows and scored on the test rows with the same
    metric functions as the model."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    classification = pipeline.task == "classification"
    dummy = DummyClassifier() if classification else DummyRegressor()
    dummy.fit(*features_and_target(train_split, pipeline.target))
    score = classification_metrics if classification else regression_metrics
    return Baseline(repr(dummy), ModelMetrics.of(pipeline.task, score(dummy, test_split, pipeline.target)).scores)


@dataclass(frozen=True)
class ScoredTestSplit:
    """The test split, what the new model said on it, and each row's slice of every declared slice
    column: what the champion comparison reuses rather than predicting again."""

    rows: pd.DataFrame
    model: Any
    outputs: Outputs
    slices: pd.DataFrame

    def on(self, pipeline: PipelineRuntime, mask: np.ndarray) -> tuple[Outputs, dict[str, float]]:
        """The new model's outputs and values on some of the rows (``mask``)."""
        outputs = self.outputs.subset(mask)
        return outputs, _values(pipeline, self.model, self.rows[mask].reset_index(drop=True), outputs)


def champion_scores(
    step: Step,
    trained_model: TrainedModel,
    scored: ScoredTestSplit,
    production: ModelVersion | None,
    unreadable: str | None = None,
) -> ChampionComparison | None:
    """The production model (the champion, ``production``: the version this step read) and the new
    model (the challenger) scored on the same, fresh test rows: the rows of this run's test split
    that the champion was not trained on (windows of consecutive days overlap, so some of today's
    test rows were yesterday's training rows; on those the champion would look better than it is).

    None when there is no production model yet. A champion that cannot be read (``unreadable``),
    loaded or scored (a corrupt artifact, other columns), or too few fresh rows, is reported with the
    reason, and the gate falls back to its thresholds alone.
    """
    context, pipeline = step.context, step.pipeline
    if unreadable:
        context.log.warning(f"{unreadable}: the gate uses its thresholds alone")
        return ChampionComparison(None, problem=unreadable)
    if production is None:
        context.log.info(f"no production {pipeline.model_name} yet: the gate uses its thresholds alone")
        return None
    loaded = _champion_and_fresh_rows(step, trained_model, production, scored.rows)
    if isinstance(loaded, ChampionComparison):
        return loaded
    model, fresh, itself = loaded
    count = int(fresh.sum())
    if count < constants.MIN_FRESH_TEST_ROWS:
        reason = (
            f"only {count} of {len(fresh)} test rows are new to {production.version}"
            f" (fewer than {constants.MIN_FRESH_TEST_ROWS})"
        )
        context.log.warning(f"{reason}: the gate uses its thresholds alone")
        return ChampionComparison(production.version, problem=reason)
    challenger = scored.on(pipeline, fresh)
    if itself:
        context.log.info(f"the challenger is production {production.version} itself: scored once, for both")
        values = challenger[1]
        same = {score_key(t.metric, t.of_class): [0.0] for t in pipeline.spec.gate_thresholds}
        slices = _compared_slices(scored, fresh, challenger[0], challenger[0], values)
        return ChampionComparison(production.version, count, values, dict(values), differences=same, slices=slices)
    return _paired(step, (production.version, model), scored, fresh, challenger)


def _paired(
    step: Step,
    champion_model: tuple[str, Any],
    scored: ScoredTestSplit,
    fresh: np.ndarray,
    new: tuple[Outputs, dict[str, float]],
) -> ChampionComparison:
    """The champion (``champion_model``: its version and model) and the challenger (``new``: its
    outputs and values) on the fresh rows: their values, the paired bootstrap of each gated value
    (the same resamples for both), and both on each slice."""
    context, pipeline = step.context, step.pipeline
    version, model = champion_model
    rows = scored.rows[fresh].reset_index(drop=True)
    try:
        old_outputs, champion = _scored(pipeline, model, rows)
    except Exception as exc:  # noqa: BLE001 - any reason it cannot score is reported, not fatal
        context.log.warning(
            f"production {pipeline.model_name} {version} cannot score the test rows"
            f" ({type(exc).__name__}: {exc}): the gate uses its thresholds alone"
        )
        return ChampionComparison(version, problem=f"{type(exc).__name__}: {exc}")
    new_outputs, challenger = new
    gated = [score_key(t.metric, t.of_class) for t in pipeline.spec.gate_thresholds]
    gated = [k for k in gated if k in champion and k in challenger]
    point = {k: challenger[k] - champion[k] for k in gated}
    differences = paired_differences(new_outputs, old_outputs, gated, point=point)
    return ChampionComparison(
        version,
        int(len(rows)),
        champion,
        challenger,
        differences={k: [float(v) for v in values] for k, values in differences.items()},
        slices=_compared_slices(scored, fresh, new_outputs, old_outputs, challenger),
    )


def _compared_slices(
    scored: ScoredTestSplit, fresh: np.ndarray, new: Outputs, old: Outputs, values: dict[str, float]
) -> list:
    """Both models on each declared slice of the fresh rows, every value of ``values``."""
    keys = [k for k in values if k != "test_rows"]
    return [
        comparison
        for column in scored.slices.columns
        for comparison in compare_slices(
            new, old, column, scored.slices[column][fresh].reset_index(drop=True), keys, MAX_VALUES
        )
    ]


def _scored(pipeline: PipelineRuntime, model, rows: pd.DataFrame) -> tuple[Outputs, dict[str, float]]:
    """A model's outputs on ``rows`` and its values there (every score, the gated per-class ones)."""
    outputs = predict_outputs(model, rows, pipeline.target, pipeline.task)
    return outputs, _values(pipeline, model, rows, outputs)


def _values(pipeline: PipelineRuntime, model, rows: pd.DataFrame, outputs: Outputs) -> dict[str, float]:
    score = classification_metrics if pipeline.task == "classification" else regression_metrics
    measured = ModelMetrics.of(pipeline.task, score(model, rows, pipeline.target, outputs))
    return measured.compared_values(pipeline.spec.gated_classes)


def _champion_and_fresh_rows(
    step: Step, trained_model: TrainedModel, production: ModelVersion, test_split: pd.DataFrame
):
    """(the champion's model, which test rows are new to it (a mask), whether the challenger is the
    champion itself), or a ChampionComparison saying why the champion cannot be loaded."""
    # The challenger may be the production version itself (trained_model reused it, or refit the
    # same recipe): then the champion is not loaded, and both are scored once.
    context, pipeline, model_store = step.context, step.pipeline, step.model_store
    itself = trained_model.identity is not None and production.record.identity == trained_model.identity
    try:
        with retried_when_unavailable(context, pipeline.settings):
            # The version read, by name (it verifies the sha256): the pointer is not read again.
            model = trained_model.model if itself else model_store.load(pipeline.model_name, production.version)[0]
            fresh = _fresh_rows(context, model_store, production, test_split)
    except ModelStoreError as exc:
        context.log.warning(f"the production model cannot be loaded ({exc}): the gate uses its thresholds alone")
        return ChampionComparison(None, problem=str(exc))
    return model, fresh, itself


def _fresh_rows(context, model_store: ModelStore, version: ModelVersion, test_split: pd.DataFrame) -> np.ndarray:
    """Which rows of ``test_split`` ``version`` was not trained on (a boolean mask)."""
    seen_bytes = model_store.read_extra(version, constants.TRAIN_ROWS_FILENAME)
    if seen_bytes is None:
        context.log.warning(f"{version.version} did not record its training rows: compared on the whole split")
        return np.ones(len(test_split), dtype=bool)
    return ~np.isin(row_hashes(test_split), decode_train_rows(seen_bytes))


def signature_comparison(
    trained_model: TrainedModel, production: ModelVersion | None, unreadable: str | None = None
) -> SignatureComparison:
    """How the new model's signature differs from the production model's (``production``: the
    version this step read), for the signature_matches_production check; a note when there is
    nothing to compare."""
    if unreadable:
        return SignatureComparison(None, note=unreadable)
    if production is None:
        return SignatureComparison(None, note="no production model yet")
    old = production.record.fit.signature
    if old is None or trained_model.fit.signature is None:
        return SignatureComparison(
            production.version, note=f"{production.version} records no signature to compare with"
        )
    return SignatureComparison(production.version, change=compare_signatures(old, trained_model.fit.signature))


def metrics_recipe(
    pipeline: PipelineRuntime, trained_model: TrainedModel, test_split: pd.DataFrame, production: ModelVersion | None
) -> str:
    """sha256 of what model_metrics is computed from: the model's recipe, the test split, the
    production version it is compared with (``production``, the version this step read), the
    platform's version, the slices asked for. model_metrics' Dagster data version."""
    recipe = {
        "model": trained_model.identity,
        "test_split": frame_fingerprint(test_split),
        "production": [production.version, production.record.identity] if production else None,
        "platform_version": platform_version(),
        "task": pipeline.task,
    }
    evaluation = pipeline.spec.evaluation.model_dump(exclude_defaults=True)
    if evaluation:  # slices declared (a file without them keeps its recipe)
        recipe["evaluation"] = evaluation
    return "sha256:" + hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()


def _stored_metrics(context: dg.AssetExecutionContext, recipe: str) -> ModelMetrics | None:
    """This partition's stored model_metrics, when Dagster recorded this recipe as its data version
    and the stored value is a whole score; else None (scored again)."""
    partition = str(context.partition_key)
    if latest_data_version(context.instance, context.asset_key, partition) != recipe:
        return None
    stored, problem = own_stored_output(context)
    if problem is not None:
        context.log.warning(f"the stored model_metrics of {partition} {problem}: scoring again")
        return None
    if not isinstance(stored, ModelMetrics):
        return None  # stored by an older version of the platform (a dict): scored again
    context.log.info(
        f"reused the stored model_metrics of {partition} (the same model, test split and"
        " production version): no scoring"
    )
    return stored


def _score(
    context: dg.AssetExecutionContext, pipeline: PipelineRuntime, trained_model: TrainedModel, test_split: pd.DataFrame
) -> tuple[ModelMetrics, ScoredTestSplit]:
    """The model's scores on the test split (the task's metrics and their details), each with its
    bootstrap interval, and on each slice; with what it said on each row, for the champion comparison."""
    outputs = predict_outputs(trained_model.model, test_split, trained_model.recipe.target, pipeline.task)
    score = classification_metrics if pipeline.task == "classification" else regression_metrics
    metrics = ModelMetrics.of(
        pipeline.task, score(trained_model.model, test_split, trained_model.recipe.target, outputs)
    )
    values = metrics.compared_values(pipeline.spec.gated_classes)
    started = time.perf_counter()
    metrics = metrics.with_(intervals=intervals(outputs, list(values), point=values))
    context.log.info(
        f"bootstrap {int(LEVEL * 100)} % intervals of {len(metrics.intervals)} values from {RESAMPLES} resamples"
        f" of the {metrics.test_rows} test rows in {time.perf_counter() - started:.1f} s"
    )
    shown = ("accuracy", "f1") if pipeline.task == "classification" else ("r2", "rmse", "mae")
    context.log.info(
        ", ".join(f"{name} {metrics.shown(name)}" for name in shown) + f" on {metrics.test_rows} test rows"
    )
    metrics = metrics.with_(
        calibration=_calibration(context, outputs), parity=_parity(context, trained_model, test_split, outputs)
    )
    scored = ScoredTestSplit(
        test_split, trained_model.model, outputs, _slice_labels(pipeline, trained_model, test_split)
    )
    return _with_slices(context, pipeline, trained_model, metrics, scored), scored


def _calibration(context: dg.AssetExecutionContext, outputs: Outputs) -> dict | None:
    """The calibration of a classifier's probabilities on the test split (``ml_platform.estimate``):
    what the rollout's label-free estimate of live accuracy reads; None without probabilities."""
    if outputs.proba is None:
        return None
    probabilities = pd.DataFrame(outputs.proba, columns=[str(c) for c in outputs.labels])
    try:
        return fit_calibration(probabilities, outputs.predicted, outputs.y).to_dict()
    except MlPlatformError as exc:
        context.log.warning(f"no calibration for the label-free estimate: {exc}")
        return None


def _parity(
    context: dg.AssetExecutionContext, trained_model: TrainedModel, test_split: pd.DataFrame, outputs: Outputs
) -> dict[str, Any]:
    """Whether the model's compiled form answers the test split as scikit-learn does
    (``ml_platform.compiled``): recorded with the version, it decides how the server answers."""
    started = time.perf_counter()
    x = test_split.drop(columns=[trained_model.recipe.target])
    try:
        found = parity_of(trained_model.model, trained_model.fit.signature, x, outputs.task == "classification")
    except Exception as exc:  # noqa: BLE001 - a form that fails is a form not served: scikit-learn answers
        failed = f"its compiled form failed on the test split: {type(exc).__name__}: {exc}"
        found = Parity("scikit-learn", reason=failed)
    said = f"serving path: {found.describe()} ({time.perf_counter() - started:.1f} s)"
    if found.path == "compiled":
        context.log.info(said)
    else:
        context.log.warning(said)
    return found.to_dict()


def _kinds(trained_model: TrainedModel) -> dict[str, str]:
    """Each column's kind as the model took it (its signature)."""
    return dict(trained_model.fit.signature.kinds) if trained_model.fit.signature is not None else {}


def _slice_labels(pipeline: PipelineRuntime, trained_model: TrainedModel, test_split: pd.DataFrame) -> pd.DataFrame:
    """Each test row's slice of every column of ``evaluation.slices``."""
    evaluation = pipeline.spec.evaluation
    missing = [c for c in evaluation.slices if c not in test_split.columns]
    if missing:
        raise DataValidationError(
            f"evaluation.slices: {', '.join(map(repr, missing))} not a column of the test split"
            f" (its feature columns: {', '.join(str(c) for c in test_split.columns if c != pipeline.target)})"
        )
    kinds = _kinds(trained_model)
    return pd.DataFrame(
        {c: slice_labels(test_split[c], evaluation.bins, kinds.get(c)) for c in evaluation.slices},
        index=test_split.index,
    )


def _with_slices(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    trained_model: TrainedModel,
    metrics: ModelMetrics,
    scored: ScoredTestSplit,
) -> ModelMetrics:
    """Every score on each declared slice; the worst slices of every categorical feature by the gate metric."""
    started = time.perf_counter()
    keys = list(metrics.scores)
    slices = [
        found
        for column in scored.slices.columns
        for found in scores_of_slices(scored.outputs, column, scored.slices[column], keys, most=MAX_VALUES)
    ]
    metric, evaluation = pipeline.spec.gate_metric, pipeline.spec.evaluation
    kinds = _kinds(trained_model)
    categorical = [
        str(c) for c in scored.rows.columns if c != pipeline.target and is_categorical(scored.rows[c], kinds.get(c))
    ]
    worst = worst_slices(
        scored.outputs,
        scored.rows,
        categorical,
        metric,
        GATE_METRICS[pipeline.task][metric],
        evaluation.min_support,
    )
    context.log.info(
        f"{len(slices)} slices of {len(scored.slices.columns)} declared column(s) scored; the {WORST} worst"
        f" {metric} over {len(categorical)} categorical feature(s) with at least {evaluation.min_support} rows:"
        f" {', '.join(f'{s.name} {s.scores[metric]:.4f} ({s.rows} rows)' for s in worst) or 'none'}"
        f" ({time.perf_counter() - started:.1f} s)"
    )
    return metrics.with_(slices=slices, worst_slices=worst)


def _model_metrics(
    step: Step, trained_model: TrainedModel, test_split: pd.DataFrame, train_split: pd.DataFrame
) -> dg.Output[ModelMetrics]:
    """The score of the model, the baseline's and the champion's on the same rows and the signature
    comparison; or the stored score when the model, the test split and the production version are
    what it was computed from."""
    context, pipeline, model_store = step.context, step.pipeline, step.model_store
    metric = pipeline.spec.gate_metric
    # The production version, read once: the score's recipe, the champion and the signature are all
    # compared with this one.
    with retried_when_unavailable(context, pipeline.settings):
        production, unreadable = pipeline.production_read(model_store)
    recipe = None if unreadable else metrics_recipe(pipeline, trained_model, test_split, production)
    reused = _stored_metrics(context, recipe) if recipe else None
    if reused is not None:
        return dg.Output(
            reused,
            data_version=dg.DataVersion(recipe),
            metadata={
                "Reused": f"stored {context.partition_key} (same model, test split and production version)",
                **metrics_metadata(pipeline, reused),
                **run_link(context, pipeline, reused.mlflow_run_id),
            },
        )
    metrics, scored = _score(context, pipeline, trained_model, test_split)
    baseline = baseline_scores(pipeline, train_split, test_split)
    context.log.info(
        f"baseline {baseline.name} (fitted on the {len(train_split)} training rows): {metric}"
        f" {baseline.scores[metric]:.4f}"
        if metric in baseline.scores
        else f"baseline {baseline.name}: no {metric}"
    )
    metrics = metrics.with_(baseline=baseline)
    champion = champion_scores(step, trained_model, scored, production, unreadable)
    if champion and champion.compared and metric in champion.champion and metric in champion.challenger:
        context.log.info(
            f"on the {champion.rows} test rows new to both: champion {champion.version}"
            f" {metric} {champion.champion[metric]:.4f}, challenger {champion.challenger[metric]:.4f}"
        )
    metrics = metrics.with_(champion=champion, signature=signature_comparison(trained_model, production, unreadable))
    metrics, tracked = track_metrics(context, pipeline, trained_model, metrics)
    metadata = {**metrics_metadata(pipeline, metrics), **tracked}
    return dg.Output(metrics, metadata=metadata, data_version=dg.DataVersion(recipe) if recipe else None)


def build_model_metrics(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    classification = pipeline.task == "classification"

    @dg.asset(
        key=pipeline.key("model_metrics"),
        ins={
            "trained_model": dg.AssetIn(key=pipeline.key("trained_model")),
            "test_split": dg.AssetIn(key=pipeline.key("test_split")),
            # The do-nothing baseline is fitted on the same training rows as the model.
            "train_split": dg.AssetIn(key=pipeline.key("train_split")),
        },
        **pipeline.asset_options("evaluate", constants.ML_OWNER),
        io_manager_key="model_io_manager",
        kinds={"scikitlearn"},
        config_schema={},  # takes no config: any key given to it is refused before the run starts
        description=(
            "Accuracy, weighted precision/recall/F1, confusion matrix and report on the test split,"
            if classification
            else "R2, RMSE, MAE and residuals on the test split,"
        )
        + " each score per slice, and the production model's scores on the same rows.",
    )
    def model_metrics(
        context: dg.AssetExecutionContext,
        model_store: ModelStore,
        trained_model: TrainedModel,
        test_split: pd.DataFrame,
        train_split: pd.DataFrame,
    ) -> dg.Output[ModelMetrics]:
        with stage_timeout(context, pipeline, "evaluate"):
            return _model_metrics(Step(context, pipeline, model_store), trained_model, test_split, train_split)

    return model_metrics
