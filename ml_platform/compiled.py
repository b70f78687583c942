"""A version's compiled form, free of Dagster: its rows' plan (``row_plan``) and its estimator's fast
form, which answer a few rows in well under a millisecond where the scikit-learn Pipeline spends
milliseconds on fixed costs (pandas frames, input validation, a call per tree).

The estimator's forms, each computing what scikit-learn computes, in the same order of operations:

- **forests** (random forest, extra trees; classifier and regressor): every tree walked at once in
  NumPy on the rows as float32 (as scikit-learn's trees read them), leaf values summed tree by tree
  in the forest's order, then divided by the number of trees;
- **histogram gradient boosting**: the same walk over its predictors (numeric thresholds, missing
  values, categorical splits by their bitsets), raw values summed iteration by iteration from the
  baseline, then scikit-learn's own link (sigmoid, softmax) and decision;
- **any other estimator** (linear models, a team's own): its own predict and predict_proba on the
  plan's matrix (the encoder's output without the frame);
- a **decision threshold** around any of them: the positive class's probability against the
  threshold, by scikit-learn's own rule.

Many rows at once (more than ``WALK_LIMIT`` tree walks) go to scikit-learn's own compiled trees on
the plan's matrix instead (a forest's trees called one by one, a boosting model's predictors),
which are faster there.

A compiled form serves only after it answered the version's test split as scikit-learn does
(``parity_of``: labels equal, probabilities and values within ``TOLERANCE``); the ``Parity`` is
recorded with the version, and a form that disagrees, or that cannot be built, leaves the version on
scikit-learn's path with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import sklearn

from ml_platform.row_plan import NoPlan, PlannedRows, RowPlan, Unplanned
from ml_platform.signature import Signature, check_rows

# The forms' code: a parity recorded under another is not trusted (the version is checked again on deploy).
COMPILED_FORMAT = 2
# Rows x trees walked in NumPy at once; beyond it, scikit-learn's own trees on the plan's matrix.
WALK_LIMIT = 4096
# Probabilities and regression values may differ from scikit-learn's by this much, relatively.
TOLERANCE = 1e-9
# Why a version without a recorded parity is served by scikit-learn.
NO_PARITY = (
    "no parity recorded (stored before compiled forms, or not by a pipeline):"
    " the next version a pipeline trains gets one"
)
# The test rows compared one a request (the one-row walk), then the walk's largest requests up to
# ``WALKED_PARITY_ROWS``; the rest in large batches (scikit-learn's trees on the plan's matrix).
SINGLE_PARITY_ROWS = 500
WALKED_PARITY_ROWS = 2000


# -- trees as arrays -------------------------------------------------------------------------------
@dataclass
class _Nodes:
    """Every tree's nodes in one set of arrays: a leaf points at itself, so a walk can go on."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    roots: np.ndarray
    depth: int
    categorical: np.ndarray | None = None  # histogram gradient boosting: a node splits on categories
    bitset: np.ndarray | None = None  # its categories' row in ``left_bits``
    left_bits: np.ndarray | None = None
    known_bits: np.ndarray | None = None  # each categorical feature's known categories
    feature_bits: np.ndarray | None = None  # a feature's row in ``known_bits``

    def walk(self, x: np.ndarray) -> np.ndarray:
        """Each row's leaf in each tree: (rows, trees)."""
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots)))
        for _ in range(self.depth):
            feature = self.feature[node]
            value = x[rows, feature]
            go_left = value <= self.threshold[node]
            missing = np.isnan(value)
            if self.categorical is not None:
                go_left, missing = self._categories(node, feature, value, go_left, missing)
            go_left = np.where(missing, self.missing_left[node], go_left)
            node = np.where(go_left, self.left[node], self.right[node])
        return node

    def _categories(self, node, feature, value, go_left, missing):
        """Histogram gradient boosting's categorical splits: a category in the node's bitset goes
        left, another known one right, a negative or unknown one as a missing value."""
        split = self.categorical[node]
        if not split.any():
            return go_left, missing
        usable = split & ~missing & (value >= 0)
        code = np.minimum(np.where(usable, value, 0), 255).astype(np.int64)  # scikit-learn reads a uint8
        word, bit = code >> 5, code & 31
        in_left = ((self.left_bits[self.bitset[node], word] >> bit) & 1).astype(bool)
        known = ((self.known_bits[self.feature_bits[feature], word] >> bit) & 1).astype(bool)
        missing = missing | (split & ((value < 0) | (~in_left & ~known)))
        return np.where(split, in_left, go_left), missing


class _OneRowWalk:
    """One row through every tree in plain Python, on the nodes as lists: for one row of a model of
    shallow trees (gradient boosting's), a NumPy call per level of the deepest tree costs more than
    the row's own steps. The same comparisons as ``_Nodes.walk``, so the same leaves."""

    def __init__(self, nodes: _Nodes):
        self.roots = nodes.roots.tolist()
        self.feature, self.threshold = nodes.feature.tolist(), nodes.threshold.tolist()
        self.left, self.right = nodes.left.tolist(), nodes.right.tolist()
        self.missing_left = nodes.missing_left.tolist()
        self.categorical = nodes.categorical.tolist() if nodes.categorical is not None else None
        if self.categorical is not None:
            self.bitset, self.left_bits = nodes.bitset.tolist(), nodes.left_bits.tolist()
            self.known_bits, self.feature_bits = nodes.known_bits.tolist(), nodes.feature_bits.tolist()

    def leaves(self, row: list[float]) -> list[int]:
        """The row's leaf in each tree."""
        feature, threshold, left, right = self.feature, self.threshold, self.left, self.right
        missing_left, categorical = self.missing_left, self.categorical
        found = []
        for node in self.roots:
            while left[node] != node:  # a leaf points at itself
                value = row[feature[node]]
                if value != value:  # missing
                    go_left = missing_left[node]
                elif categorical is not None and categorical[node]:
                    go_left = self._category_left(node, value)
                else:
                    go_left = value <= threshold[node]
                node = left[node] if go_left else right[node]
            found.append(node)
        return found

    def _category_left(self, node: int, value: float) -> bool:
        """A category in the node's bitset goes left, another known one right, a negative or unknown
        one as a missing value (``_Nodes._categories``)."""
        if value < 0:
            return self.missing_left[node]
        code = int(min(value, 255))
        word, bit = code >> 5, code & 31
        if (self.left_bits[self.bitset[node]][word] >> bit) & 1:
            return True
        known = (self.known_bits[self.feature_bits[self.feature[node]]][word] >> bit) & 1
        return False if known else self.missing_left[node]


def _forest_nodes(trees: list[Any]) -> _Nodes:
    parts, offset = [], 0
    for tree in trees:
        leaf = tree.children_left == -1
        own = np.arange(tree.node_count) + offset
        parts.append(
            (
                np.where(leaf, 0, tree.feature),
                tree.threshold,
                np.where(leaf, own, tree.children_left + offset),
                np.where(leaf, own, tree.children_right + offset),
                np.asarray(getattr(tree, "missing_go_to_left", np.zeros(tree.node_count)), dtype=bool),
            )
        )
        offset += tree.node_count
    feature, threshold, left, right, missing_left = (np.concatenate(p) for p in zip(*parts))
    roots = np.cumsum([0] + [t.node_count for t in trees[:-1]])
    return _Nodes(feature, threshold, left, right, missing_left, roots, max(t.max_depth for t in trees))


# -- the estimators' forms ----------------------------------------------------------------------------
class _OwnMethods:
    """An estimator's own predict (and predict_proba) on the plan's matrix."""

    def __init__(self, estimator: Any, sparse: bool):
        self.estimator = estimator
        self.sparse = sparse
        self.description = f"{type(estimator).__name__}'s own predict on the planned rows"

    def outputs(self, x: np.ndarray, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if self.sparse:
            from scipy import sparse

            x = sparse.csr_matrix(x)
        predictions = np.asarray(self.estimator.predict(x))
        return predictions, (self.estimator.predict_proba(x) if proba else None)


class _ForestForm:
    """A random forest or extra trees (classifier or regressor) walked in NumPy."""

    def __init__(self, forest: Any):
        self.forest = forest
        trees = [e.tree_ for e in forest.estimators_]
        if any(t.n_outputs != 1 for t in trees):
            raise NoPlan("a forest of several outputs")
        self.nodes = _forest_nodes(trees)
        self.classifier = hasattr(forest, "classes_")
        values = np.concatenate([t.value[:, 0, :] for t in trees])
        self.values = values[:, : len(forest.classes_)] if self.classifier else values[:, 0]
        self.trees = len(trees)
        self.description = f"{len(trees)} trees walked in NumPy"

    def outputs(self, x: np.ndarray, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        rows = x.astype(np.float32)
        if len(x) * self.trees > WALK_LIMIT:
            total = self._tree_by_tree(rows)
        else:
            # Summed tree by tree, as the forest adds each tree's output to its total.
            total = np.cumsum(self.values[self.nodes.walk(rows)], axis=1)[:, -1]
        total /= self.trees
        if not self.classifier:
            return total, None
        return self.forest.classes_.take(np.argmax(total, axis=1), axis=0), total

    def _tree_by_tree(self, rows: np.ndarray) -> np.ndarray:
        """Many rows: scikit-learn's own compiled trees, called one by one as the forest calls them
        (without its per-call checks and job dispatch: 4x faster on 1,000 rows of 100 trees), their
        outputs added in the forest's order."""
        rows = np.ascontiguousarray(rows)
        width = self.values.shape[1] if self.classifier else 1
        total = np.zeros((len(rows), width))
        for estimator in self.forest.estimators_:
            total += estimator.tree_.predict(rows)[:, :width]
        return total if self.classifier else total[:, 0]


class _HistForm:
    """A histogram gradient boosting model (classifier or regressor) walked in NumPy."""

    def __init__(self, model: Any, encoder: Any, plan: RowPlan):
        self.model = model
        predictors = [p for iteration in model._predictors for p in iteration]
        self.per_iteration = len(model._predictors[0])
        self.nodes = _hist_nodes(model, predictors)
        self.values = np.concatenate([p.nodes["value"] for p in predictors])
        self.order, self.ordinal = _hist_columns(model, encoder, plan)
        self.trees = len(predictors)
        self.one_row = _OneRowWalk(self.nodes)
        self.value_list = self.values.tolist()
        self.description = f"{self.trees} trees walked, one row in Python, more in NumPy"

    def preprocessed(self, x: np.ndarray) -> np.ndarray:
        """The plan's matrix as the model's own preprocessing gives it: categorical columns first,
        as the codes of its ordinal encoder."""
        if self.order is None:
            return x
        out = x[:, self.order]
        for j, table in enumerate(self.ordinal):
            code = out[:, j].copy()
            present = ~np.isnan(code)
            out[:, j] = np.nan
            out[present, j] = table[code[present].astype(np.int64)]
        return out

    def raw(self, x: np.ndarray) -> np.ndarray:
        model, count = self.model, len(x)
        if count == 1:
            return self._raw_one(x[0].tolist())
        if count * self.trees > WALK_LIMIT:
            raw = np.zeros((count, self.per_iteration), dtype=model._baseline_prediction.dtype, order="F")
            raw += model._baseline_prediction
            model._predict_iterations(x, model._predictors, raw, False, 1)
            return raw
        values = self.values[self.nodes.walk(x)].reshape(count, -1, self.per_iteration)
        start = np.broadcast_to(model._baseline_prediction, (count, 1, self.per_iteration))
        # From the baseline, iteration by iteration, as the model adds each predictor's value.
        return np.cumsum(np.concatenate([start, values], axis=1), axis=1)[:, -1]

    def _raw_one(self, row: list[float]) -> np.ndarray:
        """One row's raw values: from the baseline, leaf by leaf in the predictors' order (iteration
        by iteration, each iteration's trees one per class), as ``raw`` sums them."""
        baseline = self.model._baseline_prediction
        totals, values, per_iteration = baseline.ravel().tolist(), self.value_list, self.per_iteration
        for i, leaf in enumerate(self.one_row.leaves(row)):
            totals[i % per_iteration] += values[leaf]
        return np.array([totals], dtype=baseline.dtype)

    def outputs(self, x: np.ndarray, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        model = self.model
        raw = self.raw(self.preprocessed(x))
        if not hasattr(model, "classes_"):
            return model._loss.link.inverse(raw.ravel()), None
        if raw.shape[1] == 1:
            encoded = (raw.ravel() > 0).astype(int)
        else:
            encoded = np.argmax(raw, axis=1)
        return model.classes_[encoded], (model._loss.predict_proba(raw) if proba else None)


def _hist_nodes(model: Any, predictors: list[Any]) -> _Nodes:
    parts, offset, bit_rows = [], 0, 0
    for predictor in predictors:
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        own = np.arange(len(nodes)) + offset
        parts.append(
            (
                np.where(leaf, 0, nodes["feature_idx"]).astype(np.int64),
                nodes["num_threshold"],
                np.where(leaf, own, nodes["left"].astype(np.int64) + offset),
                np.where(leaf, own, nodes["right"].astype(np.int64) + offset),
                nodes["missing_go_to_left"].astype(bool),
                nodes["is_categorical"].astype(bool) & ~leaf,
                nodes["bitset_idx"].astype(np.int64) + bit_rows,
            )
        )
        offset += len(nodes)
        bit_rows += len(predictor.raw_left_cat_bitsets)
    feature, threshold, left, right, missing_left, categorical, bitset = (np.concatenate(p) for p in zip(*parts))
    roots = np.cumsum([0] + [len(p.nodes) for p in predictors[:-1]])
    depth = int(max(p.nodes["depth"].max() for p in predictors))
    found = _Nodes(feature, threshold, left, right, missing_left, roots, depth)
    if categorical.any():
        known, feature_bits = model._bin_mapper.make_known_categories_bitsets()
        found.categorical, found.bitset = categorical, np.where(categorical, bitset, 0)
        found.left_bits = np.concatenate([p.raw_left_cat_bitsets for p in predictors]).astype(np.int64)
        found.known_bits = np.asarray(known, dtype=np.int64)
        found.feature_bits = np.asarray(feature_bits, dtype=np.int64)
    return found


def _hist_columns(model: Any, encoder: Any, plan: RowPlan) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """Where each of the model's preprocessed columns comes from in the plan's matrix (numbers, then
    categorical columns), and, per categorical column, each kept category's ordinal code, read off
    the model's own ordinal encoder."""
    preprocessor = model._preprocessor
    if preprocessor is None:
        return None, []
    categorical = np.asarray(model.is_categorical_, dtype=bool)
    numbers = plan.n_numbers
    if len(categorical) != plan.width or categorical[:numbers].any() or not categorical[numbers:].all():
        raise NoPlan("its categorical columns are not the encoder's")
    order = np.r_[np.flatnonzero(categorical), np.flatnonzero(~categorical)]
    ordinal = preprocessor.named_transformers_["encoder"]
    tables = []
    for column, seen in zip(encoder.categorical_, ordinal.categories_):
        position = {str(v): float(i) for i, v in enumerate(seen) if isinstance(v, str)}
        tables.append(np.array([position.get(k, np.nan) for k in encoder.categories_[column]]))
    return order, tables


# -- the model -------------------------------------------------------------------------------------------
class CompiledModel:
    """A fitted model's compiled form (see the module's docstring). ``outputs(rows, proba)`` answers
    JSON rows (``Unplanned``: the pandas path must judge them); ``NoPlan`` when it cannot be built."""

    def __init__(self, model: Any, signature: Signature):
        steps = getattr(model, "named_steps", None)
        if not steps or list(steps) != ["preprocess", "model"]:
            raise NoPlan("its own feature step reads a DataFrame" if steps and "features" in steps else "no encoder")
        self.model = model
        self.plan = RowPlan(signature, steps["preprocess"])
        self.form = _form_of(steps["model"], steps["preprocess"], self.plan)
        self.description = f"rows planned without pandas; {self.form.description}"

    def outputs(self, rows: Any, proba: bool) -> tuple[np.ndarray, np.ndarray | None, PlannedRows]:
        planned = self.plan.rows(rows)
        predictions, probabilities = self.form.outputs(planned.matrix, proba)
        return predictions, probabilities, planned


def _form_of(estimator: Any, encoder: Any, plan: RowPlan) -> Any:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

    if isinstance(estimator, (FixedThresholdClassifier, TunedThresholdClassifierCV)):
        return _ThresholdForm(estimator, _form_of(estimator.estimator_, encoder, plan))
    if isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        if not plan.native:
            raise NoPlan("a gradient boosting model that reads one-hot columns")
        return _HistForm(estimator, encoder, plan)
    if plan.native:
        raise NoPlan(f"{type(estimator).__name__} reads pandas categoricals")
    forests = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor)
    if isinstance(estimator, forests):
        return _ForestForm(estimator)
    return _OwnMethods(estimator, bool(getattr(encoder, "sparse_output_", False)))


class _ThresholdForm:
    """A decision threshold around another form: scikit-learn's own rule on the positive class's probability."""

    def __init__(self, estimator: Any, inner: Any):
        from sklearn.model_selection import FixedThresholdClassifier

        self.inner = inner
        self.classes = estimator.classes_
        if isinstance(estimator, FixedThresholdClassifier):
            self.threshold, self.positive = estimator.threshold, estimator.pos_label
        else:
            self.threshold, self.positive = estimator.best_threshold_, estimator._curve_scorer._get_pos_label()
        column = 1 if self.positive is None else int(np.flatnonzero(self.classes == self.positive)[0])
        self.column = column
        self.description = f"{inner.description}, decided at a threshold"

    def outputs(self, x: np.ndarray, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        from sklearn.metrics._scorer import _threshold_scores_to_class_labels

        _, probabilities = self.inner.outputs(x, True)
        score = probabilities[:, self.column]
        labels = _threshold_scores_to_class_labels(score, self.threshold, self.classes, self.positive)
        return labels, (probabilities if proba else None)


# -- parity ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parity:
    """Whether a version serves through its compiled form, and the evidence: the test rows it was
    compared on with scikit-learn and the largest difference; or why it serves through scikit-learn."""

    path: str  # "compiled" | "scikit-learn"
    form: str | None = None
    rows: int = 0  # test rows both answered
    left_to_pandas: int = 0  # test rows the plan left to the pandas path (not compared)
    max_difference: float | None = None
    reason: str | None = None  # why scikit-learn serves
    format: int = COMPILED_FORMAT
    sklearn_version: str = sklearn.__version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Parity | None:
        if not data:
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def describe(self) -> str:
        """One line: how the version is served, and why."""
        if self.path == "compiled":
            most = f"{self.max_difference:.1e}" if self.max_difference else "0"
            said = f"answered {self.rows:,} test rows as scikit-learn did (largest difference {most})"
            return f"compiled ({self.form}): {said}"
        return f"scikit-learn: {self.reason}"

    def trusted_here(self) -> str | None:
        """None when this process may serve the compiled form; else why not."""
        if self.path != "compiled":
            return self.reason
        if self.format != COMPILED_FORMAT:
            return f"its parity was checked by compiled format {self.format}, this platform's is {COMPILED_FORMAT}"
        if self.sklearn_version != sklearn.__version__:
            return f"its parity was checked under scikit-learn {self.sklearn_version}, this is {sklearn.__version__}"
        return None


def compiled_or_reason(model: Any, signature: Signature | None, parity: Parity | None) -> tuple[Any, str | None]:
    """The compiled form a loader may serve the version with (None, and why not)."""
    if parity is None:
        return None, NO_PARITY
    reason = parity.trusted_here()
    if reason is not None:
        return None, reason
    try:
        return CompiledModel(model, signature), None
    except NoPlan as exc:
        return None, str(exc)


def parity_of(model: Any, signature: Signature | None, x: pd.DataFrame, classifier: bool) -> Parity:
    """The compiled form's answers on the test split's feature rows ``x`` (as JSON records, as a
    client sends them) against scikit-learn's path (the rows checked, then the Pipeline)."""
    if signature is None:
        return Parity("scikit-learn", reason="the version records no signature")
    try:
        compiled = CompiledModel(model, signature)
    except NoPlan as exc:
        return Parity("scikit-learn", reason=str(exc))
    records = x.to_dict("records")
    frame, _ = check_rows(x, signature)
    expected = np.asarray(model.predict(frame))
    # Labels are compared as labels for every classifier; probabilities where it has them.
    expected_proba = model.predict_proba(frame) if classifier and hasattr(model, "predict_proba") else None
    compared = _Comparison(compiled, expected, expected_proba, classifier or hasattr(model, "classes_"))
    single, walked = min(len(records), SINGLE_PARITY_ROWS), min(len(records), WALKED_PARITY_ROWS)
    for start in range(single):
        compared.add(records, start, start + 1)
    step = max(2, WALK_LIMIT // max(getattr(compiled.form, "trees", 1), 1))
    for start in range(single, walked, step):
        compared.add(records, start, min(start + step, walked))
    for start in range(walked, len(records), 5000):
        compared.add(records, start, min(start + 5000, len(records)))
    return compared.parity(compiled.form.description)


class _Comparison:
    """The compiled form's answers, chunk by chunk, against scikit-learn's on the same rows."""

    def __init__(
        self, compiled: CompiledModel, expected: np.ndarray, expected_proba: np.ndarray | None, classifier: bool
    ):
        self.compiled, self.expected, self.expected_proba = compiled, expected, expected_proba
        self.classifier = classifier
        self.proba = expected_proba is not None
        self.rows = self.unplanned = self.disagree = 0
        self.largest = 0.0
        self.first: str | None = None

    def add(self, records: list[dict], start: int, end: int) -> None:
        try:
            predictions, probabilities, _ = self.compiled.outputs(records[start:end], self.proba)
        except Unplanned:
            if end - start > 1:
                for row in range(start, end):
                    self.add(records, row, row + 1)
            else:
                self.unplanned += 1
            return
        self.rows += end - start
        self._compare(predictions, self.expected[start:end])
        if self.proba:
            self._close(probabilities, self.expected_proba[start:end], "probabilities")

    def _compare(self, got: np.ndarray, expected: np.ndarray) -> None:
        if self.classifier:
            wrong = np.flatnonzero(np.asarray(got) != np.asarray(expected))
            if len(wrong):
                self.disagree += len(wrong)
                self.first = self.first or f"labels: {got[wrong[0]]!r} where scikit-learn said {expected[wrong[0]]!r}"
            return
        self._close(np.asarray(got, dtype=float), np.asarray(expected, dtype=float), "values")

    def _close(self, got: np.ndarray, expected: np.ndarray, what: str) -> None:
        difference = np.abs(got - expected)
        bound = TOLERANCE * np.maximum(np.abs(expected), 1.0)
        # NaN on one side only (an answer scikit-learn did not give) is a disagreement, not a pass.
        wrong = ~((difference <= bound) | (np.isnan(got) & np.isnan(expected)))
        measured = difference[~np.isnan(difference)]
        if measured.size:
            self.largest = max(self.largest, float(measured.max()))
        if wrong.any():
            rows = wrong.any(axis=1) if wrong.ndim > 1 else wrong
            self.disagree += int(rows.sum())
            if np.isnan(difference[wrong]).any():
                said = f"{what} are NaN where scikit-learn's are numbers"
            else:
                said = f"{what} differ by up to {float(measured.max()):.3g}"
            self.first = self.first or said

    def parity(self, form: str) -> Parity:
        if self.disagree:
            reason = (
                f"its compiled form ({form}) disagreed with scikit-learn on {self.disagree} of {self.rows} test rows"
                f" ({self.first})"
            )
            return Parity("scikit-learn", form, self.rows, self.unplanned, self.largest, reason)
        if not self.rows:
            return Parity("scikit-learn", form, 0, self.unplanned, None, "no test row could be compared")
        return Parity("compiled", form, self.rows, self.unplanned, self.largest)
