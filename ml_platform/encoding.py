"""How a table's columns reach an estimator, free of Dagster: ``TableEncoder``, the step of every
model between the raw rows (or the team's feature step) and the estimator.

Each column is encoded by its kind: the kind declared in pipelines.yaml (``features``) or pinned
by the production model's signature, else what it holds.

- numeric and boolean columns become numbers (booleans 0/1); a declared ``datetime`` column becomes
  its hour, weekday and month;
- categorical columns (text, and numbers declared ``categorical``) are encoded as the estimator
  takes them: for ``HistGradientBoosting*`` natively (a pandas categorical per column, which it
  reads with ``categorical_features="from_dtype"``: at most 255 values per column, the rarest
  grouped), for every other estimator one-hot, bounded (``max_categories`` columns per column, values
  seen in fewer than ``min_frequency`` rows grouped, unseen ones with them), sparse only when the
  estimator accepts sparse input (scikit-learn's input tags) and the encoding is mostly zeros.

A column's values are normalized once here (missing values, ``7`` and ``7.0`` as one category,
booleans with nulls), so scikit-learn's encoders never see None and NaN side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from ml_platform import constants
from ml_platform.quality.kinds import category_text, datetimes

# The category rare and unseen values share in a native encoding, and the text of a missing value.
OTHER = "(other)"
MISSING = "(missing)"
DATETIME_PARTS = ("hour", "weekday", "month")
# Below this share of non-zero values the one-hot output is sparse (scikit-learn's ColumnTransformer
# uses the same threshold), for an estimator that accepts sparse input.
SPARSE_THRESHOLD = 0.3
_BOOLEANS = {True: 1.0, False: 0.0, "true": 1.0, "false": 0.0, "True": 1.0, "False": 0.0}


def inferred_kind(series: pd.Series) -> str:
    """The kind a column is encoded as when none is declared: what its dtype and values say."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_object_dtype(dtype):
        values = series.dropna()
        if len(values) and values.map(lambda v: isinstance(v, (bool, np.bool_))).all():
            return "boolean"
    return "categorical"


def _booleans(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("float64")
    return series.map(_BOOLEANS).astype("float64")


class TableEncoder(TransformerMixin, BaseEstimator):
    """Encodes a DataFrame's columns by kind for one estimator (see the module's docstring).

    ``kinds``: {column: numeric | boolean | categorical | datetime} declared (or pinned); the other
    columns' kinds are read off the training rows. ``native``: categorical columns as pandas
    categoricals (HistGradientBoosting); else one-hot. ``sparse``: the estimator accepts sparse
    input. ``max_categories`` / ``min_frequency``: the bound of a one-hot encoding.
    """

    def __init__(
        self,
        kinds: dict[str, str] | None = None,
        native: bool = False,
        sparse: bool = False,
        max_categories: int = constants.DEFAULT_ENCODING_MAX_CATEGORIES,
        min_frequency: int = constants.DEFAULT_ENCODING_MIN_FREQUENCY,
    ):
        self.kinds = kinds
        self.native = native
        self.sparse = sparse
        self.max_categories = max_categories
        self.min_frequency = min_frequency

    # -- fit ---------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> TableEncoder:
        frame = self._frame(X, fitting=True)
        declared = dict(self.kinds or {})
        self.kinds_ = {c: declared.get(c) or inferred_kind(frame[c]) for c in frame.columns}
        self.categorical_ = [c for c, kind in self.kinds_.items() if kind == "categorical"]
        numbers = self._numbers(frame)
        self.number_names_ = list(numbers.columns)
        if self.native:
            self.categories_ = {c: self._kept(category_text(frame[c])) for c in self.categorical_}
            return self
        self.imputer_ = SimpleImputer(strategy="median", keep_empty_features=True)
        self.scaler_ = StandardScaler()
        if self.number_names_:
            self.scaler_.fit(self.imputer_.fit_transform(numbers))
        self.onehot_ = None
        width = len(self.number_names_)
        if self.categorical_:
            self.onehot_ = OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                max_categories=self.max_categories,
                min_frequency=self.min_frequency,
                sparse_output=True,
                dtype=np.float64,
            ).fit(self._texts(frame))
            width += len(self.onehot_.get_feature_names_out())
        filled = len(self.number_names_) + len(self.categorical_)  # one non-zero per categorical column
        self.sparse_output_ = bool(self.sparse and self.categorical_ and filled / max(width, 1) < SPARSE_THRESHOLD)
        return self

    def _kept(self, text: pd.Series) -> list[str]:
        """A native encoding's categories: the most frequent values seen in at least min_frequency
        rows, and OTHER (rare and unseen values) last: at most NATIVE_MAX_CATEGORIES in all."""
        counts = text.value_counts()
        frequent = counts[counts >= self.min_frequency]
        room = constants.NATIVE_MAX_CATEGORIES - 1
        return [str(v) for v in frequent.index[:room]] + [OTHER]

    # -- transform ---------------------------------------------------------------------------------
    def transform(self, X: Any) -> Any:
        check_is_fitted(self, "kinds_")
        frame = self._frame(X)
        numbers = self._numbers(frame)
        if self.native:
            out = numbers
            for column in self.categorical_:
                kept = self.categories_[column]
                text = category_text(frame[column])
                mapped = text.where(text.isin(kept) | text.isna(), OTHER)
                out[column] = pd.Categorical(mapped, categories=kept)
            return out
        parts = []
        if self.number_names_:
            parts.append(self.scaler_.transform(self.imputer_.transform(numbers)))
        if self.onehot_ is not None:
            encoded = self.onehot_.transform(self._texts(frame))
            parts.append(encoded if self.sparse_output_ else encoded.toarray())
        if not parts:
            return np.empty((len(frame), 0))
        if self.sparse_output_:
            return sp.hstack([sp.csr_matrix(p) if not sp.issparse(p) else p for p in parts], format="csr")
        return np.hstack(parts)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "kinds_")
        if self.native:
            return np.asarray([*self.number_names_, *self.categorical_], dtype=object)
        names = [f"numeric__{n}" for n in self.number_names_]
        if self.onehot_ is not None:
            names += [f"categorical__{n}" for n in self.onehot_.get_feature_names_out(self.categorical_)]
        return np.asarray(names, dtype=object)

    # -- the columns -------------------------------------------------------------------------------
    def _frame(self, X: Any, fitting: bool = False) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"TableEncoder takes a DataFrame (its columns have names and kinds), got {type(X).__name__}"
            )
        frame = X.rename(columns=str)
        if fitting:
            self.feature_names_in_ = np.asarray(list(frame.columns), dtype=object)
            self.n_features_in_ = len(frame.columns)
            return frame
        missing = [c for c in self.feature_names_in_ if c not in frame.columns]
        if missing:
            raise ValueError(f"missing column(s) {', '.join(map(repr, missing))} the model was trained with")
        return frame

    def _numbers(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numeric and boolean columns as floats, a datetime column as its parts."""
        columns: dict[str, pd.Series] = {}
        for column, kind in self.kinds_.items():
            series = frame[column]
            if kind == "numeric":
                columns[column] = pd.to_numeric(series, errors="coerce").astype("float64")
            elif kind == "boolean":
                columns[column] = _booleans(series)
            elif kind == "datetime":
                moments = datetimes(series).dt
                for part, values in zip(DATETIME_PARTS, (moments.hour, moments.day_of_week, moments.month)):
                    columns[f"{column}_{part}"] = values.astype("float64")
        return pd.DataFrame(columns, index=frame.index)

    def _texts(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({c: category_text(frame[c]).fillna(MISSING) for c in self.categorical_}, index=frame.index)
