"""The scikit-learn work itself, free of Dagster: split, build, fit, score."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml_platform.errors import DataValidationError

PROGRESS_STEPS = 10


@dataclass
class TrainedModel:
    """A fitted Pipeline and where it came from; only ``pipeline`` is deployed."""

    pipeline: Pipeline
    params: dict[str, Any]
    target: str
    feature_columns: list[str]
    classes: list[Any]
    training_rows: int
    data_fingerprint: str
    fit_seconds: float
    data_as_of: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over the rows and column names: the same data gives the same fingerprint."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


def can_stratify(y: pd.Series, test_size: float) -> bool:
    """Stratify when every class can be on both sides of the split."""
    counts = y.value_counts()
    n_test = int(np.ceil(test_size * len(y)))
    n_train = len(y) - n_test
    return bool(len(counts) > 1 and counts.min() >= 2 and n_test >= len(counts) and n_train >= len(counts))


def split(
    frame: pd.DataFrame, target: str, test_size: float, random_state: int
) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """Train/test split, stratified on the target when the class counts allow it."""
    if target not in frame.columns:
        raise DataValidationError(f"target column {target!r} is missing from the training data")
    if len(frame) < 2:
        raise DataValidationError(f"cannot split {len(frame)} row(s) into train and test sets")
    frame = frame[frame[target].notna()].reset_index(drop=True)
    stratified = can_stratify(frame[target], test_size)
    train, test = train_test_split(
        frame,
        test_size=test_size,
        random_state=random_state,
        stratify=frame[target] if stratified else None,
    )
    return train.reset_index(drop=True), test.reset_index(drop=True), stratified


def build_pipeline(
    n_estimators: int, max_depth: int | None, random_state: int, n_jobs: int
) -> Pipeline:
    """Preprocessing inside the model, so the artifact predicts on raw rows.

    Numeric columns: median imputation + standard scaling. Everything else: most-frequent
    imputation + one-hot encoding that ignores categories unseen in training.
    """
    numeric = Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
    )
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("encode", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    preprocess = ColumnTransformer(
        [
            ("numeric", numeric, make_column_selector(dtype_include="number")),
            ("categorical", categorical, make_column_selector(dtype_exclude="number")),
        ]
    )
    estimator = RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth, random_state=random_state, n_jobs=n_jobs
    )
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def fit_with_progress(
    pipeline: Pipeline,
    x: pd.DataFrame,
    y: pd.Series,
    report: Callable[[int, int], None],
    steps: int = PROGRESS_STEPS,
) -> Pipeline:
    """Fit the pipeline, growing the forest in steps so that long fits report progress.

    With ``warm_start`` the forest skips the random draws of the trees it already has, so the
    trees are exactly those of a single ``fit`` (the plain-scikit-learn test checks this).
    """
    preprocess, forest = pipeline.named_steps["preprocess"], pipeline.named_steps["model"]
    transformed = preprocess.fit_transform(x, y)
    total = forest.n_estimators
    sizes = sorted({max(1, round(total * i / steps)) for i in range(1, steps + 1)})
    forest.set_params(warm_start=True)
    for size in sizes:
        forest.set_params(n_estimators=size)
        forest.fit(transformed, y)
        report(size, total)
    forest.set_params(warm_start=False)
    return pipeline


def features_and_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    if target not in frame.columns:
        raise DataValidationError(f"target column {target!r} is missing")
    return frame.drop(columns=[target]), frame[target]


def feature_importances(pipeline: Pipeline) -> list[tuple[str, float]]:
    """(transformed feature name, importance), largest first."""
    names = pipeline.named_steps["preprocess"].get_feature_names_out()
    importances = pipeline.named_steps["model"].feature_importances_
    pairs = [(str(n).split("__", 1)[-1], float(v)) for n, v in zip(names, importances)]
    return sorted(pairs, key=lambda p: p[1], reverse=True)


def classification_metrics(pipeline: Pipeline, test: pd.DataFrame, target: str) -> dict[str, Any]:
    """Accuracy and weighted precision/recall/F1, the confusion matrix and the per-class report."""
    x_test, y_test = features_and_target(test, target)
    if len(x_test) == 0:
        raise DataValidationError("the test split is empty: nothing to evaluate on")
    predicted = pipeline.predict(x_test)
    labels = list(pipeline.classes_)
    return {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "precision": float(precision_score(y_test, predicted, average="weighted", zero_division=0)),
        "recall": float(recall_score(y_test, predicted, average="weighted", zero_division=0)),
        "f1": float(f1_score(y_test, predicted, average="weighted", zero_division=0)),
        "labels": [_plain(v) for v in labels],
        "confusion_matrix": confusion_matrix(y_test, predicted, labels=labels).tolist(),
        "report": classification_report(
            y_test, predicted, labels=labels, output_dict=True, zero_division=0
        ),
        "test_rows": int(len(x_test)),
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
