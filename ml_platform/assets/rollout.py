"""rollout[day]: the day's live evidence of a rollout, per model that predicted (production, the
candidate) and per pair that predicted the same rows: rows, refusals, p99 latency, the gate metric
on the labelled rows with its interval, the paired difference, the share of disagreement, and the
label-free estimate of accuracy before the labels arrive (ml_platform.rollout)."""

import functools
from typing import Any

import dagster as dg
import pandas as pd

from ml_platform import constants
from ml_platform import outcomes as outcomes_module
from ml_platform import rollout as evidence_rules
from ml_platform.asset_records import RolloutRecord, metric_key
from ml_platform.errors import MlPlatformError
from ml_platform.metadata import frame_table
from ml_platform.resources.io_managers import ALLOW_MISSING_PARTITIONS, PARTITIONS_AS_DICT
from ml_platform.resources.model_store import ModelStore
from ml_platform.runtime import PipelineRuntime
from ml_platform.timeouts import stage_timeout


def build_rollout(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    feedback = pipeline.spec.feedback
    ins = {"served": dg.AssetIn(key=pipeline.key("served"))}
    if feedback is not None:
        window = dg.TimeWindowPartitionMapping(
            start_offset=0, end_offset=feedback.max_delay_days, allow_nonexistent_upstream_partitions=True
        )
        ins["outcomes"] = dg.AssetIn(
            key=pipeline.key("outcomes"),
            partition_mapping=window,
            metadata={PARTITIONS_AS_DICT: True, ALLOW_MISSING_PARTITIONS: True},
        )
    options = {
        "key": pipeline.key("rollout"),
        "ins": ins,
        **pipeline.asset_options("evaluate", constants.ML_OWNER),
        "kinds": {"pandas", "scikitlearn"},
        "description": f"The day's live evidence of {pipeline.model_name}'s rollout: candidate beside production on"
        f" the same traffic ({pipeline.spec.gate_metric} on the labelled rows with intervals, the paired"
        " difference, disagreement, the label-free estimate of accuracy, refusals and p99 latency).",
    }
    if feedback is None:

        @dg.asset(**options)
        def rollout(context: dg.AssetExecutionContext, model_store: ModelStore, served: pd.DataFrame):
            return _rollout(context, pipeline, model_store, served, {})

        return rollout

    @dg.asset(**options)
    def rollout_with_outcomes(
        context: dg.AssetExecutionContext, model_store: ModelStore, served: pd.DataFrame, outcomes
    ):
        return _rollout(context, pipeline, model_store, served, outcomes)

    return rollout_with_outcomes


def _rollout(context, pipeline: PipelineRuntime, model_store: ModelStore, served: pd.DataFrame, outcomes: dict):
    with stage_timeout(context, pipeline, "evaluate"):
        day = context.partition_key
        labels = outcomes_module.latest_outcomes(outcomes, day)
        scoring = evidence_rules.Scoring(
            pipeline.task,
            pipeline.spec.gate_metric,
            functools.cache(lambda version: _classes(pipeline, model_store, version)),
            functools.cache(lambda version: _calibration(context, pipeline, model_store, version)),
            tuple(pipeline.spec.evaluation.slices),
            pipeline.spec.evaluation.bins,
        )
        evidence = evidence_rules.day_evidence(served, labels, scoring)
        table = evidence_table(evidence)
        for line in table.to_dict("records"):
            context.log.info(f"rollout {day}: {line['Role']} {line['Version']}: {_progress(line)}")
        return dg.Output(table, metadata=rollout_metadata(evidence, pipeline.spec.gate_metric))


def _progress(line: dict) -> str:
    scored = f"{line['Score']:.4f}" if line["Score"] == line["Score"] else "-"
    return f"{line['Rows']} rows, {line['Refused']} refused, {line['Labelled']} labelled, score {scored}"


def _classes(pipeline: PipelineRuntime, model_store: ModelStore, version: str) -> list | None:
    if pipeline.task != "classification":
        return None
    try:
        return list(model_store.get_version(pipeline.model_name, version).record.fit.classes) or None
    except MlPlatformError:
        return None


def _calibration(context, pipeline: PipelineRuntime, model_store: ModelStore, version: str):
    """The calibration the version was stored with (for the label-free estimate), or None."""
    from ml_platform.estimate import Calibration
    from ml_platform.resources.model_store import decode_calibration

    try:
        found = model_store.get_version(pipeline.model_name, version)
        stored = model_store.read_extra(found, constants.CALIBRATION_FILENAME)
    except (MlPlatformError, OSError) as exc:
        context.log.warning(f"rollout: no calibration of {version}: {exc}")
        return None
    return Calibration.from_dict(decode_calibration(stored)) if stored is not None else None


def evidence_table(evidence: evidence_rules.DayEvidence) -> pd.DataFrame:
    """One row per model that predicted on the day (the value people and the CLI read)."""
    rows = [
        {
            "Role": v.role,
            "Version": v.version,
            "Rows": v.rows,
            "Refused": v.refused,
            "Error rate": v.error_rate,
            "p99 ms": v.p99_ms,
            "Labelled": v.labelled,
            "Score": v.score,
            "Low": v.low,
            "High": v.high,
            "Estimated accuracy": v.estimate,
            "Estimate error": v.estimate_error,
            "Estimate trusted": v.estimate_trusted,
        }
        for v in evidence.versions
    ]
    columns = ["Role", "Version", "Rows", "Refused", "Error rate", "p99 ms", "Labelled", "Score", "Low", "High"]
    frame = pd.DataFrame(rows, columns=[*columns, "Estimated accuracy", "Estimate error", "Estimate trusted"])
    return frame.astype({"Score": "float64", "Low": "float64", "High": "float64"})


def rollout_metadata(evidence: evidence_rules.DayEvidence, metric: str) -> dict[str, Any]:
    """The evidence for the sensor (RolloutRecord), the day's numbers of the main candidate and of
    production as floats (the UI plots them day by day, side by side), and the tables."""
    metadata: dict[str, Any] = {**RolloutRecord(evidence.to_dict()).to_metadata()}
    label = metric_key(metric)
    for role in (evidence_rules.PRODUCTION, evidence_rules.CANDIDATE):
        main = max((v for v in evidence.versions if v.role == role), key=lambda v: v.rows, default=None)
        if main is not None:
            metadata.update(_numbers(role, main, label))
    if evidence.pairs:
        main_pair = max(evidence.pairs, key=lambda p: p.rows)
        if main_pair.disagreement is not None:
            metadata["Disagreement"] = float(main_pair.disagreement)
        if main_pair.difference is not None:
            metadata[f"{label}: candidate minus production"] = float(main_pair.difference)
    metadata["By model"] = frame_table(evidence_table(evidence))
    if evidence.pairs:
        metadata["Pairs"] = frame_table(pd.DataFrame([p.to_dict() for p in evidence.pairs]))
    if evidence.slices:
        metadata["By slice"] = frame_table(pd.DataFrame(evidence.slices))
    return metadata


def _numbers(role: str, main: evidence_rules.VersionEvidence, label: str) -> dict[str, Any]:
    """One model's day as floats, named ``Accuracy (candidate)``, ``Accuracy (production)`` …: the
    UI lists the plots by name, so each candidate's plot sits beside production's."""
    numbers: dict[str, Any] = {
        f"Version ({role})": main.version,
        f"Rows ({role})": float(main.rows),
        f"Labelled rows ({role})": float(main.labelled),
        f"Error rate ({role})": float(main.error_rate or 0.0),
    }
    optional = {
        f"p99 ms ({role})": main.p99_ms,
        f"{label} ({role})": main.score,
        f"Estimated accuracy ({role})": main.estimate,
    }
    numbers.update({key: float(value) for key, value in optional.items() if value is not None})
    return numbers
