"""A deployed model, loaded and verified, that predicts behind its signature check."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.backends.environment import model_store_of
from ml_platform.compiled import Parity, compiled_or_reason
from ml_platform.errors import PredictionError
from ml_platform.resources.model_store import ModelVersion
from ml_platform.row_plan import PlannedRows, Unplanned
from ml_platform.settings import load_settings
from ml_platform.signature import InputReport, check_rows


@dataclass(frozen=True)
class Probabilities:
    """A classifier's probabilities of some rows as an array and the classes' names: what the
    server's answers and its prediction log read (a DataFrame per request cost tens of
    microseconds on the request path, and as much again in the log's writer)."""

    values: np.ndarray
    columns: pd.Index

    def __len__(self) -> int:
        return len(self.values)

    def to_numpy(self, dtype: Any = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype, copy=False)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.values, columns=self.columns)


@dataclass
class PredictionResult:
    """Predictions of one call, who made them, and what the signature check did to the rows."""

    predictions: np.ndarray
    probabilities: pd.DataFrame | None  # classifiers, when asked: one column per class
    version: str
    sha256: str
    report: InputReport


class CheckedModel:
    """A stored model behind its signature: rows are checked and put in the model's columns, order
    and kinds before scikit-learn sees them (``ml_platform.signature.check_rows``), so bad input
    fails with one typed error naming the column (and row) instead of scikit-learn's internals.

    ``predict`` and ``predict_proba`` answer like scikit-learn's; ``predict_with_report`` also says
    which version answered and what the check reported. ``sklearn_model`` is the fitted scikit-learn object itself.

    A version whose compiled form answered its test split as scikit-learn did (``ml_platform.compiled``,
    its ``Parity`` recorded with the version) also has ``compiled``: ``checked`` then plans the rows it can
    (``PlannedRows``) and ``predict_planned`` answers them without pandas; ``compiled_problem`` says why
    a version has none.
    """

    def __init__(self, sklearn_model: Any, version: ModelVersion):
        self.sklearn_model = sklearn_model
        self.version = version
        signature = version.record.fit.signature
        if signature is None:
            raise PredictionError(f"{version.model_name} {version.version} records no feature columns")
        self.signature = signature
        self.parity = Parity.from_dict(version.record.parity)
        self.compiled, self.compiled_problem = compiled_or_reason(sklearn_model, signature, self.parity)

    def serving_path(self) -> dict[str, Any]:
        """How this model answers: through its compiled form or scikit-learn, the parity's evidence, and why."""
        recorded = self.parity.to_dict() if self.parity is not None else {}
        if self.compiled is not None:
            return {**recorded, "path": "compiled", "form": self.compiled.description, "reason": None}
        return {**recorded, "path": "scikit-learn", "reason": self.compiled_problem}

    @functools.cached_property
    def is_classifier(self) -> bool:
        return hasattr(self.sklearn_model, "predict_proba") and hasattr(self.sklearn_model, "classes_")

    @property
    def classes_(self) -> np.ndarray:
        if not self.is_classifier:
            raise PredictionError(f"{self.version.model_name} is a regression: it has no classes")
        return self.sklearn_model.classes_

    def check(self, rows: Any) -> tuple[pd.DataFrame, InputReport]:
        """The rows as the model takes them, and the report; raises a SignatureError."""
        return check_rows(rows, self.signature)

    def checked(self, rows: Any) -> tuple[PlannedRows | pd.DataFrame, InputReport]:
        """The rows planned by the compiled form when it can take them, else checked as ``check`` does."""
        if self.compiled is not None:
            try:
                planned = self.compiled.plan.rows(rows)
            except Unplanned:
                pass
            else:
                return planned, planned.report
        return self.check(rows)

    def rows_of(self, planned: PlannedRows, rows: Any) -> PlannedRows | pd.DataFrame:
        """Rows another model of the same signature planned (``planned``, from the request's ``rows``),
        as this model takes them: encoded by its own plan, or checked again without one."""
        if self.compiled is None:
            return self.check(rows)[0]
        return self.compiled.plan.encoded(planned)

    def predict_planned(self, matrix: np.ndarray, proba: bool) -> tuple[np.ndarray, pd.DataFrame | None]:
        """Predictions (and probabilities) of planned rows' matrix, by the compiled form."""
        predictions, probabilities = self.compiled.form.outputs(matrix, proba)
        if probabilities is None:
            return predictions, None
        return predictions, pd.DataFrame(probabilities, columns=self.class_columns, copy=False)

    @functools.cached_property
    def class_columns(self) -> pd.Index:
        """The probabilities' columns: each class as text (one Index, shared by every answer)."""
        return pd.Index([str(c) for c in self.sklearn_model.classes_])

    def predict(self, rows: Any) -> np.ndarray:
        return self.predict_with_report(rows).predictions

    def predict_proba(self, rows: Any) -> np.ndarray:
        return self.predict_with_report(rows, proba=True).probabilities.to_numpy()

    def refuse_proba(self) -> None:
        """Raise PredictionError when class probabilities are asked of a regression."""
        if not self.is_classifier:
            raise PredictionError(
                f"{self.version.model_name} {self.version.version} is a regression: it has no class probabilities"
            )

    def predict_checked(self, frame: pd.DataFrame, proba: bool = False) -> tuple[np.ndarray, pd.DataFrame | None]:
        """Predictions (and probabilities) of rows that ``check`` already returned."""
        try:
            predictions = np.asarray(self.sklearn_model.predict(frame))
            probabilities = None
            if proba:
                probabilities = pd.DataFrame(
                    self.sklearn_model.predict_proba(frame),
                    index=frame.index,
                    columns=[str(c) for c in self.sklearn_model.classes_],
                )
        except (ValueError, TypeError) as exc:
            # Only a version stored before signatures (kinds unknown) gets here with bad rows.
            raise PredictionError(
                f"{self.version.model_name} {self.version.version} cannot predict these rows: {exc}"
            ) from exc
        return predictions, probabilities

    def predict_with_report(self, rows: Any, proba: bool = False) -> PredictionResult:
        if proba:
            self.refuse_proba()
        frame, report = self.checked(rows)
        if isinstance(frame, PlannedRows):
            predictions, probabilities = self.predict_planned(frame.matrix, proba)
        else:
            predictions, probabilities = self.predict_checked(frame, proba)
        return PredictionResult(predictions, probabilities, self.version.version, self.version.sha256, report)


def load_production_model(
    model_name: str | None = None, store_dir: str | None = None, version: str | None = None
) -> tuple[CheckedModel, ModelVersion]:
    """Return (model, ModelVersion) of the production model (or ``version``), after checking its
    sha256. The model checks rows against its signature before it predicts (``CheckedModel``).

    Defaults come from the settings: ML_PLATFORM_MODEL_NAME, and the store ML_PLATFORM_ENV selects
    (ML_PLATFORM_MODEL_STORE_DIR locally, the S3 bucket in prod); ``store_dir`` picks a local
    store explicitly.
    Raises NoProductionModelError, ModelVersionNotFoundError or ModelIntegrityError.
    """
    settings = load_settings()
    store = model_store_of(settings, store_dir)
    sklearn_model, model_version = store.load(model_name or settings.model_name, version=version)
    return CheckedModel(sklearn_model, model_version), model_version
