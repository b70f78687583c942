"""Versions of every built-in estimator, fitted on a table that looks real, with the parity of their
compiled form (``ml_platform.compiled.parity_of``) recorded as deploy records it, in one local model
store: what `ml-platform serve` answers through its compiled form or through scikit-learn.

The table (``orders``): an order's ``amount`` (a burst of missing values), ``qty`` (an int), its
``product`` (400 values, a long tail), its ``store`` (an int id declared categorical), whether the
customer is a ``member`` (a boolean with nulls), when it was ``placed_at`` (declared datetime, taken
by one model only); the label ``churned`` (about 15 % "yes") or the ``spend`` of a regression.
Fresh rows (``orders(..., fresh=True)``) hold what training never saw: unseen products and stores,
missing values in every column, extra columns.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.backends.local import LocalModelStore
from ml_platform.compiled import Parity, parity_of
from ml_platform.ml import encoding_recipe, make_model
from ml_platform.signature import Signature, infer_signature

FEATURES = ["amount", "qty", "product", "store", "member"]
DATETIME = "placed_at"
LABEL, SPEND = "churned", "spend"
KINDS = {"store": "categorical"}
PRODUCTS = [f"sku-{i:04d}" for i in range(400)]
STORES = list(range(100, 140))
# Every built-in estimator, with small parameters: (task, estimator, params).
ESTIMATORS = [
    ("classification", "random_forest", {"n_estimators": 30, "max_depth": 10, "random_state": 0}),
    ("classification", "hist_gradient_boosting", {"max_iter": 30, "random_state": 0}),
    ("classification", "logistic_regression", {"max_iter": 300}),
    ("regression", "random_forest", {"n_estimators": 30, "max_depth": 10, "random_state": 0}),
    ("regression", "hist_gradient_boosting", {"max_iter": 30, "random_state": 0}),
    ("regression", "ridge", {"alpha": 1.0}),
]
TWIN_PARITY = {"path": "scikit-learn", "reason": "twin for the test"}


def orders(rows: int, seed: int, fresh: bool = False) -> pd.DataFrame:
    """``rows`` orders with both labels; ``fresh``: with what training never saw, and an extra column."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(PRODUCTS) + 1)
    product = rng.choice(PRODUCTS, rows, p=weights / weights.sum())
    store = rng.choice(STORES, rows)
    amount = np.round(rng.lognormal(3.5, 0.9, rows), 2)
    qty = rng.integers(1, 11, rows)
    member = rng.random(rows) < 0.35
    placed = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 90 * 24 * 60, rows), unit="min")
    score = 0.9 * np.log(amount) - 1.2 * member + 0.25 * qty + 0.8 * (store % 7 == 0) + rng.normal(0, 0.6, rows)
    score += 0.6 * np.isin(product, PRODUCTS[:5]) + 0.5 * (placed.hour >= 20)
    frame = pd.DataFrame(
        {
            "amount": amount,
            "qty": qty,
            "product": product,
            "store": store,
            "member": pd.Series(member, dtype=object),
            DATETIME: placed,
            LABEL: np.where(score > np.quantile(score, 0.85), "yes", "no"),
            SPEND: np.round(amount * qty * (1 - 0.1 * member) + rng.normal(0, 5, rows), 2),
        }
    )
    position = np.arange(rows) / rows
    burst = (position >= 0.4) & (position < 0.55)  # the feed was down: most amounts missing, a few elsewhere
    frame["amount"] = frame["amount"].where(rng.random(rows) > np.where(burst, 0.7, 0.01))
    frame["member"] = frame["member"].where(rng.random(rows) > 0.05, None)
    if fresh:
        _freshen(frame, rng)
    return frame


def _freshen(frame: pd.DataFrame, rng: np.random.Generator) -> None:
    """Unseen products and stores, missing values in every column, an id and a note clients send."""
    rows = len(frame)
    unseen = rng.random(rows) < 0.04
    frame.loc[unseen, "product"] = [f"sku-new-{i}" for i in range(int(unseen.sum()))]
    frame["store"] = frame["store"].astype(object).where(rng.random(rows) > 0.03, 999)
    for column in ("qty", "product", "store", DATETIME):
        frame[column] = frame[column].astype(object).where(rng.random(rows) > 0.02, None)
    frame["order_id"] = [f"o-{i:06d}" for i in range(rows)]
    frame["note"] = np.where(rng.random(rows) < 0.1, "gift", None)


def plain(value: Any) -> Any:
    """A value as a JSON client sends it: None for a missing one, Python numbers, ISO text for a time."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return plain(value.item())
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


@dataclass
class Served:
    """One stored model: its name, the fitted model and its signature, its task and its recorded parity."""

    name: str
    model: Any
    signature: Signature
    task: str
    parity: Parity

    @property
    def classifier(self) -> bool:
        return self.task == "classification"


def fit(task: str, estimator: str, params: dict, train: pd.DataFrame, columns: list[str]) -> tuple[Any, Signature]:
    kinds = {**KINDS, **({DATETIME: "datetime"} if DATETIME in columns else {})}
    target = LABEL if task == "classification" else SPEND
    model = make_model(task, estimator, params, encoding=encoding_recipe(kinds))
    x = train[columns]
    model.fit(x, train[target])
    classes = [str(c) for c in model.classes_] if task == "classification" else None
    return model, infer_signature(x, target, task, classes, kinds=kinds)


def save(store: LocalModelStore, served: Served) -> str:
    """Store and promote ``served`` with a record as deploy writes one (its parity included)."""
    metadata = {
        "task": served.task,
        "target": served.signature.target,
        "feature_columns": served.signature.columns,
        "signature": served.signature.to_dict(),
        "metrics": {},
        "parity": served.parity.to_dict(),
    }
    version = store.save_version(served.name, served.model, metadata).version
    store.promote(served.name, version, reason="test: compiled serving", actor="test")
    return version


@contextlib.contextmanager
def disagreeing_forest(by: float = 1e-3) -> Iterator[None]:
    """The forest's compiled form with its probabilities off by ``by``: a form that disagrees."""
    import pytest

    from ml_platform import compiled

    original = compiled._ForestForm.outputs

    def outputs(self, x: np.ndarray, proba: bool):
        predictions, probabilities = original(self, x, proba)
        return predictions, (probabilities + by if probabilities is not None else None)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compiled._ForestForm, "outputs", outputs)
        yield


def build_store(store_dir: Path, train: pd.DataFrame, held_out: pd.DataFrame) -> dict[str, Served]:
    """Every built-in estimator as ``<task>_<estimator>`` (parity on ``held_out``), each with a twin
    (``<name>_twin``: the same fitted model, served by scikit-learn), a datetime model
    (``datetime_forest``) and a forest whose compiled form disagrees (``disagreeing_forest``)."""
    store = LocalModelStore(root=str(store_dir))
    found: dict[str, Served] = {}
    for task, estimator, params in ESTIMATORS:
        model, signature = fit(task, estimator, params, train, FEATURES)
        parity = parity_of(model, signature, held_out[FEATURES], task == "classification")
        name = f"{task}_{estimator}"
        found[name] = Served(name, model, signature, task, parity)
        twin = Parity.from_dict(TWIN_PARITY)
        found[f"{name}_twin"] = Served(f"{name}_twin", model, signature, task, twin)
    columns = [*FEATURES, DATETIME]
    model, signature = fit("classification", "random_forest", ESTIMATORS[0][2], train, columns)
    parity = parity_of(model, signature, held_out[columns], True)
    found["datetime_forest"] = Served("datetime_forest", model, signature, "classification", parity)
    forest = found["classification_random_forest"]
    with disagreeing_forest():
        parity = parity_of(forest.model, forest.signature, held_out[FEATURES], True)
    found["disagreeing_forest"] = Served("disagreeing_forest", forest.model, forest.signature, forest.task, parity)
    for served in found.values():
        save(store, served)
    return found
