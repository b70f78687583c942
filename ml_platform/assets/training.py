"""training_data, the train/test splits and trained_model."""

import time
from dataclasses import replace
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field, create_model

from ml_platform import constants
from ml_platform import drift as feature_drift
from ml_platform.assets.step import Step
from ml_platform.assets.stored_output import own_stored_output
from ml_platform.decision import decision_of
from ml_platform.decision import describe as describe_decision
from ml_platform.encoding import inferred_kind
from ml_platform.errors import DataValidationError
from ml_platform.estimators import ImportedEstimator, estimator_of
from ml_platform.instance_queries import check_verdicts, latest_data_version
from ml_platform.memory import release_freed_memory
from ml_platform.metadata import rows_table, signature_metadata
from ml_platform.metrics import GATE_METRICS
from ml_platform.ml import (
    CV_FOLDS,
    TrainedModel,
    encoding_recipe,
    feature_importances,
    features_and_target,
    fit_variant,
    fit_with_progress,
    frame_fingerprint,
    make_model,
    row_hashes,
    split,
    user_objects,
)
from ml_platform.partitions import training_window
from ml_platform.quality.results import names_text
from ml_platform.quality.rules import blocking_failures, evaluate, repeated_rows
from ml_platform.quality.schema import Schema, columns_agree, columns_used, schema_drift
from ml_platform.recipe import Fit, Recipe
from ml_platform.resources.io_managers import ALLOW_MISSING_PARTITIONS, PARTITIONS_AS_DICT
from ml_platform.resources.model_store import (
    ModelStore,
    ModelVersion,
    decode_drift_profile,
    decode_train_rows,
)
from ml_platform.retries import retried_when_unavailable
from ml_platform.runtime import DATE_DIMENSION, VARIANT_DIMENSION, PipelineRuntime
from ml_platform.signature import infer_signature
from ml_platform.timeouts import run_with_timeout, stage_timeout
from ml_platform.tracked import run_link, track_challenger, track_training
from ml_platform.user_code import requirements_of


class SplitConfig(dg.Config):
    """Base of each pipeline's split config: the fields of ``split`` in pipelines.yaml, defaulting to
    the values there (``split_config_class``)."""


def split_config_class(pipeline: PipelineRuntime) -> type[SplitConfig]:
    split = pipeline.spec.split
    fields = {
        "test_size": (
            float,
            Field(default=split.test_size, gt=0.0, lt=1.0, description="Share of rows held out for testing."),
        ),
        "random_state": (
            int,
            Field(default=split.random_state, description="Seed of the split: same seed, same split."),
        ),
        "stratify": (
            bool,
            Field(
                default=split.stratify,
                description="Classification: stratify on the target"
                " when every class has enough rows; false for a plain shuffled split.",
            ),
        ),
    }
    return create_model(f"{pipeline.class_prefix}SplitConfig", __base__=SplitConfig, **fields)


REFIT_DESCRIPTION = (
    "Fit again even when the model store holds a version of the same recipe (train split,"
    " estimator, params, code, library versions); recorded in the asset's metadata."
)


class TrainingConfig(dg.Config):
    """Base of each pipeline's training config: the estimator's parameters (ml_platform.estimators),
    defaulting to the values of pipelines.yaml, and ``refit``."""

    refit: bool = Field(default=False, description=REFIT_DESCRIPTION)


class VariantConfig(dg.Config):
    """variant_model takes its params from its partition (pipelines.yaml); only ``refit``."""

    refit: bool = Field(default=False, description=REFIT_DESCRIPTION)


def training_config_class(pipeline: PipelineRuntime) -> type[TrainingConfig]:
    estimator = estimator_of(pipeline.task, pipeline.spec.model.estimator)
    defaults = pipeline.spec.model.params
    fields = {}
    if isinstance(estimator, ImportedEstimator):
        # The team's estimator: the params pipelines.yaml gives it, each of its YAML type.
        for name, value in defaults.items():
            if isinstance(value, (bool, int, float, str)):
                fields[name] = (type(value), Field(default=value, description=f"{estimator.name} parameter."))
        return create_model(f"{pipeline.class_prefix}TrainingConfig", __base__=TrainingConfig, **fields)
    for name, info in estimator.params.model_fields.items():
        field = Field(
            default=defaults.get(name, info.default),
            description=info.description,
            **{k: getattr(m, k) for m in info.metadata for k in ("ge", "gt", "le", "lt") if hasattr(m, k)},
        )
        fields[name] = (info.annotation, field)
    return create_model(f"{pipeline.class_prefix}TrainingConfig", __base__=TrainingConfig, **fields)


def build_training_data(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    @dg.asset(
        key=pipeline.key("training_data"),
        **pipeline.asset_options("train", constants.ML_OWNER),
        ins={
            "raw_data": dg.AssetIn(
                key=pipeline.key("raw_data"),
                partition_mapping=training_window(pipeline.window_days),
                # Days without data (weekends, outages) are left out of the window, not fatal.
                metadata={ALLOW_MISSING_PARTITIONS: True, PARTITIONS_AS_DICT: True},
            )
        },
        kinds={"pandas"},
        config_schema={},  # takes no config: any key given to it is refused before the run starts
        description=f"The last {pipeline.window_days} days of raw_data that passed their data checks.",
    )
    def training_data(
        context: dg.AssetExecutionContext, model_store: ModelStore, raw_data: dict[str, pd.DataFrame]
    ) -> dg.Output[pd.DataFrame]:
        with stage_timeout(context, pipeline, "train"):
            with retried_when_unavailable(context, pipeline.settings):
                schema = pipeline.schema(pipeline.production(model_store, warn=context.log.warning))
            return _training_data(context, pipeline, schema, raw_data)

    return training_data


def _training_data(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    schema: Schema | None,
    raw_data: dict[str, pd.DataFrame],
) -> dg.Output[pd.DataFrame]:
    """The window's days that passed their checks (day D itself among them), with the schema's
    columns in one order, less the rows without a label and the repeated ones, counted per day."""
    used, excluded = _days_that_passed(context, pipeline, schema, raw_data)
    # A model as of day D must hold D's data: trained without it, it would only replace
    # production with a model of fewer days.
    as_of = context.partition_key
    if as_of not in used:
        reason = next((e["Reason"] for e in excluded if e["Day"] == as_of), "has not been materialized")
        raise DataValidationError(
            f"cannot train a model as of {as_of}: raw_data {as_of} {reason}; fix or add its landing"
            " file and ingest it again"
        )
    order, ignored = _window_columns(context, pipeline, schema, {day: raw_data[day] for day in used}, as_of)
    dropped = _rows_dropped(pipeline, {day: raw_data[day] for day in used})
    frame = pd.concat([raw_data[day].loc[~dropped[day]["mask"], order] for day in used], ignore_index=True)
    counts = [
        {
            "Day": day,
            "Rows": len(raw_data[day]),
            "Without label": dropped[day]["unlabelled"],
            "Duplicates": dropped[day]["repeated"],
            "Used": len(raw_data[day]) - int(dropped[day]["mask"].sum()),
        }
        for day in used
    ]
    for what, key in (("row(s) without a label", "Without label"), ("duplicate row(s)", "Duplicates")):
        if any(c[key] for c in counts):
            context.log.warning(
                f"dropped {sum(c[key] for c in counts)} {what}: "
                + ", ".join(f"{c['Day']}: {c[key]}" for c in counts if c[key])
            )
    context.log.info(f"training data: {len(frame)} rows from {len(used)} day(s): {', '.join(used)}")
    return dg.Output(frame, metadata=_training_metadata(pipeline, schema, frame, used, excluded, ignored, counts))


def _window_columns(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    schema: Schema | None,
    frames: dict[str, pd.DataFrame],
    as_of: str,
) -> tuple[list[str], dict[str, list[str]]]:
    """(the columns training takes, in one order for every day: the schema's, or with no schema yet
    the newest day's; the columns each day has outside them). Only the schema's columns reach
    training (when it is enforced); every day must have the same ones, each of one kind, or the
    concatenation would fill a column with nulls for the days that lack it, or turn numbers to text."""
    columns = {day: columns_used(frame, pipeline.target, schema) for day, frame in frames.items()}
    agree = columns_agree(columns)
    if not agree.passed:
        raise DataValidationError(
            f"the days of the {pipeline.window_days}-day window ending {as_of} disagree on their columns:"
            f" {agree.message}; make the landing files of those days agree and ingest them again"
        )
    ignored = {day: [str(c) for c in frame.columns if c not in columns[day]] for day, frame in frames.items()}
    ignored = {day: names for day, names in ignored.items() if names}
    for day, names in ignored.items():
        context.log.warning(f"raw_data {day}: ignored column(s) outside the schema: {names_text(names)}")
    order = columns[as_of]
    drift = schema_drift({day: frame[order] for day, frame in frames.items()})
    if not drift.passed:
        raise DataValidationError(
            f"schema drift in the {pipeline.window_days}-day window ending {as_of}: {drift.message};"
            " make the landing files agree and ingest them again"
        )
    return order, ignored


def _training_metadata(
    pipeline: PipelineRuntime,
    schema: Schema | None,
    frame: pd.DataFrame,
    used: list[str],
    excluded: list[dict],
    ignored: dict[str, list[str]],
    counts: list[dict],
) -> dict[str, Any]:
    """What the UI shows of training_data: the days used and left out, the schema, the rows each
    day gave and lost (without a label, repeated), the fingerprint."""
    dedupe = pipeline.spec.quality.dedupe
    return {
        "dagster/row_count": len(frame),
        "Days used": ", ".join(used),
        "Days in window": float(len(used)),
        "Days left out": rows_table(excluded, [("Day", "string"), ("Reason", "string")]),
        "Schema": schema.source
        if schema and schema.enforced
        else "the data's columns"
        + (f" (schema.evolve: true; production: {schema.source})" if schema else " (no model yet)"),
        "Ignored columns": rows_table(
            [{"Day": day, "Columns": ", ".join(names)} for day, names in ignored.items()],
            [("Day", "string"), ("Columns", "string")],
        ),
        "Rows without a label dropped": sum(c["Without label"] for c in counts),
        "Duplicate rows dropped": sum(c["Duplicates"] for c in counts),
        "Duplicates": (
            "off (quality.dedupe: false)"
            if not dedupe.enabled
            else f"the same {', '.join(dedupe.key)}"
            if dedupe.key
            else "equal in every landing column"
        ),
        "Rows per day": rows_table(
            counts,
            [("Day", "string"), ("Rows", "int"), ("Without label", "int"), ("Duplicates", "int"), ("Used", "int")],
        ),
        "Fingerprint": frame_fingerprint(frame),
    }


def _days_that_passed(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    schema: Schema | None,
    raw_data: dict[str, pd.DataFrame],
) -> tuple[list[str], list[dict[str, str]]]:
    """(the days of the window to train on, the days left out with why). The checks' own results
    decide (with the thresholds they ran with; a check that failed as a warning lets its day in);
    a day without a completed check result on its current data is checked here against the
    pipeline's contract."""
    used, excluded = [], []
    days = sorted(raw_data)
    verdicts = check_verdicts(context.instance, pipeline, days)
    contract = pipeline.contract()
    for day in days:
        failed_checks = verdicts.get(day)
        results = {}
        if failed_checks is None or failed_checks:  # judged here, or a reason to give
            results = {r.name: r for r in evaluate(raw_data[day], pipeline.target, schema, contract, pipeline.task)}
        if failed_checks is None:
            failed_checks = blocking_failures(list(results.values()))
        if failed_checks:
            # A day whose checks failed (in an earlier run) must not reach training.
            reason = "failed " + "; ".join(
                f"{name} ({results[name].message})" if name in results else name for name in failed_checks
            )
            context.log.warning(f"leaving out raw_data {day}: {reason}")
            excluded.append({"Day": day, "Reason": reason})
        else:
            used.append(day)
    if not used:
        raise DataValidationError(
            f"no usable raw_data in the {pipeline.window_days}-day window ending"
            f" {context.partition_key}: "
            + ("; ".join(f"{e['Day']}: {e['Reason']}" for e in excluded) or "no day is materialized")
        )
    return used, excluded


def _rows_dropped(pipeline: PipelineRuntime, frames: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """Per day: the mask of the rows training leaves out, and how many of them had no label and
    how many repeated an earlier row (``quality.dedupe``: in every landing column, those outside the
    schema too, or in the declared key; a row both unlabelled and repeated counts as unlabelled)."""
    dedupe = pipeline.spec.quality.dedupe
    repeated = (
        repeated_rows(frames, dedupe.key)
        if dedupe.enabled
        else {day: np.zeros(len(frame), dtype=bool) for day, frame in frames.items()}
    )
    dropped = {}
    for day, frame in frames.items():
        unlabelled = frame[pipeline.target].isna().to_numpy()
        dropped[day] = {
            "mask": unlabelled | repeated[day],
            "unlabelled": int(unlabelled.sum()),
            "repeated": int((repeated[day] & ~unlabelled).sum()),
        }
    return dropped


def build_splits(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    classification = pipeline.task == "classification"
    config_class = split_config_class(pipeline)

    @dg.multi_asset(
        name=pipeline.op("splits"),
        **pipeline.step_options("train"),
        ins={"training_data": dg.AssetIn(key=pipeline.key("training_data"))},
        outs={
            name: dg.AssetOut(
                key=pipeline.key(name),
                group_name=pipeline.name,
                kinds={"pandas"},
                owners=[constants.ML_OWNER],
                description=description,
                code_version=pipeline.spec.version,
            )
            for name, description in (
                ("train_split", "Rows the model is fitted on."),
                ("test_split", "Held-out rows the model is evaluated on."),
            )
        },
    )
    def splits(context: dg.AssetExecutionContext, config: config_class, training_data: pd.DataFrame):
        with stage_timeout(context, pipeline, "train"):
            yield from _splits(context, pipeline, config, training_data, classification)

    return splits


def _splits(context, pipeline: PipelineRuntime, config: SplitConfig, training_data: pd.DataFrame, classification: bool):
    """Train/test split; for classification stratified on the target (``split.stratify``) when every
    class has enough rows."""
    stratify = classification and config.stratify
    train, test, stratified = split(training_data, pipeline.target, config.test_size, config.random_state, stratify)
    if stratify and not stratified:
        context.log.warning("some target class has too few rows to stratify: split is not stratified")
    context.log.info(f"split {len(training_data)} rows: {len(train)} train, {len(test)} test")
    common = {"Stratified": stratified, "Test size": float(config.test_size)}
    yield dg.Output(train, output_name="train_split", metadata={"dagster/row_count": len(train), **common})
    yield dg.Output(test, output_name="test_split", metadata={"dagster/row_count": len(test), **common})


def build_trained_model(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    if pipeline.variants:
        return _build_best_variant(pipeline)
    config_class = training_config_class(pipeline)
    estimator = pipeline.spec.model.estimator

    @dg.asset(
        key=pipeline.key("trained_model"),
        ins={"train_split": dg.AssetIn(key=pipeline.key("train_split"))},
        **pipeline.asset_options("train", constants.ML_OWNER),
        io_manager_key="model_io_manager",
        kinds={"scikitlearn"},
        description="The model: a scikit-learn Pipeline of "
        + (f"your feature step {pipeline.spec.features.transform}, " if pipeline.spec.features.transform else "")
        + f"the encoding of each column by its kind (numbers imputed and scaled, categories encoded as {estimator}"
        " takes them) and the estimator.",
    )
    def trained_model(
        context: dg.AssetExecutionContext, config: config_class, model_store: ModelStore, train_split: pd.DataFrame
    ) -> dg.Output[TrainedModel]:
        # The file's params, with the run config's values over them (an imported estimator's
        # params that are not scalars have no run config field, but are still its params).
        params = {**pipeline.spec.model.params, **config.model_dump(exclude={"refit"})}
        step = Step(context, pipeline, model_store, context.partition_key, refit=config.refit)
        return _train(step, params, train_split)

    return trained_model


def build_variant_model(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    """One model per (day, variant): the variants of pipelines.yaml as static partitions, each
    fitted in its own run (so in parallel) on the day's train split and scored by cross-validation."""
    estimator = pipeline.spec.model.estimator
    metric = pipeline.spec.gate_metric

    @dg.asset(
        key=pipeline.key("variant_model"),
        ins={
            "train_split": dg.AssetIn(
                key=pipeline.key("train_split"),
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=DATE_DIMENSION),
            )
        },
        **pipeline.asset_options("train", constants.ML_OWNER, pipeline.variant_partitions),
        io_manager_key="model_io_manager",
        kinds={"scikitlearn"},
        description=f"{estimator} with one hyperparameter variant of pipelines.yaml, fitted on the"
        f" day's train split, scored by {CV_FOLDS}-fold cross-validation ({metric}).",
    )
    def variant_model(
        context: dg.AssetExecutionContext, config: VariantConfig, model_store: ModelStore, train_split: pd.DataFrame
    ) -> dg.Output[TrainedModel]:
        key = context.partition_key.keys_by_dimension
        variant = key[VARIANT_DIMENSION]
        step = Step(context, pipeline, model_store, key[DATE_DIMENSION], variant, config.refit)
        return _train(step, pipeline.variants[variant], train_split)

    return variant_model


def _build_best_variant(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    metric = pipeline.spec.gate_metric

    @dg.asset(
        key=pipeline.key("trained_model"),
        ins={
            "train_split": dg.AssetIn(key=pipeline.key("train_split")),
            "variant_model": dg.AssetIn(
                key=pipeline.key("variant_model"),
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=DATE_DIMENSION),
                metadata={ALLOW_MISSING_PARTITIONS: True, PARTITIONS_AS_DICT: True},
            ),
        },
        **pipeline.asset_options("train", constants.ML_OWNER),
        io_manager_key="model_io_manager",
        kinds={"scikitlearn"},
        config_schema={},
        description=f"The challenger: the best of the day's variant_model partitions by cross-validated {metric}.",
    )
    def trained_model(
        context: dg.AssetExecutionContext, train_split: pd.DataFrame, variant_model: dict[str, TrainedModel]
    ) -> dg.Output[TrainedModel]:
        return _best_variant(context, pipeline, train_split, variant_model)

    return trained_model


def _best_variant(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    train_split: pd.DataFrame,
    variants: dict[str, TrainedModel],
) -> dg.Output[TrainedModel]:
    metric = pipeline.spec.gate_metric
    higher_is_better = GATE_METRICS[pipeline.task][metric]
    day = context.partition_key
    by_name = {m.fit.variant: m for m in variants.values()}
    fingerprint = frame_fingerprint(train_split)
    missing = [v for v in pipeline.variants if v not in by_name]
    stale = [v for v, m in by_name.items() if v in pipeline.variants and m.recipe.data_fingerprint != fingerprint]
    if missing or stale:
        problems = []
        if missing:
            problems.append(f"not trained: {', '.join(missing)}")
        if stale:
            problems.append(f"trained on an older train split: {', '.join(stale)}")
        raise DataValidationError(
            f"cannot choose a challenger for {day}: variant_model {day} is incomplete ({'; '.join(problems)});"
            f" materialize those variant_model partitions ({day}|<variant>) first — the"
            f" {pipeline.name}_variants_sensor does it after each new train split"
        )
    ranked = sorted(pipeline.variants, key=lambda v: by_name[v].fit.cv_score, reverse=higher_is_better)
    best = by_name[ranked[0]]
    context.log.info(
        f"challenger: variant {ranked[0]} (cross-validated {metric} {best.fit.cv_score:.4f});"
        + "".join(f" {v}: {by_name[v].fit.cv_score:.4f};" for v in ranked[1:])
    )
    rows = [
        {"Variant": v, f"CV {metric}": round(by_name[v].fit.cv_score, 6), "Chosen": v == ranked[0]}
        for v in pipeline.variants
    ]
    return dg.Output(
        best,
        metadata={
            **track_challenger(context, pipeline, best),
            "Chosen variant": ranked[0],
            f"CV {metric}": float(best.fit.cv_score),
            "Variants": rows_table(rows, [("Variant", "string"), (f"CV {metric}", "float"), ("Chosen", "bool")]),
            **_model_metadata(best),
        },
    )


def _train(step: Step, params: dict, train_split: pd.DataFrame) -> dg.Output[TrainedModel]:
    """A model of this recipe: reused (from the model store, or this partition's stored output)
    unless the run config forces a refit, else fitted; recipe / reuse / fit / describe."""
    pipeline = step.pipeline
    x_train, y_train = features_and_target(train_split, pipeline.target)
    # The train stage has no retry policy by default: its reads of the store retry on their own.
    with retried_when_unavailable(step.context, pipeline.settings):
        model, recipe, kinds = _recipe(step, params, train_split, x_train)
        identity = recipe.identity
        reused, refit_note = _reused(step, identity)
    if reused is not None:
        return reused
    model, variant_score, fit_seconds = _fit(step, model, params, x_train, y_train)
    classes = (
        [c.item() if hasattr(c, "item") else c for c in model.classes_] if pipeline.task == "classification" else []
    )
    trained = TrainedModel(
        model=model,
        recipe=recipe,
        fit=Fit(
            classes=classes,
            training_rows=len(x_train),
            fit_seconds=fit_seconds,
            data_as_of=step.as_of,
            signature=infer_signature(x_train, pipeline.target, pipeline.task, classes, kinds),
            **variant_score,
        ),
        # Which rows it learnt from: champion / challenger later compares on rows it never saw; and
        # their profile, which the drift checks compare new days with once it serves.
        train_row_hashes=row_hashes(train_split),
        drift_profile=feature_drift.profile(train_split, pipeline.target),
    )
    metadata = {
        **_model_metadata(trained),
        **_variant_metadata(trained),
        **refit_note,
        **track_training(step.context, pipeline, trained, step.variant),
    }
    return dg.Output(trained, metadata=metadata, data_version=dg.DataVersion(identity))


def _recipe(
    step: Step, params: dict, train_split: pd.DataFrame, x_train: pd.DataFrame
) -> tuple[Any, Recipe, dict[str, str]]:
    """(the unfitted model, what it is built from (its recipe, known before the fit), the columns'
    declared kinds)."""
    pipeline = step.pipeline
    estimator = pipeline.spec.model.estimator
    # The columns' kinds, declared in pipelines.yaml or pinned by the production model, decide how
    # each is encoded (a store id declared categorical stays a category, a datetime its parts).
    kinds = _declared_kinds(step, x_train)
    encoding = pipeline.spec.features.encoding
    recipe_encoding = encoding_recipe(kinds, encoding.max_categories, encoding.min_frequency)
    decision = pipeline.spec.decision.model_dump() if pipeline.spec.decision is not None else None
    classes = list(pd.unique(train_split[pipeline.target].dropna())) if decision else None
    try:
        model = make_model(
            pipeline.task, estimator, params, pipeline.spec.features.transform, recipe_encoding, decision, classes
        )
    except DataValidationError:
        raise
    except (ValueError, TypeError) as exc:
        raise dg.Failure(description=f"{estimator} parameters: {exc}", allow_retries=False) from exc
    recipe = Recipe(
        data_fingerprint=frame_fingerprint(train_split),
        params=params,
        target=pipeline.target,
        feature_columns=[str(c) for c in x_train.columns],
        task=pipeline.task,
        estimator=estimator,
        pipeline_version=pipeline.spec.version,
        feature_transform=pipeline.spec.features.transform,
        requirements=requirements_of(*user_objects(model)),
        encoding=recipe_encoding,
        decision=decision,
    )
    return model, recipe, kinds


def _reused(step: Step, identity: str) -> tuple[dg.Output[TrainedModel] | None, dict[str, str]]:
    """(the model of this recipe, reused: the stored version of it for this day, or this partition's
    own stored output when Dagster recorded this recipe as its data version (a variant not chosen, a
    model the gate stopped); or None to fit, with a note when ``refit`` forced it)."""
    context = step.context
    same = _same_recipe(step, identity)
    kept = (
        same is None
        and latest_data_version(context.instance, context.asset_key, str(context.partition_key)) == identity
    )
    if not step.refit:
        if same is not None:
            return _reuse(step, same, identity), {}
        if kept:
            reused = _reuse_stored(step, identity)
            if reused is not None:
                return reused, {}
    if step.refit and (same is not None or kept):
        held = same.version if same is not None else f"the stored {context.partition_key}"
        context.log.info(f"refit forced by run config: {held} has the same recipe")
        return None, {"Refit": f"forced by run config ({held} has the same recipe)"}
    return None, {}


def _fit(
    step: Step, model: Any, params: dict, x_train: pd.DataFrame, y_train: pd.Series
) -> tuple[Any, dict[str, Any], float]:
    """(the fitted model, a variant's cross-validated score, seconds): with progress in the log, in
    a child process stopped after ``stages.train.timeout_s`` when there is one."""
    context, pipeline, variant = step.context, step.pipeline, step.variant
    context.log.info(
        f"fitting {type(model.named_steps['model']).__name__}"
        f"({', '.join(f'{k}={v}' for k, v in params.items())})"
        f" on {len(x_train)} rows x {x_train.shape[1]} columns"
    )
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        unit = "trees" if total > 1 else "fit"
        context.log.info(f"{unit} {done}/{total} ({time.perf_counter() - started:.1f} s)")

    metric = pipeline.spec.gate_metric
    if variant is None:
        fit, args = fit_with_progress, (model, x_train, y_train)
    else:
        context.log.info(f"variant {variant}: {CV_FOLDS}-fold cross-validation ({metric}), then the fit")
        fit, args = fit_variant, (model, x_train, y_train, metric, constants.DEFAULT_RANDOM_STATE)
    released = release_freed_memory()  # the fit is the run's peak: start it without what earlier steps freed
    if released:
        context.log.debug(f"gave {released} MB that earlier steps had freed back to the OS before the fit")
    timeout = pipeline.timeout_s("train")
    if timeout:
        context.log.info(f"fitting in a child process, stopped after {timeout:g} s (stages.train.timeout_s)")
        fitted = run_with_timeout(fit, args, timeout, report, (pipeline.name, "train"))
    else:
        fitted = fit(*args, report)
    variant_score: dict[str, Any] = {}  # the Fit's variant fields
    if variant is not None:
        fitted, score = fitted
        variant_score = {"variant": variant, "cv_metric": metric, "cv_score": score}
        context.log.info(f"variant {variant}: cross-validated {metric} {score:.4f}")
    fit_seconds = time.perf_counter() - started
    context.log.info(f"fitted in {fit_seconds:.2f} s")
    return fitted, variant_score, fit_seconds


def _declared_kinds(step: Step, x_train: pd.DataFrame) -> dict[str, str]:
    """The kinds of the training columns that pipelines.yaml declares or the production model's
    signature pins (the schema's) where they differ from what the column holds: what the encoding
    and the signature must be told. A kind the data shows anyway is left out, so that pinning the
    first model's kinds does not change the next model's recipe."""
    pipeline = step.pipeline
    schema = pipeline.schema(pipeline.production(step.model_store, warn=step.log.warning))
    kinds = dict(schema.kinds) if schema is not None else {}
    return {c: kinds[c] for c in map(str, x_train.columns) if c in kinds and kinds[c] != inferred_kind(x_train[c])}


def _same_recipe(step: Step, identity: str) -> ModelVersion | None:
    """The stored version built from this recipe for this day (a variant's with its CV score), or None."""
    found = step.model_store.find_version(step.pipeline.model_name, identity)
    if found is None or found.record.fit.data_as_of != step.as_of:
        return None
    if step.variant is not None and found.record.fit.cv_score is None:
        return None  # stored before versions recorded the score the choice needs
    return found


def _reuse(step: Step, version: ModelVersion, identity: str) -> dg.Output[TrainedModel]:
    """The stored model of the same recipe, loaded (sha256 verified) instead of fitted again."""
    context, pipeline, model_store = step.context, step.pipeline, step.model_store
    model, version = model_store.load(pipeline.model_name, version.version)
    record = version.record
    hashes = model_store.read_extra(version, constants.TRAIN_ROWS_FILENAME)
    profile = model_store.read_extra(version, constants.DRIFT_PROFILE_FILENAME)
    trained = TrainedModel(
        model=model,
        recipe=replace(record.recipe, task=record.recipe.task or pipeline.task),  # older records may not say
        fit=record.fit,
        train_row_hashes=decode_train_rows(hashes) if hashes is not None else None,
        drift_profile=decode_drift_profile(profile) if profile is not None else None,
        mlflow_run_id=record.mlflow_run_id,
        reused=version.version,
    )
    context.log.info(f"reused {version.version} (same recipe: train split, estimator, params, code): no fit")
    metadata = {
        "Reused": f"{version.version} (same recipe)",
        **_model_metadata(trained),
        **_variant_metadata(trained),
        **run_link(context, pipeline, trained.mlflow_run_id),
    }
    return dg.Output(trained, metadata=metadata, data_version=dg.DataVersion(identity))


def _reuse_stored(step: Step, identity: str) -> dg.Output[TrainedModel] | None:
    """This partition's stored output, when it is the model of this recipe; None (fit again, with a
    warning) when it cannot be read or is not."""
    context, pipeline = step.context, step.pipeline
    partition = str(context.partition_key)
    trained, unreadable = own_stored_output(context)
    problem = f"it {unreadable}" if unreadable else None
    if problem is None and not isinstance(trained, TrainedModel):
        problem = f"it holds {type(trained).__name__}"
    elif problem is None and (trained.identity != identity or trained.fit.data_as_of != step.as_of):
        problem = "its recipe differs from the one Dagster recorded"
    if problem is not None:
        context.log.warning(
            f"the stored model of {partition} has this recipe but cannot be reused: {problem}; fitting again"
        )
        return None
    context.log.info(
        f"reused the stored model of {partition} (same recipe: train split, estimator, params, code): no fit"
    )
    trained.reused = f"stored {partition}"
    metadata = {
        "Reused": f"stored {partition} (same recipe)",
        **_model_metadata(trained),
        **_variant_metadata(trained),
        **run_link(context, pipeline, trained.mlflow_run_id),
    }
    return dg.Output(trained, metadata=metadata, data_version=dg.DataVersion(identity))


def _variant_metadata(trained: TrainedModel) -> dict:
    """A variant_model's variant and cross-validated score; nothing for other models."""
    fit = trained.fit
    if fit.cv_score is None:
        return {}
    return {"Variant": fit.variant, f"CV {fit.cv_metric}": float(fit.cv_score)}


def _model_metadata(trained: TrainedModel) -> dict:
    """What the UI shows of a fitted model: size, fit time, params, classes, feature importances."""
    metadata = {
        "Training rows": trained.fit.training_rows,
        "Fit time (s)": float(trained.fit.fit_seconds or 0.0),
        "Estimator": trained.recipe.estimator,
        "Params": dg.MetadataValue.json(trained.recipe.params),
        "Data fingerprint": trained.recipe.data_fingerprint,
    }
    if trained.fit.classes:
        metadata["Classes"] = ", ".join(map(str, trained.fit.classes))
    decision = decision_of(trained.model)
    if decision is not None:
        metadata["Decision threshold"] = float(decision["threshold"])
        metadata["Decision"] = describe_decision(decision, trained.recipe.decision)
    if trained.fit.signature is not None:
        metadata.update(signature_metadata(trained.fit.signature))
    importances = feature_importances(trained.model)[: constants.TOP_FEATURE_IMPORTANCES]
    if importances:
        metadata["Feature importances"] = rows_table(
            [{"Feature": n, "Importance": round(v, 6)} for n, v in importances],
            [("Feature", "string"), ("Importance", "float")],
        )
    return metadata
