"""The deployment gate: blocking checks on model_metrics. One per threshold of the pipeline's gate
(each against the champion too), one on the signature: a new model takes the production model's
columns."""

import dagster as dg
from pydantic import Field, create_model

from ml_platform.errors import yaml_boolean_hint
from ml_platform.metrics import GATE_METRICS, METRIC, METRIC_LABELS
from ml_platform.model_metrics import ModelMetrics, SignatureComparison, score_key
from ml_platform.runtime import PipelineRuntime
from ml_platform.spec import GateThreshold
from ml_platform.timeouts import stage_timeout
from ml_platform.tracked import track_verdict


class GateConfig(dg.Config):
    """Base of each gate check's config: its threshold (``min_<metric>`` or ``max_<metric>``) and its
    margin against the champion."""


SLICES_CHECK = "slices_no_worse_than_production"


def gate_check_names(pipeline: PipelineRuntime) -> list[str]:
    """The gate's checks, one per threshold, in the order of pipelines.yaml (then the slices' check)."""
    slices = [SLICES_CHECK] if pipeline.spec.gate.slices is not None else []
    return [t.check_name for t in pipeline.spec.gate_thresholds] + slices


def _label(threshold: GateThreshold) -> str:
    label = METRIC_LABELS[threshold.metric]
    return label if threshold.of_class is None else f"{label} of {threshold.of_class}"


def gate_config_class(pipeline: PipelineRuntime, threshold: GateThreshold) -> type[GateConfig]:
    """A Config with the threshold of pipelines.yaml as the default (run config may change it)."""
    metric = threshold.metric
    bounds = METRIC[metric].bounds
    label = _label(threshold)
    description = f"{'Smallest' if threshold.higher_is_better else 'Largest'} test {label} that may be deployed."
    camel = "".join(part.capitalize() for part in threshold.check_name.split("_"))
    return create_model(
        f"{pipeline.class_prefix}{camel}GateConfig",
        __base__=GateConfig,
        **{
            threshold.key: (float, Field(default=threshold.value, description=description, **bounds)),
            "max_regression": (
                float,
                Field(
                    default=threshold.max_regression,
                    ge=0.0,
                    description=f"How much worse than the production model's {label} on the same test rows a new"
                    " model may be and still be deployed.",
                ),
            ),
            "relative": (
                bool,
                Field(
                    default=threshold.relative,
                    description="true: max_regression is a share of the production model's value.",
                ),
            ),
            "confidence": (
                float | None,
                Field(
                    default=threshold.confidence,
                    ge=0.5,
                    lt=1,
                    description="Promote only when the paired bootstrap finds the model not worse than production"
                    " in at least this share of resamples (null: the values alone).",
                ),
            ),
            "beat_baseline": (
                bool,
                Field(
                    default=threshold.beat_baseline,
                    description=f"The model's {label} must be better than the do-nothing model's (DummyClassifier()"
                    " / DummyRegressor()) on the same test rows.",
                ),
            ),
        },
    )


def build_gates(pipeline: PipelineRuntime) -> list[dg.AssetChecksDefinition]:
    """One blocking check per threshold of the gate, and one on the slices when gate.slices is set."""
    gates = [_build_gate(pipeline, threshold) for threshold in pipeline.spec.gate_thresholds]
    if pipeline.spec.gate.slices is not None:
        gates.append(_build_slices_gate(pipeline))
    return gates


class SlicesGateConfig(dg.Config):
    min_support: int = Field(description="The fewest fresh test rows a slice needs to be judged.", ge=1)
    max_regression: float = Field(
        description="How much worse than the champion the model may score on a slice, per gated metric.", ge=0.0
    )
    relative: bool = Field(description="true: max_regression is a share of the champion's value.")


def _build_slices_gate(pipeline: PipelineRuntime) -> dg.AssetChecksDefinition:
    spec = pipeline.spec.gate.slices
    config_class = create_model(
        f"{pipeline.class_prefix}SlicesGateConfig",
        __base__=SlicesGateConfig,
        min_support=(
            int,
            Field(default=spec.min_support, ge=1, description=SlicesGateConfig.model_fields["min_support"].description),
        ),
        max_regression=(
            float,
            Field(
                default=spec.max_regression,
                ge=0.0,
                description=SlicesGateConfig.model_fields["max_regression"].description,
            ),
        ),
        relative=(
            bool,
            Field(default=spec.relative, description=SlicesGateConfig.model_fields["relative"].description),
        ),
    )
    metrics = slice_gate_metrics(pipeline)

    @dg.asset_check(
        asset=pipeline.key("model_metrics"),
        name=SLICES_CHECK,
        blocking=True,
        partitions_def=pipeline.partitions,
        description=f"On every slice of {', '.join(pipeline.spec.evaluation.slices)} with enough fresh test rows,"
        f" the model's {', '.join(metrics)} is no worse than production's beyond max_regression; otherwise"
        " deployed_model does not run.",
        op_tags=pipeline.op_tags("evaluate"),
    )
    def slices_gate(context: dg.AssetCheckExecutionContext, config: config_class, model_metrics: ModelMetrics):
        with stage_timeout(context, pipeline, "evaluate"):
            result = evaluate_slices(
                model_metrics, metrics, config.min_support, float(config.max_regression), bool(config.relative)
            )
            track_verdict(context, pipeline, model_metrics, SLICES_CHECK, result)
            return result

    return slices_gate


def slice_gate_metrics(pipeline: PipelineRuntime) -> list[str]:
    """The metrics judged on each slice: the gate's whole-split metrics (its primary one when it has
    per-class thresholds alone)."""
    metrics = list(dict.fromkeys(t.metric for t in pipeline.spec.gate_thresholds if t.of_class is None))
    return metrics or [pipeline.spec.gate_metric]


def evaluate_slices(
    metrics: ModelMetrics, gated: list[str], min_support: int, max_regression: float, relative: bool
) -> dg.AssetCheckResult:
    """Holds the model back when, on a slice with at least ``min_support`` fresh test rows, it scores
    worse than the champion on a gated metric by more than ``max_regression``; names each such slice."""
    champion = metrics.champion
    if champion is None or not champion.compared:
        problem = champion.problem if champion is not None else None
        said = "no champion to compare the slices with" + (f" ({problem})" if problem else "")
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.ERROR, description=said)
    judged = [s for s in champion.slices if s.rows >= min_support]
    worse = []
    for found in judged:
        for metric in gated:
            if metric not in found.champion or metric not in found.challenger:
                continue
            best, new = found.champion[metric], found.challenger[metric]
            allowed = max_regression * (abs(best) if relative else 1.0)
            change = new - best if GATE_METRICS[metrics.task][metric] else best - new
            if change < -allowed - 1e-12:
                worse.append((change, found, metric, best, new))
    worse.sort(key=lambda w: w[0])
    margin = f"{max_regression:g}" + (" of its value" if relative else "")
    metadata = {
        "Slices compared": len(champion.slices),
        "Slices judged": len(judged),
        "Min support": min_support,
        "Max regression": max_regression,
        "Champion version": champion.version,
        "Slices worse than production": len(worse),
    }
    if not worse:
        said = (
            f"no slice of at least {min_support} fresh test rows is worse than champion {champion.version} by more"
            f" than {margin} on {', '.join(gated)} ({len(judged)} of {len(champion.slices)} slices judged)"
        )
        return dg.AssetCheckResult(
            passed=True, severity=dg.AssetCheckSeverity.ERROR, description=said, metadata=metadata
        )
    named = "; ".join(
        f"{found.name}: {metric} {new:.4f} vs champion {best:.4f} ({found.rows} rows)"
        for _, found, metric, best, new in worse[:5]
    )
    more = f" and {len(worse) - 5} more" if len(worse) > 5 else ""
    return _fail(
        f"worse than champion {champion.version} by more than {margin} on {len(worse)} slice value(s): {named}{more}",
        metadata,
    )


def _build_gate(pipeline: PipelineRuntime, threshold: GateThreshold) -> dg.AssetChecksDefinition:
    config_class = gate_config_class(pipeline, threshold)

    @dg.asset_check(
        asset=pipeline.key("model_metrics"),
        name=threshold.check_name,
        blocking=True,
        partitions_def=pipeline.partitions,
        description=f"Test {_label(threshold)} is {'at least' if threshold.higher_is_better else 'at most'}"
        f" {threshold.value:g} and no worse than production's beyond max_regression; otherwise deployed_model"
        " does not run.",
        op_tags=pipeline.op_tags("evaluate"),
    )
    def gate(context: dg.AssetCheckExecutionContext, config: config_class, model_metrics: ModelMetrics):
        with stage_timeout(context, pipeline, "evaluate"):
            configured = GateThreshold(
                threshold.key,
                threshold.metric,
                float(getattr(config, threshold.key)),
                threshold.higher_is_better,
                threshold.of_class,
                float(config.max_regression),
                bool(config.relative),
                bool(config.beat_baseline),
                config.confidence,
            )
            result = evaluate_gate(model_metrics, configured)
            track_verdict(context, pipeline, model_metrics, threshold.check_name, result)
            return result

    return gate


def evaluate_gate(metrics: ModelMetrics, threshold: GateThreshold) -> dg.AssetCheckResult:
    """The threshold, and when there is a champion that scored the same test rows, the champion:
    the new model must be at least as good, give or take ``max_regression`` (in the metric's units,
    or ``relative``: a share of the champion's value). A value the model does not have (not
    computed, a class it does not know) fails, saying why."""
    label = _label(threshold)
    score = metrics.value(threshold.metric, threshold.of_class)
    if score is None:
        return _fail(f"{threshold.name}: {_missing(metrics, threshold)}", {"Threshold": threshold.value})
    higher = threshold.higher_is_better
    above = score >= threshold.value if higher else score <= threshold.value
    sign = (">=" if above else "<") if higher else ("<=" if above else ">")
    description = f"{threshold.name} {metrics.shown(threshold.metric, threshold.of_class)} {sign} threshold"
    description += f" {threshold.value:g}"
    margin = f"{threshold.max_regression:g}" + (" of its value" if threshold.relative else "")
    metadata: dict = {label: score, "Threshold": threshold.value, "Max regression": threshold.max_regression}
    if threshold.relative:
        metadata["Max regression relative"] = True  # a share of the champion's value
    if threshold.of_class is not None:
        metadata["Test rows of the class"] = metrics.class_rows(threshold.of_class)
    interval = metrics.interval(threshold.metric, threshold.of_class)
    if interval is not None:
        metadata["95 % interval"] = f"[{interval[0]:.4f}, {interval[1]:.4f}]"
    useful, baseline = _against_baseline(metrics, threshold, score, metadata)
    beats, against = _against_champion(metrics, threshold, margin, metadata)
    return dg.AssetCheckResult(
        passed=bool(above and useful and beats),
        severity=dg.AssetCheckSeverity.ERROR,
        description=description + baseline + against,
        metadata=metadata,
    )


def _against_baseline(
    metrics: ModelMetrics, threshold: GateThreshold, score: float, metadata: dict
) -> tuple[bool, str]:
    """(whether the model beats the do-nothing baseline, when the threshold asks; the sentence)."""
    if not threshold.beat_baseline:
        return True, ""
    baseline = metrics.baseline
    base = None if baseline is None else baseline.scores.get(threshold.metric)
    if base is None:
        why = "no baseline scored with this model" if baseline is None else f"{baseline.name} has no {threshold.metric}"
        return True, f"; not compared with a baseline ({why})"
    beaten = score > base if threshold.higher_is_better else score < base
    metadata[f"Baseline {_label(threshold)}"] = float(base)
    metadata["Baseline"] = baseline.name
    if beaten:
        return True, f"; beats the baseline {baseline.name} ({base:.4f})"
    return False, (
        f"; does not beat the baseline {baseline.name} ({base:.4f}, a model that ignores every feature):"
        " not worth deploying (gate.beat_baseline)"
    )


def _against_champion(metrics: ModelMetrics, threshold: GateThreshold, margin: str, metadata: dict) -> tuple[bool, str]:
    """(whether the challenger is within the margin of the champion, the sentence saying so)."""
    champion = metrics.champion  # a ChampionComparison, or None before the first model
    if champion is None or not champion.compared:
        problem = champion.problem if champion is not None else None
        return True, "; no champion to compare with" + (f" ({problem})" if problem else "")
    key = score_key(threshold.metric, threshold.of_class)
    if key not in champion.champion or key not in champion.challenger:
        return True, f"; not compared with champion {champion.version} on {threshold.name} (not computed for both)"
    best, challenger = float(champion.champion[key]), float(champion.challenger[key])
    allowed = threshold.max_regression * (abs(best) if threshold.relative else 1.0)
    if threshold.higher_is_better:
        beats = challenger >= best - allowed
    else:
        beats = challenger <= best + allowed
    label = _label(threshold)
    metadata.update(
        {
            f"Champion {label}": best,
            f"Challenger {label}": challenger,
            "Champion version": champion.version,
            "Rows compared": champion.rows,
        }
    )
    said = (
        f"; on the {champion.rows} test rows new to both, challenger {challenger:.4f} vs champion"
        f" {champion.version} {best:.4f}: {'kept within' if beats else 'worse by more than'} {margin}"
    )
    sure = champion.probability_not_worse(key, threshold.higher_is_better, allowed)
    if sure is None:
        if threshold.confidence is not None:
            said += " (no resamples of this comparison: the values alone decide)"
        return beats, said
    metadata["Probability not worse"] = sure
    said += f"; not worse in {sure:.1%} of the paired resamples"
    if threshold.confidence is not None:
        metadata["Confidence asked"] = threshold.confidence
        sure_enough = sure >= threshold.confidence
        said += f" ({'at least' if sure_enough else 'below'} the confidence {threshold.confidence:g})"
        beats = beats and sure_enough
    return beats, said


def _missing(metrics: ModelMetrics, threshold: GateThreshold) -> str:
    """Why the model has no value for the threshold, as a sentence."""
    if threshold.of_class is None:
        why = metrics.not_computed.get(threshold.metric, "not in the model's scores")
        return f"not computed ({why}): the gate cannot pass without it"
    classes = metrics.classes()
    hint = yaml_boolean_hint(threshold.of_class, classes)
    return f"{threshold.of_class!r} is not a class of the model (its classes: {', '.join(classes)}){hint}"


def _fail(description: str, metadata: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.ERROR, description=description, metadata=metadata
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
