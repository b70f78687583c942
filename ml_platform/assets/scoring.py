"""Batch scoring: scoring_data[day] (unlabelled rows from the pipeline's scoring landing) and
predictions[day] (each row with the production model's prediction and, during a rollout, the open
candidate's beside it), with their checks."""

from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd

from ml_platform import constants
from ml_platform.assets.ingest import _ingest
from ml_platform.checked_model import CheckedModel, PredictionResult
from ml_platform.checks.data_quality import DRIFT_CHECK, drift_result
from ml_platform.errors import (
    MlPlatformError,
    NoProductionModelError,
    SignatureError,
    StorageUnavailableError,
)
from ml_platform.metadata import frame_table, rows_table
from ml_platform.resources.landing_zone import LandingZone
from ml_platform.resources.model_store import ModelStore, ModelVersion
from ml_platform.runtime import PipelineRuntime
from ml_platform.signature import check_rows
from ml_platform.timeouts import stage_timeout

SIGNATURE_CHECK = "rows_match_signature"


def build_scoring_data(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    spec = pipeline.spec.scoring

    @dg.asset(
        key=pipeline.key("scoring_data"),
        **pipeline.asset_options("ingest", constants.DATA_OWNER),
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"pandas"},
        config_schema={},
        description=f"One day's unlabelled rows of {pipeline.name} to score, read from {spec.landing}.",
    )
    def scoring_data(context: dg.AssetExecutionContext, landing_zone: LandingZone):
        with stage_timeout(context, pipeline, "ingest"):
            return _ingest(context, landing_zone.at(spec.landing), context.resources.io_manager)

    return scoring_data


def _production(pipeline: PipelineRuntime, model_store: ModelStore):
    """The production model of this moment, loaded and verified; a dg.Failure naming why not."""
    try:
        sklearn_model, version = model_store.load(pipeline.model_name)
    except StorageUnavailableError:
        raise
    except NoProductionModelError as exc:
        raise dg.Failure(description=f"nothing to score with: {exc}", allow_retries=False) from exc
    except MlPlatformError as exc:
        raise dg.Failure(description=f"the production model cannot be loaded: {exc}", allow_retries=False) from exc
    return CheckedModel(sklearn_model, version)


def build_scoring_checks(pipeline: PipelineRuntime) -> dg.AssetChecksDefinition:
    """rows_match_signature (blocking) and, with drift enabled, no_feature_drift (a warning)."""
    key = pipeline.key("scoring_data")
    specs = [
        dg.AssetCheckSpec(
            name=SIGNATURE_CHECK,
            asset=key,
            blocking=True,
            partitions_def=pipeline.partitions,
            description="The day's rows meet the production model's signature (columns, kinds); otherwise"
            " predictions does not run.",
        )
    ]
    if pipeline.spec.drift.enabled:
        specs.append(
            dg.AssetCheckSpec(
                name=DRIFT_CHECK,
                asset=key,
                blocking=False,
                partitions_def=pipeline.partitions,
                description="No feature of the day drifts from the last training data (a warning).",
            )
        )

    @dg.multi_asset_check(
        specs=specs,
        name=f"{pipeline.name}__scoring_data_checks",
        ins={"scoring_data": dg.AssetIn(key=key)},
        op_tags=pipeline.op_tags("ingest"),
    )
    def scoring_data_checks(context: dg.AssetCheckExecutionContext, model_store: ModelStore, scoring_data):
        with stage_timeout(context, pipeline, "ingest"):
            days = scoring_data if isinstance(scoring_data, dict) else {context.partition_key: scoring_data}
            production = pipeline.production(model_store, warn=context.log.warning)
            yield _signature_result(pipeline, production, days)
            if pipeline.spec.drift.enabled:
                yield drift_result(context, pipeline, model_store, production, days, key)

    return scoring_data_checks


def _signature_result(pipeline: PipelineRuntime, production: ModelVersion | None, days: dict[str, pd.DataFrame]):
    key = pipeline.key("scoring_data")
    signature = production.record.fit.signature if production else None
    if signature is None:
        return dg.AssetCheckResult(
            check_name=SIGNATURE_CHECK,
            asset_key=key,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"model {pipeline.model_name!r} has no production version with a signature to score with",
        )
    problems, reports = [], {}
    for day, frame in sorted(days.items()):
        try:
            _, reports[day] = check_rows(frame, signature)
        except SignatureError as exc:
            problems.append(f"{day}: {exc}" if len(days) > 1 else str(exc))
    report_rows = [
        {
            "Day": day,
            "Rows": r.rows,
            "Dropped columns": ", ".join(r.dropped_columns),
            "Nulls": sum(r.nulls.values()),
            "Unseen categories": sum(r.unseen_categories.values()),
        }
        for day, r in reports.items()
    ]
    description = (
        "; ".join(problems)
        if problems
        else (
            f"the columns of production {production.version}" + (f" on all {len(days)} days" if len(days) > 1 else "")
        )
    )
    return dg.AssetCheckResult(
        check_name=SIGNATURE_CHECK,
        asset_key=key,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "Production version": production.version,
            "Checked": rows_table(
                report_rows,
                [
                    ("Day", "string"),
                    ("Rows", "int"),
                    ("Dropped columns", "string"),
                    ("Nulls", "int"),
                    ("Unseen categories", "int"),
                ],
            ),
        },
    )


def build_predictions(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    classification = pipeline.task == "classification"

    @dg.asset(
        key=pipeline.key("predictions"),
        ins={"scoring_data": dg.AssetIn(key=pipeline.key("scoring_data"))},
        **pipeline.asset_options("evaluate", constants.ML_OWNER),
        kinds={"pandas", "scikitlearn"},
        config_schema={},
        description=f"Each scoring row of the day with the prediction of production {pipeline.model_name}"
        + (" and its class probabilities" if classification else "")
        + "; the version and sha256 that made them; during a rollout, the open candidate's beside them.",
    )
    def predictions(context: dg.AssetExecutionContext, model_store: ModelStore, scoring_data: pd.DataFrame):
        with stage_timeout(context, pipeline, "evaluate"):
            model = _production(pipeline, model_store)
            try:
                result = model.predict_with_report(scoring_data, proba=classification)
            except SignatureError as exc:
                raise dg.Failure(
                    description=f"scoring_data {context.partition_key}: {exc}", allow_retries=False
                ) from exc
            out = scoring_data.copy()
            out.insert(0, "request_id", row_ids(pipeline, scoring_data, str(context.partition_key)))
            out["version"] = result.version
            out["prediction"] = result.predictions
            if result.probabilities is not None:
                for label in result.probabilities.columns:
                    out[f"proba_{label}"] = result.probabilities[label].to_numpy()
            context.log.info(f"scored {len(out)} rows with {pipeline.model_name} {result.version}")
            for line in result.report.lines():
                context.log.warning(line)
            candidate = _candidate_score(pipeline, model_store, scoring_data, classification)
            beside = {} if candidate is None else _with_candidate(context, pipeline, out, candidate, result)
            return dg.Output(out, metadata={**_prediction_metadata(out, result, classification), **beside})

    return predictions


@dataclass
class CandidateScore:
    """The open candidate's answer on the day's rows: its version, its predictions (None when it could
    not score them), and why not."""

    version: str
    result: PredictionResult | None = None
    problem: str | None = None


def _candidate_score(
    pipeline: PipelineRuntime, model_store: ModelStore, rows: pd.DataFrame, classification: bool
) -> CandidateScore | None:
    """The open candidate of a rollout (``ModelStore.candidate``) on the rows, or None without one.

    Whatever keeps the candidate from scoring (its pointer unreadable, a version that does not load
    or verify, rows its signature refuses, its predict failing) comes back as ``problem``: production
    answers the day regardless. The signature check refuses a whole frame, so the candidate scores
    all of the rows or none of them."""
    try:
        pointer = model_store.candidate(pipeline.model_name)
    except Exception as exc:  # noqa: BLE001 - the candidate never fails the day: the reason is reported
        return CandidateScore("unknown", problem=f"its pointer cannot be read ({type(exc).__name__}: {exc})")
    if pointer is None:
        return None
    try:
        sklearn_model, version = model_store.load(pipeline.model_name, version=pointer.version)
        model = CheckedModel(sklearn_model, version)
        result = model.predict_with_report(rows, proba=classification and model.is_classifier)
    except Exception as exc:  # noqa: BLE001 - the candidate never fails the day: the reason is reported
        return CandidateScore(pointer.version, problem=f"{type(exc).__name__}: {exc}")
    return CandidateScore(pointer.version, result)


def _with_candidate(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    out: pd.DataFrame,
    candidate: CandidateScore,
    production: PredictionResult,
) -> dict:
    """Add the candidate's columns to ``out`` (``candidate_version``, ``candidate_prediction`` and,
    for a classifier, ``candidate_proba_<class>``; empty where it did not score) and return its
    metadata: the version, the rows it scored and, when it scored, how often it disagrees."""
    result = candidate.result
    metadata = {
        "Candidate version": candidate.version,
        "Candidate rows scored": float(0 if result is None else len(out)),
    }
    if result is None:
        context.log.warning(
            f"candidate {pipeline.model_name} {candidate.version} did not score the day's {len(out)} rows"
            f" ({candidate.problem}): its columns are empty, production's answers stand"
        )
        metadata["Candidate problem"] = candidate.problem
        out["candidate_version"] = None
        out["candidate_prediction"] = None
        labels = [] if production.probabilities is None else production.probabilities.columns
        for label in labels:
            out[f"candidate_proba_{label}"] = np.nan
        return metadata
    out["candidate_version"] = result.version
    out["candidate_prediction"] = result.predictions
    if result.probabilities is not None:
        for label in result.probabilities.columns:
            out[f"candidate_proba_{label}"] = result.probabilities[label].to_numpy()
    differ = np.asarray(out["prediction"] != out["candidate_prediction"])
    metadata["Disagreement with the candidate"] = float(differ.mean()) if len(out) else 0.0
    if pipeline.task != "classification" and len(out):
        gap = np.abs(out["prediction"].astype(float) - out["candidate_prediction"].astype(float))
        metadata["Mean absolute difference from the candidate"] = float(gap.mean())
    context.log.info(
        f"candidate {pipeline.model_name} {result.version} scored the {len(out)} rows too;"
        f" it disagrees with production on {int(differ.sum())}"
    )
    return metadata


def row_ids(pipeline: PipelineRuntime, rows: pd.DataFrame, day: str) -> list[str]:
    """Each scoring row's id: the values of ``scoring.id`` (present, one per row, none missing), or
    ``<day>-<row>``."""
    column = pipeline.spec.scoring.id if pipeline.spec.scoring else None
    if column is None:
        return [f"{day}-{i:06d}" for i in range(len(rows))]
    if column not in rows.columns:
        raise dg.Failure(
            description=f"scoring.id: {column!r} is not a column of scoring_data {day}", allow_retries=False
        )
    values = rows[column]
    if values.isna().any():
        first = int(values.isna().to_numpy().argmax())
        raise dg.Failure(
            description=f"scoring.id: {column!r} is missing on {int(values.isna().sum())} row(s) of {day}"
            f" (first: row {first})",
            allow_retries=False,
        )
    repeated = values[values.duplicated(keep=False)]
    if len(repeated):
        raise dg.Failure(
            description=f"scoring.id: {column!r} repeats {repeated.nunique()} value(s) on {day} (first:"
            f" {repeated.iloc[0]!r}): an id names one row",
            allow_retries=False,
        )
    return values.astype(str).tolist()


def _prediction_metadata(out: pd.DataFrame, result, classification: bool) -> dict:
    metadata = {
        "dagster/row_count": len(out),
        "Model version": result.version,
        "sha256": result.sha256,
        "Dropped columns": ", ".join(result.report.dropped_columns) or "-",
        "Nulls imputed": float(sum(result.report.nulls.values())),
        "Unseen categories": float(sum(result.report.unseen_categories.values())),
        "Preview": frame_table(out.head(constants.PREVIEW_ROWS)),
    }
    if classification:
        counts = out["prediction"].value_counts().sort_index()
        metadata["Predicted classes"] = rows_table(
            [{"Class": str(c), "Rows": int(n), "Share": float(n / len(out))} for c, n in counts.items()],
            [("Class", "string"), ("Rows", "int"), ("Share", "float")],
        )
    else:
        quantiles = out["prediction"].quantile([0.05, 0.25, 0.5, 0.75, 0.95])
        metadata["Mean prediction"] = float(out["prediction"].mean())
        metadata["Prediction quantiles"] = rows_table(
            [{"Quantile": f"p{int(q * 100)}", "Value": float(v)} for q, v in quantiles.items()],
            [("Quantile", "string"), ("Value", "float")],
        )
    return metadata
