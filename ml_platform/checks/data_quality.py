"""Blocking data-quality checks on each raw_data partition (the rules live in ml_platform.quality)."""

import os
from collections.abc import Iterator

import dagster as dg
import pandas as pd
from pydantic import Field

from ml_platform import constants, day_work
from ml_platform.errors import ModelStoreError
from ml_platform.metadata import rows_table
from ml_platform.quality.results import RuleResult
from ml_platform.quality.rules import RULE_DESCRIPTIONS, TABLE_ROWS
from ml_platform.resources.io_managers import PartitionedIOManager, StoredFiles
from ml_platform.resources.model_store import ModelStore, ModelVersion, decode_drift_profile
from ml_platform.retries import retried_when_unavailable
from ml_platform.runtime import PipelineRuntime
from ml_platform.timeouts import stage_timeout


class DataQualityConfig(dg.Config):
    """Thresholds of the data contract."""

    max_null_ratio: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Largest share of nulls allowed in a feature column of one day's data, for this run:"
        " replaces quality.max_null_ratio of pipelines.yaml (columns with their own limit keep it).",
    )


DRIFT_CHECK = "no_feature_drift"


def build_raw_data_quality(pipeline: "PipelineRuntime") -> dg.AssetChecksDefinition:
    """The data contract of one pipeline's raw_data, one blocking check per rule, and the drift
    check (WARN, not blocking) when the pipeline's drift is enabled."""
    key = pipeline.key("raw_data")
    names = pipeline.raw_data_check_names
    drift_spec = pipeline.spec.drift
    specs = [
        dg.AssetCheckSpec(
            name=name,
            asset=key,
            blocking=True,
            description=RULE_DESCRIPTIONS[name],
            partitions_def=pipeline.partitions,
        )
        for name in names
    ]
    if drift_spec.enabled:
        specs.append(
            dg.AssetCheckSpec(
                name=DRIFT_CHECK,
                asset=key,
                blocking=False,
                description=f"No feature drifts from the last training data ({drift_spec.method.upper()} over"
                f" {drift_spec.limit:g}, per feature); a warning, and {drift_spec.sustained_days} drifting days"
                " in a row make the drift sensor retrain.",
                partitions_def=pipeline.partitions,
            )
        )

    @dg.multi_asset_check(
        specs=specs,
        name=f"{pipeline.name}__raw_data_quality",
        op_tags=pipeline.op_tags("ingest"),
    )
    def raw_data_quality(
        context: dg.AssetCheckExecutionContext,
        config: DataQualityConfig,
        model_store: ModelStore,
        io_manager: dg.ResourceParam[PartitionedIOManager],
    ) -> Iterator[dg.AssetCheckResult]:
        """Runs the data contract on each day; any failure stops training in the same run. The days
        are read once for every rule; a range of local days is read and checked in worker processes."""
        with stage_timeout(context, pipeline, "ingest"):
            with retried_when_unavailable(context, pipeline.settings):  # as an input the IO manager reads
                days = io_manager.stored_days(key, context.partition_keys)
            yield from contract_results(context, pipeline, config, model_store, days)

    return raw_data_quality


def contract_results(
    context: dg.AssetCheckExecutionContext,
    pipeline: "PipelineRuntime",
    config: DataQualityConfig,
    model_store: ModelStore,
    days: dict,
) -> Iterator[dg.AssetCheckResult]:
    """The raw_data check results of ``days`` ({day: frame}, or StoredFiles {day: path}): one per
    rule over all the days, and the drift check when the pipeline's drift is enabled."""
    production = pipeline.production(model_store, warn=context.log.warning)
    contract, reference_name = day_contract(pipeline, model_store, production, config)
    checked = _checked_days(context, days, contract)
    yield from _rule_results(context, pipeline, checked)
    if pipeline.spec.drift.enabled:
        yield drift_summary(
            context, pipeline, reference_name, {c.day: c.drift_rows for c in checked}, pipeline.key("raw_data")
        )


def day_contract(
    pipeline: "PipelineRuntime", model_store: ModelStore, production: ModelVersion | None, config: DataQualityConfig
) -> tuple[day_work.DayContract, str | None]:
    """What each day of ``pipeline`` is checked against, given the production version, and the
    name of the drift reference (None: drift disabled, or nothing to compare with yet)."""
    drift_spec = pipeline.spec.drift
    reference = drift_reference(model_store, production) if drift_spec.enabled else None
    contract = day_work.DayContract(
        target=pipeline.target,
        schema=pipeline.schema(production),
        contract=pipeline.contract(config.max_null_ratio),
        task=pipeline.task,
        drift_reference=reference[0] if reference else None,
        drift_method=drift_spec.method,
        drift_limit=drift_spec.limit,
    )
    return contract, reference[1] if reference else None


def run_config_of_checks(context: dg.AssetExecutionContext, pipeline: "PipelineRuntime") -> DataQualityConfig:
    """The raw_data checks' config in this run (for raw_data, which checks each day as it reads it)."""
    ops = (context.run.run_config or {}).get("ops") or {}
    return DataQualityConfig(**((ops.get(f"{pipeline.name}__raw_data_quality") or {}).get("config") or {}))


def _checked_days(context: dg.AssetCheckExecutionContext, raw_data: dict, contract: day_work.DayContract) -> list:
    """check_day on each day: {day: frame}, or StoredFiles {day: path} of local days. A local day
    that raw_data checked in this process against the same contract is not read again; the others
    of a range are read and checked in worker processes."""
    if not isinstance(raw_data, StoredFiles):
        return [day_work.check_day(day, frame, contract) for day, frame in sorted(raw_data.items())]
    checked = {day: day_work.recall_checked(path, contract) for day, path in raw_data.items()}
    jobs = [(day, raw_data[day], contract) for day in sorted(raw_data) if checked[day] is None]
    if jobs:
        processes = (
            day_work.processes_for(len(jobs), max(os.path.getsize(p) for _, p, _ in jobs)) if len(jobs) > 1 else 0
        )
        context.log.info(f"checking {len(jobs)} of {len(raw_data)} days on {max(processes, 1)} process(es)")
        for result in day_work.each_day(day_work.check_day, jobs, processes):
            checked[result.day] = result
    return [checked[day] for day in sorted(checked)]


def _rule_results(
    context: dg.AssetCheckExecutionContext, pipeline: "PipelineRuntime", checked: list
) -> Iterator[dg.AssetCheckResult]:
    names = pipeline.raw_data_check_names
    results_by_rule: dict[str, list[tuple[str, RuleResult]]] = {n: [] for n in names}
    for day_checked in checked:
        for result in day_checked.results:
            results_by_rule.setdefault(result.name, []).append((day_checked.day, result))
            if result.passed and result.warning:
                context.log.warning(f"raw_data {day_checked.day} check {result.name}: {result.message}")

    for name, day_results in results_by_rule.items():
        failed = [(day, r) for day, r in day_results if not r.passed]
        blocking = any(r.severity == "block" for _, r in failed)
        rows = [{"Day": day, **row} for day, r in day_results for row in r.rows]
        if len(day_results) == 1:
            day, result = day_results[0]
            message, metadata = result.message, dict(result.metadata)
            rows = [{k: v for k, v in row.items() if k != "Day"} for row in rows]
        else:
            warned = [(day, r) for day, r in day_results if r.passed and r.warning]
            message = (
                "; ".join(f"{day}: {r.message}" for day, r in failed)
                if failed
                else f"passed on all {len(day_results)} days" + "".join(f"; {day}: {r.message}" for day, r in warned)
            )
            metadata = {"Days checked": len(day_results), "Days failed": len(failed)}
            rows = sorted(rows, key=lambda r: r["Passed"])[:TABLE_ROWS]
        if rows:
            metadata["Rules"] = rows_table(
                rows,
                [
                    *([("Day", "string")] if len(day_results) > 1 else []),
                    ("Column", "string"),
                    ("Rule", "string"),
                    ("Observed", "string"),
                    ("Limit", "string"),
                    ("Passed", "bool"),
                    ("Severity", "string"),
                ],
            )
        if failed:
            log = context.log.error if blocking else context.log.warning
            log(f"raw_data check {name} failed{'' if blocking else ' (severity warn)'}: {message}")
        yield dg.AssetCheckResult(
            check_name=name,
            asset_key=pipeline.key("raw_data"),
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR if blocking or not failed else dg.AssetCheckSeverity.WARN,
            description=message,
            metadata={**metadata, "Result": message},
        )


def drift_reference(
    model_store: ModelStore, production: ModelVersion | None, role: str = "production "
) -> tuple[dict, str] | None:
    """The drift profile of the data the production model (or another version: ``role`` "") was
    trained on (stored with its version) and a name for it, or None before the first model (or for
    a version stored without one)."""
    if production is None:
        return None
    try:
        data = model_store.read_extra(production, constants.DRIFT_PROFILE_FILENAME)
    except (ModelStoreError, FileNotFoundError, ValueError):
        return None  # a profile that cannot be read: nothing to compare with (the gate says why)
    if data is None:
        return None
    as_of = production.record.fit.data_as_of
    return decode_drift_profile(data), f"{role}{production.version}" + (f" (data as of {as_of})" if as_of else "")


def drift_result(
    context,
    pipeline: "PipelineRuntime",
    model_store: ModelStore,
    production: ModelVersion | None,
    days: dict[str, pd.DataFrame],
    asset_key: dg.AssetKey,
) -> dg.AssetCheckResult:
    """The no_feature_drift check of ``asset_key`` (scoring_data) over ``days``, against the
    training data of the production model."""
    from ml_platform import drift

    spec = pipeline.spec.drift
    found = drift_reference(model_store, production)
    rows_by_day = {}
    if found is not None:
        rows_by_day = {day: drift.compare(found[0], frame, spec.method, spec.limit) for day, frame in days.items()}
    return drift_summary(context, pipeline, found[1] if found else None, rows_by_day, asset_key)


def drift_summary(
    context,
    pipeline: "PipelineRuntime",
    reference_name: str | None,
    rows_by_day: dict[str, list[dict]],
    asset_key: dg.AssetKey,
) -> dg.AssetCheckResult:
    """The no_feature_drift check result of ``asset_key`` from each day's comparison with the
    reference called ``reference_name`` (None: no production model to compare with yet)."""
    spec = pipeline.spec.drift
    if reference_name is None:
        return dg.AssetCheckResult(
            check_name=DRIFT_CHECK,
            asset_key=asset_key,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description="no production model yet to compare with",
            metadata={"Method": spec.method},
        )
    name = reference_name
    drifted_days, table, worst = [], [], None
    for day, rows in sorted(rows_by_day.items()):
        drifted = [r["Feature"] for r in rows if r["Drifted"]]
        if drifted:
            drifted_days.append(f"{day}: {', '.join(drifted[:5])}" + (" …" if len(drifted) > 5 else ""))
        if worst is None or len(drifted) > worst[0]:
            worst, table = (len(drifted), day), rows
    message = (
        f"drift against the training data of {name} in " + "; ".join(drifted_days)
        if drifted_days
        else f"no feature drifts from the training data of {name} ({spec.method.upper()}, threshold {spec.limit:g})"
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
                [
                    ("Feature", "string"),
                    ("Statistic", "string"),
                    ("Value", "float"),
                    ("Threshold", "float"),
                    ("Drifted", "bool"),
                ],
            ),
        },
    )
