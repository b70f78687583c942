"""Demo landing data: a dataset that ships with scikit-learn, spread over days, or synthetic days."""

from __future__ import annotations

import datetime as dt
import io
import os

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, make_classification

from ml_platform.storage import atomic_write_bytes

SEGMENTS = ("north", "south", "east", "west")


def demo_days(end_day: str, days: int) -> list[str]:
    """The ``days`` consecutive days ending with ``end_day``."""
    end = dt.date.fromisoformat(end_day)
    return [(end - dt.timedelta(days=offset)).isoformat() for offset in range(days - 1, -1, -1)]


def breast_cancer_frame(target: str) -> pd.DataFrame:
    """The Wisconsin breast cancer data set (569 rows, 30 numeric features, 2 classes)."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": target})
    return frame


def diabetes_frame(target: str) -> pd.DataFrame:
    """The diabetes data set (442 rows, 10 numeric features; target: progression one year later)."""
    data = load_diabetes(as_frame=True)
    return data.frame.rename(columns={"target": target})


DATASETS = {"breast_cancer": breast_cancer_frame, "diabetes": diabetes_frame}


def synthetic_frame(rows: int, seed: int, target: str) -> pd.DataFrame:
    """20 numeric features and one categorical column, from make_classification."""
    x, y = make_classification(n_samples=rows, n_features=20, n_informative=10, n_redundant=4, random_state=seed)
    frame = pd.DataFrame(x, columns=[f"feature_{i:02d}" for i in range(x.shape[1])])
    rng = np.random.default_rng(seed)
    frame["segment"] = rng.choice(SEGMENTS, size=rows)
    frame[target] = y
    return frame


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def seed_landing(
    landing_dir: str,
    end_day: str,
    days: int,
    target: str,
    synthetic_rows: int | None = None,
    seed: int = 0,
    dataset: str = "breast_cancer",
) -> list[str]:
    """Write one parquet file per day; files whose content is unchanged are left untouched.

    Returns the paths written or kept, oldest day first.
    """
    day_list = demo_days(end_day, days)
    # Every day is a slice of one data set, so all days follow the same distribution.
    if synthetic_rows:
        whole = synthetic_frame(synthetic_rows * days, seed, target)
    else:
        whole = DATASETS[dataset](target).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    bounds = np.linspace(0, len(whole), days + 1).round().astype(int)
    frames = [whole.iloc[a:b].reset_index(drop=True) for a, b in zip(bounds[:-1], bounds[1:])]
    paths = []
    os.makedirs(landing_dir, exist_ok=True)
    for day, frame in zip(day_list, frames):
        path = os.path.join(landing_dir, f"{day}.parquet")
        data = _parquet_bytes(frame)
        # Unchanged content keeps its file (and mtime), so nothing downstream sees a "new" file.
        if not (os.path.exists(path) and open(path, "rb").read() == data):
            atomic_write_bytes(path, data)
        paths.append(path)
    return paths
