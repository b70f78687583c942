"""model_metrics: how the trained model does on the held-out split."""

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from ml_platform import constants
from ml_platform.assets.stored_output import own_stored_output
from ml_platform.assets.tracked import run_link, track_metrics
from ml_platform.decision import describe as decision_sentence
from ml_platform.errors import DataValidationError, ModelStoreError
from ml_platform.estimators import GATE_METRICS, METRIC_LABELS
from ml_platform.instance_queries import latest_data_version
from ml_platform.intervals import LEVEL, RESAMPLES, Outputs, intervals, paired_differences
from ml_platform.metadata import markdown_table, rows_table
from ml_platform.ml import (
    TrainedModel,
    classification_metrics,
    features_and_target,
    frame_fingerprint,
    platform_version,
    predict_outputs,
    regression_metrics,
    row_hashes,
)
from ml_platform.model_metrics import Baseline, ChampionComparison, ModelMetrics, SignatureComparison, score_key
from ml_platform.resources.model_store import ModelStore, ModelVersion, decode_train_rows
from ml_platform.retries import retried_when_unavailable
from ml_platform.runtime import PipelineRuntime
from ml_platform.signature import compare as compare_signatures
from ml_platform.slices import (
    MAX_VALUES,
    WORST,
    compare_slices,
    is_categorical,
    scores_of_slices,
    slice_labels,
    worst_slices,
)
from ml_platform.timeouts import stage_timeout

# The platform's precision, recall and F1 are weighted by class support: the report says so.
_WEIGHTED = {"precision": "Precision (weighted)", "recall": "Recall (weighted)", "f1": "F1 (weighted)"}


def report_markdown(metrics: ModelMetrics) -> str:
    """The evaluation report: headline scores, confusion matrix and per-class scores."""
    scores, details = metrics.scores, metrics.details
    labels = [str(label) for label in details["labels"]]
    headline = markdown_table(
        ["Metric", "Value"],
        [
            *([_WEIGHTED.get(name, METRIC_LABELS.get(name, name)), value] for name, value in scores.items()),
            ["Test rows", metrics.test_rows],
        ],
    )
    confusion = markdown_table(
        ["actual \\ predicted", *labels],
        [[label, *row] for label, row in zip(labels, details["confusion_matrix"])],
    )
    report = details["report"]
    per_class = markdown_table(
        ["Class", "Precision", "Recall", "F1", "Support"],
        [
            [
                label,
                report[label]["precision"],
                report[label]["recall"],
                report[label]["f1-score"],
                int(report[label]["support"]),
            ]
            for label in labels
            if label in report
        ],
    )
    found = details.get("decision")
    decision = (
        f"Decision: {decision_sentence(found)}. The scores counted from predicted classes are at this threshold.\n\n"
        if found
        else ""
    )
    return (
        f"## Evaluation\n\n{decision}{headline}\n\n### Confusion matrix\n\n{confusion}\n\n"
        f"### Per-class scores\n\n{per_class}\n"
    )


def regression_report_markdown(metrics: ModelMetrics) -> str:
    scores = metrics.scores
    headline = markdown_table(
        ["Metric", "Value"],
        [*([METRIC_LABELS.get(name, name), value] for name, value in scores.items()), ["Test rows", metrics.test_rows]],
    )
    residuals = markdown_table(
        ["Residual quantile", "Value"], [[q, v] for q, v in metrics.details["residual_quantiles"].items()]
    )
    return f"## Evaluation\n\n{headline}\n\n### Residuals (actual - predicted)\n\n{residuals}\n"


def _scores_metadata(metrics: ModelMetrics) -> dict[str, Any]:
    """Every score as a float under its label (the UI plots each one's history)."""
    return {METRIC_LABELS.get(name, name): float(value) for name, value in metrics.scores.items()}


def _classification_metadata(metrics: ModelMetrics) -> dict[str, Any]:
    labels = [str(label) for label in metrics.details["labels"]]
    report = metrics.details["report"]
    not_computed = metrics.details.get("not_computed") or {}
    return {
        **_scores_metadata(metrics),
        "Test rows": metrics.test_rows,
        "Per class": rows_table(
            [
                {
                    "Class": label,
                    "Precision": float(report[label]["precision"]),
                    "Recall": float(report[label]["recall"]),
                    "F1": float(report[label]["f1-score"]),
                    "Support": int(report[label]["support"]),
                }
                for label in labels
                if label in report
            ],
            [("Class", "string"), ("Precision", "float"), ("Recall", "float"), ("F1", "float"), ("Support", "int")],
        ),
        **(
            {"Not computed": "; ".join(f"{METRIC_LABELS.get(k, k)}: {why}" for k, why in not_computed.items())}
            if not_computed
            else {}
        ),
        "Confusion matrix": rows_table(
            [
                {"Actual": label, **{f"Predicted {p}": int(n) for p, n in zip(labels, row)}}
                for label, row in zip(labels, metrics.details["confusion_matrix"])
            ],
            [("Actual", "string"), *[(f"Predicted {p}", "int") for p in labels]],
        ),
        "Report": dg.MetadataValue.md(report_markdown(metrics)),
        **_decision_metadata(metrics),
    }


def _decision_metadata(metrics: ModelMetrics) -> dict[str, Any]:
    """The model's decision threshold, and which scores it changes."""
    found = metrics.details.get("decision")
    if not found:
        return {}
    return {
        "Decision threshold": float(found["threshold"]),
        "Decision": decision_sentence(found)
        + "; accuracy, balanced accuracy, precision, recall, F1 and the confusion matrix are at this threshold;"
        " ROC AUC, average precision, log loss and Brier read the probabilities and do not depend on it",
    }


def _regression_metadata(metrics: ModelMetrics) -> dict[str, Any]:
    return {
        **_scores_metadata(metrics),
        "Test rows": metrics.test_rows,
        "Predicted vs actual": rows_table(
            metrics.details["calibration"],
            [("Actual (bin)", "string"), ("Rows", "int"), ("Mean actual", "float"), ("Mean predicted", "float")],
        ),
        "Report": dg.MetadataValue.md(regression_report_markdown(metrics)),
    }


def baseline_scores(pipeline: PipelineRuntime, train_split: pd.DataFrame, test_split: pd.DataFrame) -> Baseline:
    """scikit-learn's do-nothing model, as a user would write it (``DummyClassifier()``,
    ``DummyRegressor()``), fitted on the training rows and scored on the test rows with the same
    metric functions as the model."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    classification = pipeline.task == "classification"
    dummy = DummyClassifier() if classification else DummyRegressor()
    dummy.fit(*features_and_target(train_split, pipeline.target))
    score = classification_metrics if classification else regression_metrics
    return Baseline(repr(dummy), ModelMetrics.of(pipeline.task, score(dummy, test_split, pipeline.target)).scores)


@dataclass(frozen=True)
class ScoredTestSplit:
    """The test split, what the new model said on it, and each row's slice of every declared slice
    column: what the champion comparison reuses rather than predicting again."""

    rows: pd.DataFrame
    model: Any
    outputs: Outputs
    slices: pd.DataFrame

    def on(self, pipeline: PipelineRuntime, mask: np.ndarray) -> tuple[Outputs, dict[str, float]]:
        """The new model's outputs and values on some of the rows (``mask``)."""
        outputs = self.outputs.subset(mask)
        return outputs, _values(pipeline, self.model, self.rows[mask].reset_index(drop=True), outputs)


def champion_scores(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    model_store: ModelStore,
    trained_model: TrainedModel,
    scored: ScoredTestSplit,
    production: ModelVersion | None,
    unreadable: str | None = None,
) -> ChampionComparison | None:
    """The production model (the champion, ``production``: the version this step read) and the new
    model (the challenger) scored on the same, fresh test rows: the rows of this run's test split
    that the champion was not trained on (windows of consecutive days overlap, so some of today's
    test rows were yesterday's training rows; on those the champion would look better than it is).

    None when there is no production model yet. A champion that cannot be read (``unreadable``),
    loaded or scored (a corrupt artifact, other columns), or too few fresh rows, is reported with the
    reason, and the gate falls back to its thresholds alone.
    """
    if unreadable:
        context.log.warning(f"{unreadable}: the gate uses its thresholds alone")
        return ChampionComparison(None, problem=unreadable)
    if production is None:
        context.log.info(f"no production {pipeline.model_name} yet: the gate uses its thresholds alone")
        return None
    loaded = _champion_and_fresh_rows(context, pipeline, model_store, trained_model, production, scored.rows)
    if isinstance(loaded, ChampionComparison):
        return loaded
    model, fresh, itself = loaded
    count = int(fresh.sum())
    if count < constants.MIN_FRESH_TEST_ROWS:
        reason = (
            f"only {count} of {len(fresh)} test rows are new to {production.version}"
            f" (fewer than {constants.MIN_FRESH_TEST_ROWS})"
        )
        context.log.warning(f"{reason}: the gate uses its thresholds alone")
        return ChampionComparison(production.version, problem=reason)
    challenger = scored.on(pipeline, fresh)
    if itself:
        context.log.info(f"the challenger is production {production.version} itself: scored once, for both")
        values = challenger[1]
        same = {score_key(t.metric, t.of_class): [0.0] for t in pipeline.spec.gate_thresholds}
        slices = _compared_slices(scored, fresh, challenger[0], challenger[0], values)
        return ChampionComparison(production.version, count, values, dict(values), differences=same, slices=slices)
    return _paired(context, pipeline, production.version, model, scored, fresh, challenger)


def _paired(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    version: str,
    model,
    scored: ScoredTestSplit,
    fresh: np.ndarray,
    new: tuple[Outputs, dict[str, float]],
) -> ChampionComparison:
    """The champion (``model``) and the challenger (``new``: its outputs and values) on the fresh
    rows: their values, the paired bootstrap of each gated value (the same resamples for both), and
    both on each slice."""
    rows = scored.rows[fresh].reset_index(drop=True)
    try:
        old_outputs, champion = _scored(pipeline, model, rows)
    except Exception as exc:  # noqa: BLE001 - any reason it cannot score is reported, not fatal
        context.log.warning(
            f"production {pipeline.model_name} {version} cannot score the test rows"
            f" ({type(exc).__name__}: {exc}): the gate uses its thresholds alone"
        )
        return ChampionComparison(version, problem=f"{type(exc).__name__}: {exc}")
    new_outputs, challenger = new
    gated = [score_key(t.metric, t.of_class) for t in pipeline.spec.gate_thresholds]
    gated = [k for k in gated if k in champion and k in challenger]
    point = {k: challenger[k] - champion[k] for k in gated}
    differences = paired_differences(new_outputs, old_outputs, gated, point=point)
    return ChampionComparison(
        version,
        int(len(rows)),
        champion,
        challenger,
        differences={k: [float(v) for v in values] for k, values in differences.items()},
        slices=_compared_slices(scored, fresh, new_outputs, old_outputs, challenger),
    )


def _compared_slices(
    scored: ScoredTestSplit, fresh: np.ndarray, new: Outputs, old: Outputs, values: dict[str, float]
) -> list:
    """Both models on each declared slice of the fresh rows, every value of ``values``."""
    keys = [k for k in values if k != "test_rows"]
    return [
        comparison
        for column in scored.slices.columns
        for comparison in compare_slices(
            new, old, column, scored.slices[column][fresh].reset_index(drop=True), keys, MAX_VALUES
        )
    ]


def _scored(pipeline: PipelineRuntime, model, rows: pd.DataFrame) -> tuple[Outputs, dict[str, float]]:
    """A model's outputs on ``rows`` and its values there (every score, the gated per-class ones)."""
    outputs = predict_outputs(model, rows, pipeline.target, pipeline.task)
    return outputs, _values(pipeline, model, rows, outputs)


def _values(pipeline: PipelineRuntime, model, rows: pd.DataFrame, outputs: Outputs) -> dict[str, float]:
    score = classification_metrics if pipeline.task == "classification" else regression_metrics
    measured = ModelMetrics.of(pipeline.task, score(model, rows, pipeline.target, outputs))
    return measured.compared_values(pipeline.spec.gated_classes)


def _champion_and_fresh_rows(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    model_store: ModelStore,
    trained_model: TrainedModel,
    production: ModelVersion,
    test_split: pd.DataFrame,
):
    """(the champion's model, which test rows are new to it (a mask), whether the challenger is the
    champion itself), or a ChampionComparison saying why the champion cannot be loaded."""
    # The challenger may be the production version itself (trained_model reused it, or refit the
    # same recipe): then the champion is not loaded, and both are scored once.
    itself = trained_model.identity is not None and production.record.identity == trained_model.identity
    try:
        with retried_when_unavailable(context, pipeline.settings):
            # The version read, by name (it verifies the sha256): the pointer is not read again.
            model = trained_model.model if itself else model_store.load(pipeline.model_name, production.version)[0]
            fresh = _fresh_rows(context, model_store, production, test_split)
    except ModelStoreError as exc:
        context.log.warning(f"the production model cannot be loaded ({exc}): the gate uses its thresholds alone")
        return ChampionComparison(None, problem=str(exc))
    return model, fresh, itself


def _fresh_rows(context, model_store: ModelStore, version: ModelVersion, test_split: pd.DataFrame) -> np.ndarray:
    """Which rows of ``test_split`` ``version`` was not trained on (a boolean mask)."""
    seen_bytes = model_store.read_extra(version, constants.TRAIN_ROWS_FILENAME)
    if seen_bytes is None:
        context.log.warning(f"{version.version} did not record its training rows: compared on the whole split")
        return np.ones(len(test_split), dtype=bool)
    return ~np.isin(row_hashes(test_split), decode_train_rows(seen_bytes))


def signature_comparison(
    trained_model: TrainedModel, production: ModelVersion | None, unreadable: str | None = None
) -> SignatureComparison:
    """How the new model's signature differs from the production model's (``production``: the
    version this step read), for the signature_matches_production check; a note when there is
    nothing to compare."""
    if unreadable:
        return SignatureComparison(None, note=unreadable)
    if production is None:
        return SignatureComparison(None, note="no production model yet")
    old = production.record.signature
    if old is None or trained_model.signature is None:
        return SignatureComparison(
            production.version, note=f"{production.version} records no signature to compare with"
        )
    return SignatureComparison(production.version, change=compare_signatures(old, trained_model.signature))


def _metrics_metadata(pipeline: PipelineRuntime, metrics: ModelMetrics) -> dict[str, Any]:
    """What the UI shows of model_metrics, from the metrics alone (a fresh or a reused score)."""
    metric = pipeline.spec.gate_metric
    label = METRIC_LABELS[metric]
    metadata = (_classification_metadata if pipeline.task == "classification" else _regression_metadata)(metrics)
    champion = metrics.champion
    if champion and champion.compared:
        if metric in champion.champion and metric in champion.challenger:
            metadata[f"Champion {label}"] = float(champion.champion[metric])
            metadata[f"Challenger {label} (same rows)"] = float(champion.challenger[metric])
        metadata["Champion vs challenger"] = _comparison_table(champion)
        metadata["Champion version"] = champion.version
        metadata["Rows compared"] = champion.rows
    else:
        metadata["Champion version"] = (champion.problem if champion else None) or "none (first model)"
    if metrics.intervals:
        metadata["Scores with 95 % intervals"] = _interval_table(metrics)
    if metrics.baseline is not None:
        metadata["Baseline"] = metrics.baseline.name
        metadata["Model vs baseline"] = _baseline_table(metrics)
    metadata.update(_slices_metadata(pipeline, metrics))
    metadata["Signature vs production"] = metrics.signature.describe() if metrics.signature else ""
    return metadata


def _slices_metadata(pipeline: PipelineRuntime, metrics: ModelMetrics) -> dict[str, Any]:
    """The slice tables: every score per declared slice, the champion and challenger per slice, the
    worst slices of every categorical feature."""
    metadata: dict[str, Any] = {}
    keys = list(metrics.scores)
    if metrics.slices:
        rows = [{"Column": s.column, "Slice": s.value, "Rows": s.rows, **s.scores} for s in metrics.slices]
        columns = [("Column", "string"), ("Slice", "string"), ("Rows", "int"), *((k, "float") for k in keys)]
        metadata["Slices"] = rows_table(rows, columns)
    champion = metrics.champion
    if champion is not None and champion.slices:
        # Every value both have, the gated metrics first.
        first = {t.metric for t in pipeline.spec.gate_thresholds}
        gated = sorted(dict.fromkeys([*keys, *champion.challenger]), key=lambda k: k not in first)
        rows = [
            {
                "Slice": s.name,
                "Rows": s.rows,
                "Metric": key,
                "Champion": s.champion[key],
                "Challenger": s.challenger[key],
                "Change": s.challenger[key] - s.champion[key],
            }
            for s in champion.slices
            for key in gated
            if key in s.champion and key in s.challenger
        ]
        columns = [("Slice", "string"), ("Rows", "int"), ("Metric", "string")]
        columns += [("Champion", "float"), ("Challenger", "float"), ("Change", "float")]
        metadata["Slices vs champion"] = rows_table(rows, columns)
    if metrics.worst_slices:
        metric = pipeline.spec.gate_metric
        rows = [
            {"Slice": s.name, "Rows": s.rows, metric: s.scores[metric], "Whole test split": metrics.scores.get(metric)}
            for s in metrics.worst_slices
        ]
        columns = [("Slice", "string"), ("Rows", "int"), (metric, "float"), ("Whole test split", "float")]
        metadata[f"Worst slices by {metric}"] = rows_table(rows, columns)
    return metadata


def _interval_table(metrics: ModelMetrics) -> dg.MetadataValue:
    """Each value with its bootstrap interval: "0.9620 [0.9310, 0.9860]"."""
    rows = []
    for key, (low, high) in metrics.intervals.items():
        metric, _, of_class = key.partition("[")
        value = metrics.value(metric, of_class.removesuffix("]") or None)
        if value is not None:
            rows.append(
                {
                    "Metric": key,
                    "Value": float(value),
                    "Low": low,
                    "High": high,
                    "Shown": f"{value:.4f} [{low:.4f}, {high:.4f}]",
                }
            )
    columns = [("Metric", "string"), ("Value", "float"), ("Low", "float"), ("High", "float"), ("Shown", "string")]
    return rows_table(rows, columns)


def _baseline_table(metrics: ModelMetrics) -> dg.MetadataValue:
    """Each score of the model beside the do-nothing baseline's on the same test rows."""
    rows = []
    for name, value in metrics.scores.items():
        base = metrics.baseline.scores.get(name)
        if base is not None:
            higher = GATE_METRICS[metrics.task].get(name, True)
            beaten = value > base if higher else value < base
            rows.append({"Metric": name, "Model": float(value), "Baseline": float(base), "Beaten": bool(beaten)})
    return rows_table(rows, [("Metric", "string"), ("Model", "float"), ("Baseline", "float"), ("Beaten", "bool")])


def _comparison_table(champion: ChampionComparison) -> dg.MetadataValue:
    """Every value both models have on the same rows, side by side."""
    rows = [
        {
            "Metric": key,
            "Champion": float(value),
            "Challenger": float(champion.challenger[key]),
            "Change": float(champion.challenger[key]) - float(value),
        }
        for key, value in champion.champion.items()
        if key in champion.challenger and key != "test_rows"
    ]
    columns = [("Metric", "string"), ("Champion", "float"), ("Challenger", "float"), ("Change", "float")]
    return rows_table(rows, columns)


def metrics_recipe(
    pipeline: PipelineRuntime, trained_model: TrainedModel, test_split: pd.DataFrame, production: ModelVersion | None
) -> str:
    """sha256 of what model_metrics is computed from: the model's recipe, the test split, the
    production version it is compared with (``production``, the version this step read), the
    platform's version, the slices asked for. model_metrics' Dagster data version."""
    recipe = {
        "model": trained_model.identity,
        "test_split": frame_fingerprint(test_split),
        "production": [production.version, production.record.identity] if production else None,
        "platform_version": platform_version(),
        "task": pipeline.task,
    }
    evaluation = pipeline.spec.evaluation.model_dump(exclude_defaults=True)
    if evaluation:  # slices declared (a file without them keeps its recipe)
        recipe["evaluation"] = evaluation
    return "sha256:" + hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()


def _stored_metrics(context: dg.AssetExecutionContext, recipe: str) -> ModelMetrics | None:
    """This partition's stored model_metrics, when Dagster recorded this recipe as its data version
    and the stored value is a whole score; else None (scored again)."""
    partition = str(context.partition_key)
    if latest_data_version(context.instance, context.asset_key, partition) != recipe:
        return None
    stored, problem = own_stored_output(context)
    if problem is not None:
        context.log.warning(f"the stored model_metrics of {partition} {problem}: scoring again")
        return None
    if not isinstance(stored, ModelMetrics):
        return None  # stored by an older version of the platform (a dict): scored again
    context.log.info(
        f"reused the stored model_metrics of {partition} (the same model, test split and"
        " production version): no scoring"
    )
    return stored


def _score(
    context: dg.AssetExecutionContext, pipeline: PipelineRuntime, trained_model: TrainedModel, test_split: pd.DataFrame
) -> tuple[ModelMetrics, ScoredTestSplit]:
    """The model's scores on the test split (the task's metrics and their details), each with its
    bootstrap interval, and on each slice; with what it said on each row, for the champion comparison."""
    outputs = predict_outputs(trained_model.model, test_split, trained_model.target, pipeline.task)
    score = classification_metrics if pipeline.task == "classification" else regression_metrics
    metrics = ModelMetrics.of(pipeline.task, score(trained_model.model, test_split, trained_model.target, outputs))
    values = metrics.compared_values(pipeline.spec.gated_classes)
    started = time.perf_counter()
    metrics = metrics.with_(intervals=intervals(outputs, list(values), point=values))
    context.log.info(
        f"bootstrap {int(LEVEL * 100)} % intervals of {len(metrics.intervals)} values from {RESAMPLES} resamples"
        f" of the {metrics.test_rows} test rows in {time.perf_counter() - started:.1f} s"
    )
    shown = ("accuracy", "f1") if pipeline.task == "classification" else ("r2", "rmse", "mae")
    context.log.info(
        ", ".join(f"{name} {metrics.shown(name)}" for name in shown) + f" on {metrics.test_rows} test rows"
    )
    scored = ScoredTestSplit(
        test_split, trained_model.model, outputs, _slice_labels(pipeline, trained_model, test_split)
    )
    return _with_slices(context, pipeline, trained_model, metrics, scored), scored


def _kinds(trained_model: TrainedModel) -> dict[str, str]:
    """Each column's kind as the model took it (its signature)."""
    return dict(trained_model.signature.kinds) if trained_model.signature is not None else {}


def _slice_labels(pipeline: PipelineRuntime, trained_model: TrainedModel, test_split: pd.DataFrame) -> pd.DataFrame:
    """Each test row's slice of every column of ``evaluation.slices``."""
    evaluation = pipeline.spec.evaluation
    missing = [c for c in evaluation.slices if c not in test_split.columns]
    if missing:
        raise DataValidationError(
            f"evaluation.slices: {', '.join(map(repr, missing))} not a column of the test split"
            f" (its feature columns: {', '.join(str(c) for c in test_split.columns if c != pipeline.target)})"
        )
    kinds = _kinds(trained_model)
    return pd.DataFrame(
        {c: slice_labels(test_split[c], evaluation.bins, kinds.get(c)) for c in evaluation.slices},
        index=test_split.index,
    )


def _with_slices(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    trained_model: TrainedModel,
    metrics: ModelMetrics,
    scored: ScoredTestSplit,
) -> ModelMetrics:
    """Every score on each declared slice; the worst slices of every categorical feature by the gate metric."""
    started = time.perf_counter()
    keys = list(metrics.scores)
    slices = [
        found
        for column in scored.slices.columns
        for found in scores_of_slices(scored.outputs, column, scored.slices[column], keys, most=MAX_VALUES)
    ]
    metric, evaluation = pipeline.spec.gate_metric, pipeline.spec.evaluation
    kinds = _kinds(trained_model)
    categorical = [
        str(c) for c in scored.rows.columns if c != pipeline.target and is_categorical(scored.rows[c], kinds.get(c))
    ]
    worst = worst_slices(
        scored.outputs,
        scored.rows,
        categorical,
        metric,
        GATE_METRICS[pipeline.task][metric],
        evaluation.min_support,
    )
    context.log.info(
        f"{len(slices)} slices of {len(scored.slices.columns)} declared column(s) scored; the {WORST} worst"
        f" {metric} over {len(categorical)} categorical feature(s) with at least {evaluation.min_support} rows:"
        f" {', '.join(f'{s.name} {s.scores[metric]:.4f} ({s.rows} rows)' for s in worst) or 'none'}"
        f" ({time.perf_counter() - started:.1f} s)"
    )
    return metrics.with_(slices=slices, worst_slices=worst)


def _model_metrics(
    context: dg.AssetExecutionContext,
    pipeline: PipelineRuntime,
    model_store: ModelStore,
    trained_model: TrainedModel,
    test_split: pd.DataFrame,
    train_split: pd.DataFrame,
) -> dg.Output[ModelMetrics]:
    """The score of the model, the baseline's and the champion's on the same rows and the signature
    comparison; or the
    stored score when the model, the test split and the production version are what it was computed
    from."""
    metric = pipeline.spec.gate_metric
    # The production version, read once: the score's recipe, the champion and the signature are all
    # compared with this one.
    with retried_when_unavailable(context, pipeline.settings):
        production, unreadable = pipeline.production_read(model_store)
    recipe = None if unreadable else metrics_recipe(pipeline, trained_model, test_split, production)
    reused = _stored_metrics(context, recipe) if recipe else None
    if reused is not None:
        return dg.Output(
            reused,
            data_version=dg.DataVersion(recipe),
            metadata={
                "Reused": f"stored {context.partition_key} (same model, test split and production version)",
                **_metrics_metadata(pipeline, reused),
                **run_link(context, pipeline, reused.mlflow_run_id),
            },
        )
    metrics, scored = _score(context, pipeline, trained_model, test_split)
    baseline = baseline_scores(pipeline, train_split, test_split)
    context.log.info(
        f"baseline {baseline.name} (fitted on the {len(train_split)} training rows): {metric}"
        f" {baseline.scores[metric]:.4f}"
        if metric in baseline.scores
        else f"baseline {baseline.name}: no {metric}"
    )
    metrics = metrics.with_(baseline=baseline)
    champion = champion_scores(context, pipeline, model_store, trained_model, scored, production, unreadable)
    if champion and champion.compared and metric in champion.champion and metric in champion.challenger:
        context.log.info(
            f"on the {champion.rows} test rows new to both: champion {champion.version}"
            f" {metric} {champion.champion[metric]:.4f}, challenger {champion.challenger[metric]:.4f}"
        )
    metrics = metrics.with_(champion=champion, signature=signature_comparison(trained_model, production, unreadable))
    metrics, tracked = track_metrics(context, pipeline, trained_model, metrics)
    metadata = {**_metrics_metadata(pipeline, metrics), **tracked}
    return dg.Output(metrics, metadata=metadata, data_version=dg.DataVersion(recipe) if recipe else None)


def build_model_metrics(pipeline: PipelineRuntime) -> dg.AssetsDefinition:
    classification = pipeline.task == "classification"

    @dg.asset(
        key=pipeline.key("model_metrics"),
        ins={
            "trained_model": dg.AssetIn(key=pipeline.key("trained_model")),
            "test_split": dg.AssetIn(key=pipeline.key("test_split")),
            # The do-nothing baseline is fitted on the same training rows as the model.
            "train_split": dg.AssetIn(key=pipeline.key("train_split")),
        },
        **pipeline.asset_options("evaluate", constants.ML_OWNER),
        io_manager_key="model_io_manager",
        kinds={"scikitlearn"},
        config_schema={},  # takes no config: any key given to it is refused before the run starts
        description=(
            "Accuracy, weighted precision/recall/F1, confusion matrix and report on the test split,"
            if classification
            else "R2, RMSE, MAE and residuals on the test split,"
        )
        + " each score per slice, and the production model's scores on the same rows.",
    )
    def model_metrics(
        context: dg.AssetExecutionContext,
        model_store: ModelStore,
        trained_model: TrainedModel,
        test_split: pd.DataFrame,
        train_split: pd.DataFrame,
    ) -> dg.Output[ModelMetrics]:
        with stage_timeout(context, pipeline, "evaluate"):
            return _model_metrics(context, pipeline, model_store, trained_model, test_split, train_split)

    return model_metrics
