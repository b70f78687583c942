"""Blocking data-quality checks on each raw_data partition (the rules live in quality.py)."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
from pydantic import Field

from ml_platform import constants, quality
from ml_platform.errors import ModelStoreError
from ml_platform.metadata import rows_table
from ml_platform.resources.model_store import ModelStore, ModelVersion, decode_drift_profile
from ml_platform.runtime import PipelineRuntime
from ml_platform.timeouts import stage_timeout


class DataQualityConfig(dg.Config):
    """Thresholds of the data contract."""

    max_null_ratio: float = Field(
        default=constants.DEFAULT_MAX_NULL_RATIO,
        ge=0.0,
        le=1.0,
        description="Largest share of nulls allowed in any column of one day's data.",
    )


DRIFT_CHECK = "no_feature_drift"


def build_raw_data_quality(pipeline: "PipelineRuntime") -> dg.AssetChecksDefinition:
    """The data contract of one pipeline's raw_data, one blocking check per rule, and the drift
    check (WARN, not blocking) when the pipeline's drift is enabled."""
    key = pipeline.key("raw_data")
    names = quality.rule_names(pipeline.task)
    drift_spec = pipeline.spec.drift
    specs = [
        dg.AssetCheckSpec(
            name=name,
            asset=key,
            blocking=True,
            description=quality.RULE_DESCRIPTIONS[name],
            partitions_def=pipeline.partitions,
        )
        for name in names
    ]
    if drift_spec.enabled:
        specs.append(dg.AssetCheckSpec(
            name=DRIFT_CHECK,
            asset=key,
            blocking=False,
            description=f"No feature drifts from the last training data ({drift_spec.method.upper()} over"
            f" {drift_spec.limit:g}, per feature); a warning, and {drift_spec.sustained_days} drifting days"
            " in a row make the drift sensor retrain.",
            partitions_def=pipeline.partitions,
        ))

    @dg.multi_asset_check(
        specs=specs,
        # The data is loaded once for all five rules.
        name=f"{pipeline.name}__raw_data_quality",
        ins={"raw_data": dg.AssetIn(key=key)},
        op_tags=pipeline.op_tags("ingest"),
    )
    def raw_data_quality(
        context: dg.AssetCheckExecutionContext, config: DataQualityConfig, model_store: ModelStore, raw_data
    ) -> Iterator[dg.AssetCheckResult]:
        """Runs the data contract on each day; any failure stops training in the same run."""
        with stage_timeout(context, pipeline, "ingest"):
            production = pipeline.production(model_store, warn=context.log.warning)
            yield from _run_rules(context, pipeline, config, pipeline.schema(production), raw_data)
            if drift_spec.enabled:
                days = raw_data if isinstance(raw_data, dict) else {context.partition_key: raw_data}
                yield drift_result(context, pipeline, model_store, production, days, key)

    return raw_data_quality


def _run_rules(
    context: dg.AssetCheckExecutionContext,
    pipeline: "PipelineRuntime",
    config: DataQualityConfig,
    schema: quality.Schema | None,
    raw_data,
) -> Iterator[dg.AssetCheckResult]:
    if isinstance(raw_data, pd.DataFrame):  # one day; a range run hands over {day: frame}
        raw_data = {context.partition_key: raw_data}
    names = quality.rule_names(pipeline.task)
    results_by_rule: dict[str, list[tuple[str, quality.RuleResult]]] = {n: [] for n in names}
    for day, frame in sorted(raw_data.items()):
        for result in quality.evaluate(frame, pipeline.target, schema, config.max_null_ratio, pipeline.task):
            results_by_rule[result.name].append((day, result))
            if result.passed and result.warning:
                context.log.warning(f"raw_data {day} check {result.name}: {result.message}")

    for name, day_results in results_by_rule.items():
        failed = [(day, r) for day, r in day_results if not r.passed]
        if len(day_results) == 1:
            day, result = day_results[0]
            message, metadata = result.message, dict(result.metadata)
        else:
            warned = [(day, r) for day, r in day_results if r.passed and r.warning]
            message = (
                "; ".join(f"{day}: {r.message}" for day, r in failed)
                if failed
                else f"passed on all {len(day_results)} days"
                + "".join(f"; {day}: {r.message}" for day, r in warned)
            )
            metadata = {"Days checked": len(day_results), "Days failed": len(failed)}
        if failed:
            context.log.error(f"raw_data check {name} failed: {message}")
        yield dg.AssetCheckResult(
            check_name=name,
            asset_key=pipeline.key("raw_data"),
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=message,
            metadata={**metadata, "Result": message},
        )


def drift_reference(model_store: ModelStore, production: ModelVersion | None) -> tuple[dict, str] | None:
    """The drift profile of the data the production model was trained on (stored with its version)
    and a name for it, or None before the first model (or for a version stored without one)."""
    if production is None:
        return None
    try:
        data = model_store.read_extra(production, constants.DRIFT_PROFILE_FILENAME)
    except (ModelStoreError, FileNotFoundError, ValueError):
        return None  # a profile that cannot be read: nothing to compare with (the gate says why)
    if data is None:
        return None
    as_of = production.metadata.get("data_as_of")
    return decode_drift_profile(data), f"production {production.version}" + (f" (data as of {as_of})" if as_of else "")


def drift_result(context, pipeline: "PipelineRuntime", model_store: ModelStore, production: ModelVersion | None,
                 days: dict[str, pd.DataFrame], asset_key: dg.AssetKey) -> dg.AssetCheckResult:
    """The no_feature_drift check of ``asset_key`` (raw_data, or scoring_data) over ``days``, against
    the training data of the production model."""
    from ml_platform import drift

    spec = pipeline.spec.drift
    found = drift_reference(model_store, production)
    if found is None:
        return dg.AssetCheckResult(
            check_name=DRIFT_CHECK, asset_key=asset_key, passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description="no production model yet to compare with", metadata={"Method": spec.method},
        )
    reference, name = found
    drifted_days, table, worst = [], [], None
    for day, frame in sorted(days.items()):
        rows = drift.compare(reference, frame, spec.method, spec.limit)
        drifted = [r["Feature"] for r in rows if r["Drifted"]]
        if drifted:
            drifted_days.append(f"{day}: {', '.join(drifted[:5])}" + (" …" if len(drifted) > 5 else ""))
        if worst is None or len(drifted) > worst[0]:
            worst, table = (len(drifted), day), rows
    message = (
        f"drift against the training data of {name} in " + "; ".join(drifted_days)
        if drifted_days
        else f"no feature drifts from the training data of {name}"
        f" ({spec.method.upper()}, threshold {spec.limit:g})"
    )
    if drifted_days:
        context.log.warning(f"{asset_key.path[-1]} {message}")
    return dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        asset_key=asset_key,
        passed=not drifted_days,
        severity=dg.AssetCheckSeverity.WARN,
        description=message,
        metadata={
            "Method": spec.method,
            "Reference": name,
            "Drifted features": sum(1 for r in table if r["Drifted"]),
            "Features": rows_table(
                [{**r, "Value": None if r["Value"] != r["Value"] else r["Value"]} for r in table[:30]],
                [("Feature", "string"), ("Statistic", "string"), ("Value", "float"), ("Threshold", "float"),
                 ("Drifted", "bool")],
            ),
        },
    )
