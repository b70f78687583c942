"""training_data, the train/test splits and trained_model."""

import time

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from ml_platform import constants, quality
from ml_platform.checks.data_quality import DataQualityConfig, check_verdicts
from ml_platform.errors import DataValidationError
from ml_platform.io_managers import PARTITIONS_AS_DICT
from ml_platform.metadata import rows_table
from ml_platform.ml import (
    TrainedModel,
    build_pipeline,
    feature_importances,
    features_and_target,
    fit_with_progress,
    frame_fingerprint,
    split,
)
from ml_platform.partitions import daily_partitions, training_window
from ml_platform.settings import load_settings

_settings = load_settings()


class SplitConfig(dg.Config):
    """The train/test split."""

    test_size: float = Field(
        default=constants.DEFAULT_TEST_SIZE, gt=0.0, lt=1.0, description="Share of rows held out for testing."
    )
    random_state: int = Field(
        default=constants.DEFAULT_RANDOM_STATE, description="Seed of the split: same seed, same split."
    )


class TrainingConfig(dg.Config):
    """Hyperparameters of the RandomForestClassifier."""

    n_estimators: int = Field(default=constants.DEFAULT_N_ESTIMATORS, ge=1, description="Number of trees.")
    max_depth: int | None = Field(
        default=constants.DEFAULT_MAX_DEPTH, description="Largest tree depth; null for unlimited."
    )
    random_state: int = Field(default=constants.DEFAULT_RANDOM_STATE, description="Seed of the forest.")
    n_jobs: int = Field(
        default=constants.DEFAULT_N_JOBS, description="Cores used to fit trees; -1 for all cores."
    )

    @field_validator("max_depth")
    @classmethod
    def _positive_depth(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("max_depth must be >= 1 or null")
        return value

    @field_validator("n_jobs")
    @classmethod
    def _valid_jobs(cls, value: int) -> int:
        if value == 0:
            raise ValueError("n_jobs must not be 0 (use -1 for all cores)")
        return value


@dg.asset(
    partitions_def=daily_partitions,
    ins={
        "raw_data": dg.AssetIn(
            partition_mapping=training_window(_settings.window_days),
            # Days without data (weekends, outages) are left out of the window, not fatal.
            metadata={"allow_missing_partitions": True, PARTITIONS_AS_DICT: True},
        )
    },
    group_name=constants.TRAINING_GROUP,
    kinds={"pandas"},
    owners=[constants.ML_OWNER],
    config_schema={},  # takes no config: any key given to it is refused before the run starts
)
def training_data(
    context: dg.AssetExecutionContext, raw_data: dict[str, pd.DataFrame]
) -> dg.Output[pd.DataFrame]:
    """The last N days of raw_data (N = ML_PLATFORM_WINDOW_DAYS) that passed their data checks."""
    used, excluded = [], []
    days = sorted(raw_data)
    # The checks' own results decide (with the thresholds they ran with); a day without a
    # completed check result on its current data is checked here with the default contract.
    verdicts = check_verdicts(context.instance, days)
    default_ratio = DataQualityConfig().max_null_ratio
    for day in days:
        results = {
            r.name: r
            for r in quality.evaluate(
                raw_data[day], _settings.target_column, _settings.feature_columns, default_ratio
            )
        }
        failed_checks = verdicts.get(day)
        if failed_checks is None:
            failed_checks = [name for name, r in results.items() if not r.passed]
        if failed_checks:
            # A day whose checks failed (in an earlier run) must not reach training.
            reason = "failed " + "; ".join(f"{name} ({results[name].message})" for name in failed_checks)
            context.log.warning(f"leaving out raw_data {day}: {reason}")
            excluded.append({"Day": day, "Reason": reason})
        else:
            used.append(day)
    if not used:
        raise DataValidationError(
            f"no usable raw_data in the {_settings.window_days}-day window ending"
            f" {context.partition_key}: "
            + ("; ".join(f"{e['Day']}: {e['Reason']}" for e in excluded) or "no day is materialized")
        )
    # A model as of day D must hold D's data: trained without it, it would only replace
    # production with a model of fewer days.
    as_of = context.partition_key
    if as_of not in used:
        reason = next((e["Reason"] for e in excluded if e["Day"] == as_of), "has not been materialized")
        raise DataValidationError(
            f"cannot train a model as of {as_of}: raw_data {as_of} {reason}; fix or add its landing"
            " file and ingest it again"
        )
    drift = quality.schema_drift({day: raw_data[day] for day in used})
    if not drift.passed:
        raise DataValidationError(
            f"schema drift in the {_settings.window_days}-day window ending {as_of}: {drift.message};"
            " make the landing files agree and ingest them again"
        )
    frame = pd.concat([raw_data[day] for day in used], ignore_index=True)
    # Exact duplicate rows (a batch delivered twice, within a day or across days) are dropped,
    # keeping the first: they would weigh double and could sit on both sides of the split.
    duplicates = quality.duplicate_rows(frame)
    if duplicates.any():
        row_days = pd.Series(np.repeat(used, [len(raw_data[day]) for day in used]))
        per_day = row_days[duplicates].value_counts().sort_index()
        context.log.warning(
            f"dropped {int(duplicates.sum())} duplicate row(s): "
            + ", ".join(f"{day}: {count}" for day, count in per_day.items())
        )
        frame = frame[~duplicates].reset_index(drop=True)
    context.log.info(f"training data: {len(frame)} rows from {len(used)} day(s): {', '.join(used)}")
    return dg.Output(
        frame,
        metadata={
            "dagster/row_count": len(frame),
            "Days used": ", ".join(used),
            "Days in window": float(len(used)),
            "Days left out": rows_table(excluded, [("Day", "string"), ("Reason", "string")]),
            "Duplicate rows dropped": int(duplicates.sum()),
            "Fingerprint": frame_fingerprint(frame),
        },
    )


@dg.multi_asset(
    partitions_def=daily_partitions,
    outs={
        "train_split": dg.AssetOut(
            group_name=constants.TRAINING_GROUP,
            kinds={"pandas"},
            owners=[constants.ML_OWNER],
            description="Rows the model is fitted on.",
        ),
        "test_split": dg.AssetOut(
            group_name=constants.TRAINING_GROUP,
            kinds={"pandas"},
            owners=[constants.ML_OWNER],
            description="Held-out rows the model is evaluated on.",
        ),
    },
)
def splits(context: dg.AssetExecutionContext, config: SplitConfig, training_data: pd.DataFrame):
    """Train/test split, stratified on the target when every class has enough rows."""
    train, test, stratified = split(
        training_data, _settings.target_column, config.test_size, config.random_state
    )
    if not stratified:
        context.log.warning("some target class has too few rows to stratify: split is not stratified")
    context.log.info(f"split {len(training_data)} rows: {len(train)} train, {len(test)} test")
    common = {"Stratified": stratified, "Test size": float(config.test_size)}
    yield dg.Output(train, output_name="train_split", metadata={"dagster/row_count": len(train), **common})
    yield dg.Output(test, output_name="test_split", metadata={"dagster/row_count": len(test), **common})


@dg.asset(
    partitions_def=daily_partitions,
    io_manager_key="model_io_manager",
    group_name=constants.TRAINING_GROUP,
    kinds={"scikitlearn"},
    owners=[constants.ML_OWNER],
)
def trained_model(
    context: dg.AssetExecutionContext, config: TrainingConfig, train_split: pd.DataFrame
) -> dg.Output[TrainedModel]:
    """A scikit-learn Pipeline (imputation, scaling, one-hot encoding, random forest)."""
    params = config.model_dump()
    x_train, y_train = features_and_target(train_split, _settings.target_column)
    pipeline = build_pipeline(**params)
    context.log.info(
        f"fitting RandomForestClassifier({', '.join(f'{k}={v}' for k, v in params.items())})"
        f" on {len(x_train)} rows x {x_train.shape[1]} columns"
    )
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        context.log.info(f"trees {done}/{total} ({time.perf_counter() - started:.1f} s)")

    fit_with_progress(pipeline, x_train, y_train, report)
    fit_seconds = time.perf_counter() - started
    context.log.info(f"fitted in {fit_seconds:.2f} s")

    model = TrainedModel(
        pipeline=pipeline,
        params=params,
        target=_settings.target_column,
        feature_columns=[str(c) for c in x_train.columns],
        classes=[c.item() if hasattr(c, "item") else c for c in pipeline.classes_],
        training_rows=len(x_train),
        data_fingerprint=frame_fingerprint(train_split),
        fit_seconds=fit_seconds,
        data_as_of=context.partition_key,
    )
    importances = feature_importances(pipeline)[: constants.TOP_FEATURE_IMPORTANCES]
    return dg.Output(
        model,
        metadata={
            "Training rows": len(x_train),
            "Fit time (s)": float(fit_seconds),
            "Params": dg.MetadataValue.json(params),
            "Classes": ", ".join(map(str, model.classes)),
            "Feature importances": rows_table(
                [{"Feature": n, "Importance": round(v, 6)} for n, v in importances],
                [("Feature", "string"), ("Importance", "float")],
            ),
            "Data fingerprint": model.data_fingerprint,
        },
    )
