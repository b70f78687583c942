"""The loop back from production: served[day], a day of the prediction log as an asset, with the
checks that say whether the traffic met the model's signature and looks like its training data;
outcomes[day], the true labels that arrived on a day; live_metrics[day], the day's predictions
scored on the labels that have arrived for them."""

import dagster as dg
import pandas as pd

from ml_platform import constants, traffic
from ml_platform import outcomes as outcomes_module
from ml_platform.asset_records import LiveMetricsRecord, OutcomesRecord
from ml_platform.checks.data_quality import DRIFT_CHECK, drift_reference, drift_summary
from ml_platform.errors import FeedbackError, LandingFileError, ModelStoreError, StorageAccessError
from ml_platform.metadata import frame_table, rows_table
from ml_platform.metrics import METRIC_LABELS
from ml_platform.resources.io_managers import ALLOW_MISSING_PARTITIONS, PARTITIONS_AS_DICT
from ml_platform.resources.landing_zone import LandingZone
from ml_platform.resources.model_store import ModelStore
from ml_platform.runtime import PipelineRuntime
from ml_platform.timeouts import stage_timeout

SERVED_SIGNATURE_CHECK = "served_rows_match_signature"


def build_served(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    monitoring = pipeline.spec.monitoring
    key = pipeline.key("served")
    check_specs = [
        dg.AssetCheckSpec(
            name=SERVED_SIGNATURE_CHECK,
            asset=key,
            description=f"At least {monitoring.min_signature_share:.0%} of the day's served rows met the model's"
            " signature (the rest were refused with a 422).",
        )
    ]
    if pipeline.spec.drift.enabled:
        check_specs.append(
            dg.AssetCheckSpec(
                name=DRIFT_CHECK,
                asset=key,
                description="No feature of the day's served rows drifts from the data the model that answered them"
                " was trained on (training/serving skew; a warning).",
            )
        )

    @dg.asset(
        key=key,
        **pipeline.asset_options("ingest", constants.ML_OWNER),
        kinds={"pandas"},
        check_specs=check_specs,
        description=f"The day's prediction log of {pipeline.model_name}: every answered or refused request of"
        " `ml-platform serve`, with requests, versions and latency.",
    )
    def served(context: dg.AssetExecutionContext, model_store: ModelStore):
        with stage_timeout(context, pipeline, "ingest"):
            day = context.partition_key
            frame = traffic.read_day(model_store.read_bytes, model_store.list_children, pipeline.model_name, day)
            context.log.info(f"served {day}: {len(frame)} logged row(s) of {pipeline.model_name}")
            summary = traffic.summarize(frame)
            metadata = served_metadata(summary)
            # The value holds every logged row: the answers, and a rollout candidate's predictions.
            metadata["dagster/row_count"] = len(frame)
            if len(frame) > summary.rows:
                metadata["Candidate rows"] = float(len(frame) - summary.rows)
            yield dg.Output(frame, metadata=metadata)
            yield signature_result(pipeline, summary)
            if pipeline.spec.drift.enabled:
                yield served_drift_result(context, pipeline, model_store, day, frame)

    return served


def served_metadata(summary: traffic.DaySummary) -> dict:
    """The day's numbers as floats (the UI plots them across partitions) and its tables."""
    metadata = {
        "dagster/row_count": summary.rows,
        "Requests": float(summary.requests),
        "Rows": float(summary.rows),
        "Refused rows": float(summary.refused_rows),
        "Rows meeting the signature": float(summary.signature_share),
        **{f"Latency {name} ms": value for name, value in summary.latency_ms.items()},
        "Versions": rows_table(
            summary.versions, [("Version", "string"), ("Requests", "int"), ("Rows", "int"), ("p50 ms", "float")]
        ),
    }
    if summary.refusals:
        metadata["Refusals"] = rows_table(summary.refusals, [("Reason", "string"), ("Requests", "int")])
    return metadata


def signature_result(pipeline: PipelineRuntime, summary: traffic.DaySummary) -> dg.AssetCheckResult:
    least = pipeline.spec.monitoring.min_signature_share
    share = summary.signature_share
    passed = share >= least
    description = (
        f"{share:.2%} of {summary.rows} served row(s) met the signature"
        + ("" if passed else f", below {least:.0%}")
        + (f"; most refused: {summary.refusals[0]['Reason']}" if summary.refusals and not passed else "")
    )
    return dg.AssetCheckResult(
        check_name=SERVED_SIGNATURE_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description if summary.rows else "no request was logged on the day",
        metadata={"Share": float(share), "Least share": float(least), "Refused rows": float(summary.refused_rows)},
    )


def served_skew(
    model_store: ModelStore, model: str, frame: pd.DataFrame, method: str, threshold: float
) -> tuple[list[dict], str] | None:
    """drift.compare of a day's answered rows with the training profile of the version that
    answered most of them, and that version's name; None without an answered row or a profile.
    A version that cannot be read raises ModelStoreError. served[day]'s check and ``ml-platform
    monitor`` both use it."""
    version = traffic.main_version(frame)
    if version is None:
        return None
    found = drift_reference(model_store, model_store.get_version(model, version), role="")
    return None if found is None else (traffic.skew(found[0], frame, method, threshold), found[1])


def served_drift_result(context, pipeline: PipelineRuntime, model_store: ModelStore, day: str, frame: pd.DataFrame):
    """no_feature_drift of the day's served rows against the training data of the version that
    answered most of them."""
    spec = pipeline.spec.drift
    try:
        found = served_skew(model_store, pipeline.model_name, frame, spec.method, spec.limit)
    except ModelStoreError as exc:
        context.log.warning(f"served {day}: no training profile to compare with: {exc}")
        found = None
    if found is None:
        return dg.AssetCheckResult(
            check_name=DRIFT_CHECK,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description="no answered request with a training profile to compare with",
        )
    rows, name = found
    return drift_summary(context, pipeline, name, {day: rows}, pipeline.key("served"))


def build_outcomes(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    feedback = pipeline.spec.feedback
    key = pipeline.key("outcomes")
    said = {
        outcomes_module.IDS_KNOWN: "Every outcome names a prediction the server answered in the"
        f" {feedback.max_delay_days} days before (feedback.max_delay_days).",
        outcomes_module.IDS_UNIQUE: "Each prediction has one outcome in the day's file.",
        outcomes_module.LABELS_MATCH: "Every label is of the target's kind: a class of"
        f" {pipeline.model_name}, or a number for a regression.",
    }
    check_specs = [dg.AssetCheckSpec(name=n, asset=key, blocking=True, description=d) for n, d in said.items()]

    @dg.asset(
        key=key,
        **pipeline.asset_options("ingest", constants.DATA_OWNER),
        kinds={"pandas"},
        check_specs=check_specs,
        description=f"The true labels of served predictions that arrived on the day, read from {feedback.landing}"
        f" and matched to the prediction log by {feedback.id}; a bad file changes nothing.",
    )
    def outcomes_of_day(context: dg.AssetExecutionContext, landing_zone: LandingZone, model_store: ModelStore):
        with stage_timeout(context, pipeline, "ingest"):
            day = context.partition_key
            try:
                raw, landing_file = landing_zone.at(feedback.landing).read(day)
            except (LandingFileError, StorageAccessError) as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from exc
            checked = _checked_outcomes(context, pipeline, model_store, raw, day)
            for name in outcomes_module.CHECKS:
                problem = checked.problems.get(name)
                yield dg.AssetCheckResult(
                    check_name=name,
                    passed=problem is None,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description=problem or f"all {checked.rows} outcome(s) of {landing_file.location}",
                )
            if checked.problems:
                # Nothing is stored: live_metrics never reads a file that is partly wrong.
                raise dg.Failure(
                    description=f"outcomes {day} ({landing_file.location}): " + "; ".join(checked.problems.values()),
                    allow_retries=False,
                )
            yield dg.Output(checked.frame, metadata=outcomes_metadata(checked.frame, landing_file.location))

    return outcomes_of_day


def _checked_outcomes(context, pipeline: PipelineRuntime, model_store: ModelStore, raw: pd.DataFrame, day: str):
    feedback = pipeline.spec.feedback
    production = pipeline.production(model_store, warn=context.log.warning)
    classes = None
    if pipeline.task == "classification":
        if production is None:
            raise dg.Failure(
                description=f"outcomes {day}: {pipeline.model_name} has no production version whose classes the"
                " labels could be checked against",
                allow_retries=False,
            )
        classes = list(production.record.fit.classes)
    searched = outcomes_module.days_back(day, feedback.max_delay_days)
    known = outcomes_module.logged_ids(model_store.read_bytes, model_store.list_children, pipeline.model_name, searched)
    context.log.info(f"outcomes {day}: {len(raw)} row(s); the log of {len(searched)} day(s) holds {len(known)} ids")
    try:
        return outcomes_module.check_outcomes(raw, feedback.id, pipeline.spec.target, day, classes, known)
    except FeedbackError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def outcomes_metadata(frame: pd.DataFrame, location: str) -> dict:
    days = frame["prediction_day"].value_counts().sort_index()
    return {
        "dagster/row_count": len(frame),
        "Outcomes": float(len(frame)),
        "Source": location,
        # The late-label sensor reads this to re-materialize live_metrics of these days.
        **OutcomesRecord(tuple(days.index)).to_metadata(),
        "Outcomes per day labelled": rows_table(
            [{"Day": str(d), "Outcomes": int(n)} for d, n in days.items()], [("Day", "string"), ("Outcomes", "int")]
        ),
    }


def build_live_metrics(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    feedback = pipeline.spec.feedback
    gate = pipeline.spec.gate_metric
    window = dg.TimeWindowPartitionMapping(
        start_offset=0, end_offset=feedback.max_delay_days, allow_nonexistent_upstream_partitions=True
    )

    @dg.asset(
        key=pipeline.key("live_metrics"),
        ins={
            "served": dg.AssetIn(key=pipeline.key("served")),
            "outcomes": dg.AssetIn(
                key=pipeline.key("outcomes"),
                partition_mapping=window,
                metadata={PARTITIONS_AS_DICT: True, ALLOW_MISSING_PARTITIONS: True},
            ),
        },
        **pipeline.asset_options("evaluate", constants.ML_OWNER),
        kinds={"pandas", "scikitlearn"},
        description=f"{pipeline.model_name}'s live scores on the day's served predictions whose outcomes have"
        f" arrived (up to {feedback.max_delay_days} days later), per version: the share labelled, the label"
        f" delay, the task's metrics and the 95 % interval of {gate}.",
    )
    def live_metrics(context: dg.AssetExecutionContext, model_store: ModelStore, served: pd.DataFrame, outcomes):
        with stage_timeout(context, pipeline, "evaluate"):
            day = context.partition_key
            labels = outcomes_module.latest_outcomes(outcomes, day)
            classes = _classes(pipeline, model_store, served)
            table = outcomes_module.live_scores(served, labels, day, pipeline.task, classes, gate)
            overall = table.iloc[0].to_dict() if len(table) else {}
            context.log.info(
                f"live_metrics {day}: {overall.get('Labelled', 0)} of {overall.get('Rows', 0)} answered row(s)"
                f" labelled; {gate} {overall.get(gate, float('nan')):.4f}"
            )
            return dg.Output(table, metadata=live_metadata(table, gate))

    return live_metrics


def _classes(pipeline: PipelineRuntime, model_store: ModelStore, served: pd.DataFrame) -> list | None:
    """The classes of the version that answered most of the day (a regression: None)."""
    if pipeline.task != "classification":
        return None
    version = traffic.main_version(served) if len(served) else None
    if version is None:
        return None
    return list(model_store.get_version(pipeline.model_name, version).record.fit.classes) or None


def live_metadata(table: pd.DataFrame, gate: str) -> dict:
    """The overall row's numbers as floats (the UI plots them day by day) and the table per version."""
    overall = table.iloc[0].to_dict() if len(table) else {}
    scores = {m: float(overall[m]) for m in table.columns if m in METRIC_LABELS and overall.get(m) == overall.get(m)}
    record = LiveMetricsRecord(
        answered_rows=int(overall.get("Rows", 0)),
        labelled_rows=int(overall.get("Labelled", 0)),
        labelled_share=float(overall.get("Labelled share", 0.0)),
        scores=scores,
    )
    metadata = {"dagster/row_count": len(table), **record.to_metadata()}
    if overall.get("Median label delay (days)") == overall.get("Median label delay (days)"):  # not NaN
        metadata["Median label delay (days)"] = float(overall["Median label delay (days)"])
    metadata["By version"] = frame_table(table)
    return metadata
