"""A realistic table, generated: a year of daily orders of a shop, with what real data has.

- bursts of missing values: on some days a share (10-57 %) of ``distance`` is empty, and the label
  ``churned`` is empty on the same rows (the courier's feed was down: no delivery, no outcome);
- a column with hundreds of categories (``product``: 400 values, a long tail) and an int id that is
  a category (``store``);
- repeated feature rows that are distinct events: about one order in ten has the same features as
  another order of the day (and the same outcome), with its own ``order_id``;
- class imbalance (about one order in four churns), a drift in prices over the year, booleans.

The label is learnable (price, distance, membership and the region move it), so a model beats the
majority class. Nothing here comes from scikit-learn's bundled sets.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

# The columns a model of it uses (the schema); order_id is outside it.
FEATURES = ["region", "store", "product", "price", "qty", "distance", "member"]
TARGET = "churned"
REGIONS = ["north", "south", "east"]
PRODUCTS = [f"sku-{i:04d}" for i in range(400)]


def days_of(start: str, count: int) -> list[str]:
    first = dt.date.fromisoformat(start)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(count)]


def burst_days(days: list[str], every: int = 15) -> set[str]:
    """Every ``every``-th day, and the last one, have a burst of missing values."""
    return {day for index, day in enumerate(days) if index % every == every - 1} | {days[-1]}


def shop_day(day: str, rows: int, seed: int, index: int = 0, burst: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rows - rows // 10
    region = rng.choice(REGIONS, base, p=[0.5, 0.3, 0.2])
    weights = 1.0 / np.arange(1, len(PRODUCTS) + 1)  # a long tail
    product = rng.choice(PRODUCTS, base, p=weights / weights.sum())
    price = np.round(rng.lognormal(3.5 + index / 730, 0.9, base).clip(0.5, 4999.0), 2)  # drifts up
    distance = np.round(rng.gamma(2.0, 4.0, base), 1)
    member = rng.random(base) < 0.35
    qty = rng.integers(1, 11, base)
    score = (
        -1.5
        + 0.08 * distance
        + 0.15 * np.log(price)
        - 1.0 * member
        + 0.6 * (region == "east")
        + rng.normal(0, 0.5, base)
    )
    churned = np.where(score > 0, "yes", "no")
    frame = pd.DataFrame(
        {
            "region": region,
            "store": rng.integers(100, 115, base),
            "product": product,
            "price": price,
            "qty": qty,
            "distance": distance,
            "member": member,
            TARGET: churned,
        }
    )
    # About one order in ten repeats another order's features and outcome: a distinct event.
    repeats = frame.iloc[rng.integers(0, base, rows - base)]
    frame = pd.concat([frame, repeats], ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    frame.insert(0, "order_id", [f"{day}-{i:05d}" for i in range(len(frame))])
    if burst:
        empty = rng.random(len(frame)) < burst
        frame["distance"] = frame["distance"].where(~empty)
        frame[TARGET] = frame[TARGET].astype(object).where(~empty, None)
    return frame


def write_year(landing: Path, start: str, days: int = 365, rows: int = 250, seed: int = 0) -> list[str]:
    """One parquet file a day under ``landing``; returns the days."""
    landing.mkdir(parents=True, exist_ok=True)
    every = days_of(start, days)
    bursts = burst_days(every)
    rng = np.random.default_rng(seed)
    for index, day in enumerate(every):
        share = float(rng.uniform(0.12, 0.57)) if day in bursts else 0.0
        frame = shop_day(day, int(rows * rng.uniform(0.8, 1.2)), seed * 100_000 + index, index, share)
        frame.to_parquet(landing / f"{day}.parquet", index=False)
    return every


def rare_churn_day(day: str, rows: int, seed: int) -> pd.DataFrame:
    """A day of subscriptions where about 3 % churn ("yes"): the churners are learnable (tenure,
    support calls, plan) but a model that says "no" to everyone is right 97 % of the time. Some
    tenure values are missing and ``city`` has hundreds of values."""
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0, rows).round(1)
    calls = rng.poisson(1.2, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.6, 0.3, 0.1])
    score = -3.2 - 0.05 * tenure + 0.9 * calls + 0.8 * (plan == "basic") + rng.normal(0, 0.7, rows)
    weights = 1.0 / np.arange(1, 301)
    frame = pd.DataFrame(
        {
            "tenure": tenure,
            "support_calls": calls,
            "plan": plan,
            "city": rng.choice([f"city-{i:03d}" for i in range(300)], rows, p=weights / weights.sum()),
            "churned": np.where(score > 0, "yes", "no"),
        }
    )
    frame["tenure"] = frame["tenure"].where(rng.random(rows) > 0.02)  # a few values missing every day
    frame.insert(0, "customer_id", [f"{day}-{i:05d}" for i in range(rows)])
    return frame


def tier_day(day: str, rows: int, seed: int) -> pd.DataFrame:
    """A day of customers sorted into three tiers (bronze 60 %, silver 30 %, gold 10 %) by spend and
    visits, with noise: a multiclass problem no model gets perfectly right."""
    rng = np.random.default_rng(seed)
    spend = rng.lognormal(4.0, 0.8, rows).round(2)
    visits = rng.poisson(4, rows)
    value = np.log(spend) + 0.15 * visits + rng.normal(0, 0.45, rows)
    cuts = np.quantile(value, [0.6, 0.9])
    tier = np.select([value < cuts[0], value < cuts[1]], ["bronze", "silver"], "gold")
    region = rng.choice(REGIONS, rows, p=[0.5, 0.3, 0.2])
    return pd.DataFrame({"spend": spend, "visits": visits, "region": region, "tier": tier})


def write_days(landing: Path, days: list[str], make, rows: int, seed: int = 0) -> None:
    """One parquet file a day under ``landing``, from ``make(day, rows, seed)``."""
    landing.mkdir(parents=True, exist_ok=True)
    for index, day in enumerate(days):
        make(day, rows, seed * 100_000 + index).to_parquet(landing / f"{day}.parquet", index=False)


def regional_rule_day(day: str, rows: int, seed: int) -> pd.DataFrame:
    """A day where one small region (``north``, about 6 % of rows) follows its own rule (``x2``
    decides) while the rest follow another (``x1`` and ``x3``), with a fifth of the labels flipped
    at random: a model regularised to ignore small groups scores better overall than a fully grown
    forest, yet much worse on north."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east", "west"], rows, p=[0.06, 0.42, 0.32, 0.2])
    x1, x2, x3 = rng.normal(size=(3, rows))
    score = np.where(region == "north", 2.5 * x2, x1 + 0.5 * x3) + rng.normal(0, 0.3, rows)
    label = (score > 0) ^ (rng.random(rows) < 0.2)
    frame = pd.DataFrame({"region": region, "x1": x1.round(3), "x2": x2.round(3), "x3": x3.round(3)})
    frame["x3"] = frame["x3"].where(rng.random(rows) > 0.03)  # a few values missing every day
    frame["bought"] = np.where(label, "yes", "no")
    return frame


def flat_price_day(day: str, rows: int, seed: int) -> pd.DataFrame:
    """A day of flat sales: the price follows size, rooms and a district with 20 values, times a
    noise of about 15 %, so a model explains most of it (R2 near 0.8) yet errs by about a sixth of
    the price (its MAPE); a few sizes are missing."""
    rng = np.random.default_rng(seed)
    size = rng.lognormal(4.2, 0.35, rows).round(1)
    rooms = np.clip((size / 25).round() + rng.integers(-1, 2, rows), 1, 8)
    district = rng.choice([f"d{i:02d}" for i in range(20)], rows)
    premium = 1 + 0.04 * np.array([int(d[1:]) for d in district])
    price = 3000 * size * premium * (1 + 0.03 * rooms) * rng.lognormal(0, 0.15, rows)
    frame = pd.DataFrame({"size": size, "rooms": rooms, "district": district, "price": price.round(0)})
    frame["size"] = frame["size"].where(rng.random(rows) > 0.02)
    return frame
