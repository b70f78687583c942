"""The loop back from production: served[day], a day of the prediction log as an asset, with the
checks that say whether the traffic met the model's signature and looks like its training data."""

import dagster as dg
import pandas as pd

from ml_platform import constants, traffic
from ml_platform.checks.data_quality import DRIFT_CHECK, drift_reference, drift_summary
from ml_platform.errors import ModelStoreError
from ml_platform.metadata import rows_table
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
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"pandas"},
        check_specs=check_specs,
        description=f"The day's prediction log of {pipeline.model_name}: every answered or refused request of"
        " `ml-platform serve`, with requests, versions and latency.",
    )
    def served(context: dg.AssetExecutionContext, model_store: ModelStore):
        with stage_timeout(context, pipeline, "ingest"):
            days = context.partition_keys
            frames = {day: _read(context, pipeline, model_store, day) for day in days}
            frame = pd.concat(frames.values(), ignore_index=True) if len(frames) > 1 else frames[days[0]]
            summary = traffic.summarize(frame)
            yield dg.Output(frame, metadata=served_metadata(summary))
            yield signature_result(pipeline, summary)
            if pipeline.spec.drift.enabled:
                yield served_drift_result(context, pipeline, model_store, frames)

    return served


def _read(context, pipeline: PipelineRuntime, model_store: ModelStore, day: str) -> pd.DataFrame:
    frame = traffic.read_day(model_store.read_bytes, model_store.list_children, pipeline.model_name, day)
    context.log.info(f"served {day}: {len(frame)} logged row(s) of {pipeline.model_name}")
    return frame


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


def served_drift_result(context, pipeline: PipelineRuntime, model_store: ModelStore, frames: dict[str, pd.DataFrame]):
    """no_feature_drift of the served rows of each day against the training data of the version
    that answered most of them."""
    spec = pipeline.spec.drift
    rows_by_day, names = {}, set()
    for day, frame in frames.items():
        version = traffic.main_version(frame)
        if version is None:
            continue
        try:
            found = drift_reference(model_store, model_store.get_version(pipeline.model_name, version))
        except ModelStoreError as exc:
            context.log.warning(f"served {day}: no training profile of {version} to compare with: {exc}")
            continue
        if found is None:
            continue
        rows_by_day[day] = traffic.skew(found[0], frame, spec.method, spec.limit)
        names.add(found[1].removeprefix("production "))
    name = ", ".join(sorted(names)) if names else None
    result = drift_summary(context, pipeline, name, rows_by_day, pipeline.key("served"))
    if name is None:
        return dg.AssetCheckResult(
            check_name=DRIFT_CHECK,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description="no answered request with a training profile to compare with",
        )
    return result
