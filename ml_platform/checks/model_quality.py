"""The deployment gate: blocking checks on model_metrics. One on the metric the pipeline chose (and
the champion), one on the signature: a new model takes the production model's columns."""

import dagster as dg
from pydantic import Field, create_model

from ml_platform.assets.tracked import track_verdict
from ml_platform.estimators import METRIC_LABELS
from ml_platform.model_metrics import ModelMetrics, SignatureComparison
from ml_platform.runtime import PipelineRuntime
from ml_platform.timeouts import stage_timeout


class GateConfig(dg.Config):
    """Base of each pipeline's gate config (one field: ``min_<metric>`` or ``max_<metric>``)."""


def gate_check_name(pipeline: PipelineRuntime) -> str:
    metric, _, higher_is_better = pipeline.spec.gate_metric
    return f"{metric}_{'above' if higher_is_better else 'below'}_threshold"


def gate_config_class(pipeline: PipelineRuntime) -> type[GateConfig]:
    """A Config with the pipeline's threshold as the default (run config may change it)."""
    metric, threshold, higher_is_better = pipeline.spec.gate_metric
    field = f"{'min' if higher_is_better else 'max'}_{metric}"
    bounds = (
        {"ge": 0.0, "le": 1.0}
        if metric in ("accuracy", "f1", "precision", "recall")
        else ({"le": 1.0} if metric == "r2" else {"ge": 0.0})
    )
    description = (
        f"Smallest test {METRIC_LABELS[metric]} that may be deployed."
        if higher_is_better
        else f"Largest test {METRIC_LABELS[metric]} that may be deployed."
    )
    return create_model(
        f"{pipeline.class_prefix}GateConfig",
        __base__=GateConfig,
        **{
            field: (float, Field(default=threshold, description=description, **bounds)),
            "max_regression": (
                float,
                Field(
                    default=pipeline.spec.gate.max_regression,
                    ge=0.0,
                    description=f"How much worse than the production model's {METRIC_LABELS[metric]} on the"
                    " same test split a new model may be and still be deployed.",
                ),
            ),
        },
    )


def build_gate(pipeline: PipelineRuntime) -> dg.AssetChecksDefinition:
    metric, _, higher_is_better = pipeline.spec.gate_metric
    label = METRIC_LABELS[metric]
    field = f"{'min' if higher_is_better else 'max'}_{metric}"
    config_class = gate_config_class(pipeline)

    @dg.asset_check(
        asset=pipeline.key("model_metrics"),
        name=gate_check_name(pipeline),
        blocking=True,
        partitions_def=pipeline.partitions,
        description=f"Test {label} is {'at least' if higher_is_better else 'at most'} the threshold;"
        " otherwise deployed_model does not run.",
        op_tags=pipeline.op_tags("evaluate"),
    )
    def gate(context: dg.AssetCheckExecutionContext, config: config_class, model_metrics: ModelMetrics):
        with stage_timeout(context, pipeline, "evaluate"):
            result = evaluate_gate(
                model_metrics, metric, float(getattr(config, field)), float(config.max_regression), higher_is_better
            )
            track_verdict(context, pipeline, model_metrics, result)
            return result

    return gate


def evaluate_gate(
    metrics: ModelMetrics, metric: str, threshold: float, max_regression: float, higher_is_better: bool
) -> dg.AssetCheckResult:
    """The threshold, and when there is a champion that scored the same test split, the champion:
    the new model must be at least as good, give or take ``max_regression``."""
    label = METRIC_LABELS[metric]
    score = metrics.score(metric)
    above = score >= threshold if higher_is_better else score <= threshold
    sign = (">=" if above else "<") if higher_is_better else ("<=" if above else ">")
    description = f"{metric} {score:.4f} {sign} threshold {threshold}"
    metadata: dict = {label: score, "Threshold": threshold, "Max regression": max_regression}
    champion = metrics.champion  # a ChampionComparison, or None before the first model
    beats = True
    if champion is not None and champion.compared:
        best = float(champion.champion[metric])
        challenger = float(champion.challenger[metric])
        bound = best - max_regression if higher_is_better else best + max_regression
        beats = challenger >= bound if higher_is_better else challenger <= bound
        description += (
            f"; on the {champion.rows} test rows new to both, challenger {challenger:.4f} vs champion"
            f" {champion.version} {best:.4f}:"
            f" {'kept within' if beats else 'worse by more than'} {max_regression:g}"
        )
        metadata.update(
            {
                f"Champion {label}": best,
                f"Challenger {label}": challenger,
                "Champion version": champion.version,
                "Rows compared": champion.rows,
            }
        )
    else:
        problem = champion.problem if champion is not None else None
        description += "; no champion to compare with" + (f" ({problem})" if problem else "")
    return dg.AssetCheckResult(
        passed=above and beats,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


SIGNATURE_CHECK = "signature_matches_production"


def build_signature_check(pipeline: PipelineRuntime) -> dg.AssetChecksDefinition:
    evolve = pipeline.spec.schema_policy.evolve

    @dg.asset_check(
        asset=pipeline.key("model_metrics"),
        name=SIGNATURE_CHECK,
        blocking=True,
        partitions_def=pipeline.partitions,
        description="The new model takes the same columns, of the same kinds, as the production model"
        + (
            " (schema.evolve: true allows a change, and says so)."
            if evolve
            else "; otherwise deployed_model does not run (schema.evolve: true in pipelines.yaml allows a change)."
        ),
        op_tags=pipeline.op_tags("evaluate"),
    )
    def signature_check(context: dg.AssetCheckExecutionContext, model_metrics: ModelMetrics):
        with stage_timeout(context, pipeline, "evaluate"):
            return evaluate_signature_change(model_metrics.signature or SignatureComparison(None), evolve)

    return signature_check


def evaluate_signature_change(comparison: SignatureComparison, evolve: bool) -> dg.AssetCheckResult:
    """Passes when there is no production signature to compare with, when the columns and kinds are
    the same (in any order), or when they change and ``evolve`` allows it."""
    version = comparison.production_version
    if comparison.change is None:
        note = comparison.note or "no signature change recorded"
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{note}: this model's signature becomes the pipeline's schema",
            metadata={"Production version": version or "-"},
        )
    change = comparison.change
    if not change.breaking:
        passed = True
        description = f"the same columns and kinds as production {version}" + (
            " (in another order: callers may send columns in any order)" if change.reordered else ""
        )
    elif evolve:
        passed = True
        description = (
            f"the signature changes from production {version}: {change.describe()};"
            " allowed by schema.evolve: true (callers must send the new columns once it is deployed)"
        )
    else:
        passed = False
        description = (
            f"the signature differs from production {version}: {change.describe()}; the callers of"
            " production send its columns, so this model is not deployed (to change the schema on"
            " purpose, set schema: {evolve: true} in pipelines.yaml)"
        )
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "Production version": version,
            "Columns added": len(change.added),
            "Columns removed": len(change.removed),
            "Columns re-kinded": len(change.rekinded),
            "Change": change.describe(),
        },
    )
