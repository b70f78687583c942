"""The scikit-learn work itself, free of Dagster: split, build, fit, score.

A *model* here is the fitted scikit-learn object: a ``sklearn.pipeline.Pipeline`` of the
preprocessing and the estimator (``build_model``), so that it predicts on raw rows.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone, is_classifier
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    median_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline as SklearnPipeline
from sklearn.preprocessing import FunctionTransformer, label_binarize

from ml_platform import constants
from ml_platform.decision import decision_of, inner_estimator, with_decision
from ml_platform.encoding import TableEncoder
from ml_platform.errors import DataValidationError, UserCodeError
from ml_platform.intervals import Outputs
from ml_platform.metrics import CV_SCORERS, MULTICLASS_SCORERS, PROBABILITY_METRICS
from ml_platform.recipe import Fit, Recipe

PROGRESS_STEPS = 10
CV_FOLDS = 3


@dataclass
class TrainedModel:
    """A fitted model, its recipe and what the fit gave; only ``model`` is deployed, the rest goes
    into the version's record whole (ml_platform.recipe)."""

    model: SklearnPipeline
    recipe: Recipe
    fit: Fit
    # Which rows it learnt from (champion / challenger later compares on rows it never saw) and
    # their profile (the drift checks compare new days with it once it serves).
    train_row_hashes: np.ndarray | None = None
    drift_profile: dict[str, Any] | None = None
    mlflow_run_id: str | None = None  # with tracking: the run that logged it
    reused: str | None = None  # the stored version (or partition) it was loaded from instead of fitted

    @property
    def identity(self) -> str:
        """What the model is built from (``Recipe.identity``): the same recipe, the same identity."""
        return self.recipe.identity

    def __setstate__(self, state: dict) -> None:
        # Stored by an older platform: the recipe's and the fit's fields at the top level, the
        # rest in ``extra``, the fitted model once named ``pipeline``.
        if "recipe" not in state:
            state = _state_of_flat(state)
        self.__dict__.update(state)


def _state_of_flat(state: dict) -> dict:
    """A TrainedModel's state as an older platform pickled it, in today's fields."""
    extra = state.get("extra") or {}
    fit = {k: state.get(k) for k in ("classes", "training_rows", "fit_seconds", "data_as_of", "signature")}
    fit.update({k: extra.get(k) for k in ("variant", "cv_metric", "cv_score")})
    return {
        "model": state.get("model", state.get("pipeline")),
        "recipe": Recipe.from_dict(state),
        "fit": Fit(**{k: v for k, v in fit.items() if v is not None}),
        "train_row_hashes": extra.get("train_row_hashes"),
        "drift_profile": extra.get("drift_profile"),
        "mlflow_run_id": extra.get("mlflow_run_id"),
        "reused": extra.get("reused"),
    }


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over the rows and column names: the same data gives the same fingerprint."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One uint64 per row over every column (in name order): the same row, the same hash."""
    ordered = frame[sorted(frame.columns, key=str)]
    return pd.util.hash_pandas_object(ordered, index=False).to_numpy(dtype="uint64")


def can_stratify(y: pd.Series, test_size: float) -> bool:
    """Stratify when every class can be on both sides of the split."""
    counts = y.value_counts()
    n_test = int(np.ceil(test_size * len(y)))
    n_train = len(y) - n_test
    return bool(len(counts) > 1 and counts.min() >= 2 and n_test >= len(counts) and n_train >= len(counts))


def split(
    frame: pd.DataFrame, target: str, test_size: float, random_state: int, stratify: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """Train/test split; with ``stratify`` (classification) stratified on the target when the class
    counts allow it. Returns (train, test, stratified)."""
    if target not in frame.columns:
        raise DataValidationError(f"target column {target!r} is missing from the training data")
    if len(frame) < 2:
        raise DataValidationError(f"cannot split {len(frame)} row(s) into train and test sets")
    frame = frame[frame[target].notna()].reset_index(drop=True)
    stratified = stratify and can_stratify(frame[target], test_size)
    train, test = train_test_split(
        frame,
        test_size=test_size,
        random_state=random_state,
        stratify=frame[target] if stratified else None,
    )
    return train.reset_index(drop=True), test.reset_index(drop=True), stratified


def encoding_recipe(
    kinds: dict[str, str] | None,
    max_categories: int = constants.DEFAULT_ENCODING_MAX_CATEGORIES,
    min_frequency: int = constants.DEFAULT_ENCODING_MIN_FREQUENCY,
) -> dict[str, Any]:
    """What decides how a model's columns are encoded, as recorded with it (part of its recipe)."""
    return {
        "encoder": "TableEncoder/1",
        "kinds": dict(sorted((kinds or {}).items())),
        "max_categories": max_categories,
        "min_frequency": min_frequency,
    }


def accepts_sparse(estimator: Any) -> bool:
    """Whether an estimator takes sparse input, by scikit-learn's input tags (an estimator without
    them is given dense input)."""
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(estimator).input_tags.sparse)
    except Exception:  # noqa: BLE001 - a third-party estimator without scikit-learn's tags
        return False


def native_categories(estimator: Any) -> bool:
    """Whether an estimator reads pandas categoricals itself (HistGradientBoosting with
    ``categorical_features="from_dtype"``): its categories are then never one-hot encoded."""
    return (
        isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor))
        and getattr(estimator, "categorical_features", None) == "from_dtype"
    )


def build_model(
    estimator: Any,
    transform: Any = None,
    encoding: dict[str, Any] | None = None,
    decision: dict[str, Any] | None = None,
    classes: list[Any] | None = None,
    seed: int = constants.DEFAULT_RANDOM_STATE,
) -> SklearnPipeline:
    """The (unfitted) model of an estimator: preprocessing inside it, so it predicts on raw rows.

    ``transform`` (the pipeline's ``features.transform``) comes first, on the raw rows. Then the
    ``TableEncoder`` (ml_platform.encoding): numbers imputed (median) and scaled, categories one-hot
    encoded within a bound (sparse where the estimator takes it), or natively for
    HistGradientBoosting; ``encoding`` (``encoding_recipe``) gives the declared kinds and the bound.
    With a ``decision`` (binary ``classes``), the estimator decides at its threshold
    (ml_platform.decision).
    """
    encoding = encoding or encoding_recipe(None)
    encoder = TableEncoder(
        kinds=dict(encoding["kinds"]) or None,
        native=native_categories(estimator),
        sparse=accepts_sparse(estimator),
        max_categories=encoding["max_categories"],
        min_frequency=encoding["min_frequency"],
    )
    steps = [("features", transform)] if transform is not None else []
    final = with_decision(estimator, decision, list(classes or []), seed)
    return SklearnPipeline([*steps, ("preprocess", encoder), ("model", final)])


def feature_step(import_path: str) -> Any:
    """The scikit-learn step of ``features.transform``: a function DataFrame -> DataFrame (wrapped in a
    FunctionTransformer), a transformer class (made without arguments) or a transformer object. Its
    output must stay a DataFrame (transformers are asked for pandas output), because the
    preprocessing picks numeric and categorical columns by dtype."""
    from ml_platform.user_code import import_object

    found = import_object(import_path)
    if isinstance(found, type):
        try:
            found = found()
        except Exception as exc:  # noqa: BLE001 - the team's class refused: say which and why
            raise UserCodeError(f"{import_path}() failed: {type(exc).__name__}: {exc}") from None
    if hasattr(found, "transform") and hasattr(found, "fit"):
        if hasattr(found, "set_output"):
            found.set_output(transform="pandas")
        return found
    if callable(found):
        return FunctionTransformer(found, validate=False)
    raise UserCodeError(
        f"{import_path} is a {type(found).__name__}: give a function DataFrame -> DataFrame"
        " or a transformer (fit and transform)"
    )


def user_objects(model: SklearnPipeline) -> list[Any]:
    """What of the team's own code the model holds: its estimator, its feature function or transformer."""
    found = [inner_estimator(model)]
    step = model.named_steps.get("features")
    if step is not None:
        found.append(step.func if isinstance(step, FunctionTransformer) else step)
    return found


def make_model(
    task: str,
    estimator: str,
    params: dict[str, Any],
    transform: str | None = None,
    encoding: dict[str, Any] | None = None,
    decision: dict[str, Any] | None = None,
    classes: list[Any] | None = None,
) -> SklearnPipeline:
    """The (unfitted) model of a pipelines.yaml ``model`` entry (see ml_platform.estimators), its
    ``features.transform``, its encoding (``encoding_recipe``) and its ``decision`` threshold (of
    the target's two ``classes``)."""
    from ml_platform.estimators import estimator_of

    return build_model(
        estimator_of(task, estimator).make(params),
        feature_step(transform) if transform else None,
        encoding,
        decision,
        classes,
    )


def fit_with_progress(
    model: SklearnPipeline,
    x: pd.DataFrame,
    y: pd.Series,
    report: Callable[[int, int], None],
    steps: int = PROGRESS_STEPS,
) -> SklearnPipeline:
    """Fit the model; a forest grows in steps so that long fits report progress.

    With ``warm_start`` the forest skips the random draws of the trees it already has, so the
    trees are exactly those of a single ``fit`` (the plain-scikit-learn test checks this). Other
    estimators fit in one go and report once, at the end.
    """
    # The steps before the estimator (the feature transform, the preprocessing), fitted in place.
    estimator, inputs = model.named_steps["model"], x
    if "features" in model.named_steps:
        try:
            inputs = model.named_steps["features"].fit_transform(x, y)
        except Exception as exc:  # the team's feature code failed: one sentence, which and why
            raise UserCodeError(f"features.transform failed on the training rows: {type(exc).__name__}: {exc}") from exc
        if not isinstance(inputs, pd.DataFrame):
            raise DataValidationError(
                f"features.transform returned a {type(inputs).__name__}, not a DataFrame: the"
                " preprocessing after it picks columns by dtype"
            )
    transformed = model.named_steps["preprocess"].fit_transform(inputs, y)
    if not isinstance(estimator, (RandomForestClassifier, RandomForestRegressor)):
        estimator.fit(transformed, y)
        report(1, 1)
        return model
    total = estimator.n_estimators
    sizes = sorted({max(1, round(total * i / steps)) for i in range(1, steps + 1)})
    estimator.set_params(warm_start=True)
    for size in sizes:
        estimator.set_params(n_estimators=size)
        estimator.fit(transformed, y)
        report(size, total)
    estimator.set_params(warm_start=False)
    return model


def fit_variant(
    model: SklearnPipeline,
    x: pd.DataFrame,
    y: pd.Series,
    metric: str,
    seed: int,
    report: Callable[[int, int], None],
) -> tuple[SklearnPipeline, float]:
    """Score a hyperparameter variant by ``CV_FOLDS``-fold cross-validation on the train split (in
    the gate metric's own units: an RMSE is positive), then fit it on all of it. The test split is
    left for the gate, so choosing the best variant does not flatter its test score."""
    classification = is_classifier(model)
    folds = (
        StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed)
        if classification and y.value_counts().min() >= CV_FOLDS
        else KFold(CV_FOLDS, shuffle=True, random_state=seed)
    )
    scorer = CV_SCORERS[metric]
    if classification and y.nunique() > 2:
        scorer = MULTICLASS_SCORERS.get(metric, scorer)
    scores = cross_val_score(clone(model), x, y, scoring=scorer, cv=folds)
    score = float(np.mean(scores))
    if scorer.startswith("neg_"):
        score = -score
    return fit_with_progress(model, x, y, report), score


def features_and_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    if target not in frame.columns:
        raise DataValidationError(f"target column {target!r} is missing")
    return frame.drop(columns=[target]), frame[target]


def feature_importances(model: SklearnPipeline) -> list[tuple[str, float]]:
    """(transformed feature name, importance), largest first: a forest's impurity importances,
    a linear model's absolute coefficients (on scaled inputs); [] for other estimators."""
    estimator = inner_estimator(model)
    if hasattr(estimator, "feature_importances_"):
        importances = np.asarray(estimator.feature_importances_, dtype="float64")
    elif hasattr(estimator, "coef_"):
        coef = np.abs(np.asarray(estimator.coef_, dtype="float64"))
        importances = coef.mean(axis=0) if coef.ndim > 1 else coef
    else:
        return []
    names = model.named_steps["preprocess"].get_feature_names_out()
    pairs = [(str(n).split("__", 1)[-1], float(v)) for n, v in zip(names, importances)]
    return sorted(pairs, key=lambda p: p[1], reverse=True)


def predict_outputs(model: SklearnPipeline, test: pd.DataFrame, target: str, task: str) -> Outputs:
    """What the model says on the test rows (predictions; a classifier's probabilities when it has
    predict_proba), with the true values: what every metric and interval is computed from."""
    x_test, y_test = features_and_target(test, target)
    if len(x_test) == 0:
        raise DataValidationError("the test split is empty: nothing to evaluate on")
    if task != "classification":
        predicted = np.asarray(model.predict(x_test), dtype="float64")
        return Outputs(task, y_test.to_numpy(dtype="float64"), predicted)
    proba = model.predict_proba(x_test) if hasattr(model, "predict_proba") else None
    name = type(inner_estimator(model)).__name__
    return Outputs(task, y_test.to_numpy(), np.asarray(model.predict(x_test)), proba, tuple(model.classes_), name)


def classification_metrics(
    model: SklearnPipeline, test: pd.DataFrame, target: str, outputs: Outputs | None = None
) -> dict[str, Any]:
    """Every classification metric the model can have, by scikit-learn's own functions: accuracy,
    balanced_accuracy; precision, recall, f1 weighted (``precision``: the platform's name for it
    since the start) and macro; per class in the report; with ``predict_proba``, roc_auc (binary, or
    one-vs-rest macro), average_precision (binary, or macro over one-vs-rest), log_loss and, binary,
    brier_score_loss. A metric the rows cannot define (one class in the test split) is left out and
    named in ``not_computed`` with why. Also the labels, the confusion matrix, the test rows, and
    the model's decision threshold when it has one (ml_platform.decision).
    ``outputs``: the model's predictions on ``test`` when already made (predict_outputs)."""
    outputs = outputs or predict_outputs(model, test, target, "classification")
    with _said_in_not_computed():
        measured = _classification_scores(outputs)
    decision = decision_of(model)
    if decision is not None:  # the counting metrics are at this threshold
        measured["decision"] = decision
    return measured


@contextmanager
def _said_in_not_computed() -> Iterator[None]:
    """Quiet scikit-learn's warnings about classes missing from the test rows: the report says it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        yield


def _classification_scores(outputs: Outputs) -> dict[str, Any]:
    y_test, predicted, labels = outputs.y, outputs.predicted, list(outputs.labels)
    scores: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y_test, predicted)),
    }
    for average, suffix in (("weighted", ""), ("macro", "_macro")):
        scores[f"precision{suffix}"] = float(precision_score(y_test, predicted, average=average, zero_division=0))
        scores[f"recall{suffix}"] = float(recall_score(y_test, predicted, average=average, zero_division=0))
        scores[f"f1{suffix}"] = float(f1_score(y_test, predicted, average=average, zero_division=0))
    not_computed: dict[str, str] = {}
    if outputs.proba is not None:
        probability_scores(y_test, outputs.proba, labels, scores, not_computed)
    else:
        not_computed.update(dict.fromkeys(PROBABILITY_METRICS, f"{outputs.estimator} has no predict_proba"))
    return {
        **scores,
        "labels": [_plain(v) for v in labels],
        "confusion_matrix": confusion_matrix(y_test, predicted, labels=labels).tolist(),
        "report": classification_report(y_test, predicted, labels=labels, output_dict=True, zero_division=0),
        "not_computed": not_computed,
        "test_rows": int(len(y_test)),
    }


def scores_of(outputs: Outputs) -> dict[str, Any]:
    """Every metric of the task on what a model said (``outputs``), by the functions model_metrics
    uses: classification_metrics' scores, or regression_metrics'."""
    if outputs.task == "classification":
        with _said_in_not_computed():
            return _classification_scores(outputs)
    return regression_metrics(None, pd.DataFrame(), "", outputs)


def probability_scores(
    y: np.ndarray, proba: np.ndarray, labels: list[Any], scores: dict[str, Any], not_computed: dict[str, str]
) -> None:
    """roc_auc, average_precision, log_loss and (binary) brier_score_loss of ``proba`` (one column per
    label, in ``labels``' order) into ``scores``; what the rows cannot define into ``not_computed``."""
    present = set(pd.unique(y))
    if len(labels) == 2:
        positive = np.asarray(y) == labels[1]
        if len(present) < 2:
            not_computed.update(dict.fromkeys(("roc_auc", "average_precision"), "one class in the test split"))
        else:
            scores["roc_auc"] = float(roc_auc_score(positive, proba[:, 1]))
            scores["average_precision"] = float(average_precision_score(positive, proba[:, 1]))
        scores["brier_score_loss"] = float(brier_score_loss(positive, proba[:, 1]))
    else:
        not_computed["brier_score_loss"] = "binary classification only"
        if present != set(labels):
            missing = ", ".join(map(str, sorted(set(labels) - present, key=str)))
            not_computed.update(
                dict.fromkeys(("roc_auc", "average_precision"), f"class(es) {missing} absent from the test split")
            )
        else:
            scores["roc_auc"] = float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels))
            scores["average_precision"] = float(
                average_precision_score(label_binarize(y, classes=labels), proba, average="macro")
            )
    scores["log_loss"] = float(log_loss(y, proba, labels=labels))


def regression_metrics(
    model: SklearnPipeline, test: pd.DataFrame, target: str, outputs: Outputs | None = None
) -> dict[str, Any]:
    """r2, rmse (root_mean_squared_error), mae (mean_absolute_error), mape
    (mean_absolute_percentage_error) and median_absolute_error, by scikit-learn's own functions;
    residual quantiles, and mean predicted vs actual per actual-value decile. ``outputs``: the
    model's predictions on ``test`` when already made (predict_outputs)."""
    outputs = outputs or predict_outputs(model, test, target, "regression")
    predicted, actual = outputs.predicted, outputs.y
    residuals = actual - predicted
    bins = pd.qcut(pd.Series(actual), q=min(10, max(1, len(np.unique(actual)))), duplicates="drop")
    calibration = [
        {
            "Actual (bin)": str(interval),
            "Rows": int(len(group)),
            "Mean actual": float(group["a"].mean()),
            "Mean predicted": float(group["p"].mean()),
        }
        for interval, group in pd.DataFrame({"a": actual, "p": predicted}).groupby(bins, observed=True)
    ]
    return {
        "r2": float(r2_score(actual, predicted)) if len(actual) > 1 else float("nan"),
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "mae": float(mean_absolute_error(actual, predicted)),
        "mape": float(mean_absolute_percentage_error(actual, predicted)),
        "median_absolute_error": float(median_absolute_error(actual, predicted)),
        "residual_quantiles": {f"p{q}": float(np.percentile(residuals, q)) for q in (5, 25, 50, 75, 95)},
        "calibration": calibration,
        "test_rows": int(len(actual)),
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
