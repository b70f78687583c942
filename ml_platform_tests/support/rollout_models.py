"""Real versions of a shop churn model for the rollout's serving tests: trained with scikit-learn on
the realistic shop days (``realistic.shop_day``), built as the platform builds models
(``ml.build_model``: its encoder inside the model), stored with ``ModelStore.save_version`` and a
record that carries the signature, so that `ml-platform serve` loads and checks them as any deployed
version.

- production: a random forest (25 trees: a forest's predict call costs about 0.2 ms a tree);
- candidate: a deeper forest retrained on newer days (the two disagree on some rows);
- faulty: the candidate behind a feature step with a bug on purpose (``strict_quantities``: it
  raises on an order of more than 50 items), whose signature also needs a ``coupon`` column clients
  do not all send yet (its check refuses their rows). The server must import this module to load it:
  give the serve process the repository on ``PYTHONPATH``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import FunctionTransformer

from ml_platform.backends.local import LocalModelStore
from ml_platform.ml import build_model, encoding_recipe
from ml_platform.recipe import Fit, Recipe
from ml_platform.signature import infer_signature
from ml_platform.version_record import VersionRecord
from ml_platform_tests.support.realistic import TARGET, days_of, shop_day

MODEL = "shop_churn"
# The columns the models take (distance has bursts of missing values, imputed); the region, store,
# product and membership are left in the requests, dropped by the signature check (a canary may
# still route by the store). Measured on 2 cores, the signature check and the encoder of one row cost
# about 13 ms for the whole table and 3.7 ms for these columns: the canary test sends 2,000 requests.
COLUMNS = ["price", "qty", "distance"]
MAX_QUANTITY = 50  # the faulty candidate raises above it


def strict_quantities(frame: pd.DataFrame) -> pd.DataFrame:
    """The faulty candidate's feature step: a bug on purpose, it cannot score more than 50 items."""
    if (frame["qty"] > MAX_QUANTITY).any():
        raise RuntimeError(f"an order of more than {MAX_QUANTITY} items: the candidate cannot score it")
    return frame.drop(columns=["coupon"], errors="ignore")


BROKEN_PRODUCTS = ("sku-0002", "sku-0006")  # about 5 % of the shop's orders (5.1 % and 2.5 % of the base)


def broken_on_some_products(frame: pd.DataFrame) -> pd.DataFrame:
    """A feature step with a bug on purpose: it cannot read two products' rows (about 5 % of orders)."""
    broken = frame["product"].astype(str).isin(BROKEN_PRODUCTS)
    if broken.any():
        raise ValueError(f"cannot encode product {frame['product'][broken].iloc[0]}")
    return frame


def shop_rows(start: str, days: int, rows: int, seed: int) -> pd.DataFrame:
    """Some consecutive shop days as one frame (order_id and the label included)."""
    frames = [shop_day(day, rows, seed + index, index) for index, day in enumerate(days_of(start, days))]
    return pd.concat(frames, ignore_index=True)


def save(store: LocalModelStore, model, frame: pd.DataFrame, columns: list[str], estimator: str) -> str:
    """Fit ``model`` on ``frame`` and store it with a record as deploy writes one; its version."""
    x, y = frame[columns], frame[TARGET]
    model.fit(x, y)
    classes = [str(c) for c in model.classes_]
    record = VersionRecord(
        recipe=Recipe(target=TARGET, feature_columns=columns, task="classification", estimator=estimator),
        fit=Fit(
            classes=classes,
            training_rows=len(frame),
            data_as_of=dt.date.today().isoformat(),
            signature=infer_signature(x, TARGET, "classification", classes),
        ),
        metrics={"accuracy": float((model.predict(x) == y).mean())},
        gate_metric="accuracy",
    )
    return store.save_version(MODEL, model, record).version


@dataclass(frozen=True)
class ShopVersions:
    """A model store holding the three versions, production promoted, no candidate yet."""

    store_dir: Path
    production: str
    candidate: str
    faulty: str


def shop_versions(store_dir: Path) -> ShopVersions:
    store = LocalModelStore(root=str(store_dir))
    encoding = encoding_recipe(None)
    forest = build_model(RandomForestClassifier(n_estimators=25, max_depth=8, random_state=0), encoding=encoding)
    production = save(store, forest, shop_rows("2026-01-01", 12, 250, 1), COLUMNS, "random_forest")
    # The candidate: the same recipe retrained on newer days, deeper.
    retrained = RandomForestClassifier(n_estimators=25, max_depth=12, random_state=1)
    later = shop_rows("2026-02-01", 12, 250, 100)
    candidate = save(store, build_model(retrained, encoding=encoding), later, COLUMNS, "random_forest")
    guarded = build_model(retrained, FunctionTransformer(strict_quantities, validate=False), encoding)
    faulty = save(store, guarded, later.assign(coupon=0.0), [*COLUMNS, "coupon"], "random_forest")
    store.promote(MODEL, production, reason="test: production", actor="test")
    return ShopVersions(store_dir, production, candidate, faulty)


def pipelines_yaml(rollout: str) -> str:
    """A pipelines file whose one pipeline serves the shop model with ``rollout`` (YAML flow mapping)."""
    return (
        "pipelines:\n"
        "  - name: shop\n"
        f"    model_name: {MODEL}\n"
        f"    target: {TARGET}\n"
        "    monitoring: {}\n"
        f"    rollout: {rollout}\n"
    )
