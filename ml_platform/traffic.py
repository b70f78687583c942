"""What production was asked: a day of the prediction log (ml_platform.serving.prediction_log), read
back and summarised. Free of Dagster: served[day] and ``ml-platform monitor`` both use it.

The log is kept in one folder per day of the pipeline's time zone
(``<model>/prediction_log/<YYYY-MM-DD>/``), so a folder is one daily partition.

During a rollout the log also holds rows a model predicted without answering (a shadow candidate, a
canary's mirror): ``answered`` keeps the rows that were the requests' answers, which is what the
summary, the skew and the live metrics read. Parts written before rollouts are all production's
answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from ml_platform.constants import PREDICTION_LOG_COLUMNS as COLUMNS
from ml_platform.constants import PREDICTION_LOG_FOLDER as FOLDER

LATENCY_QUANTILES = (0.5, 0.95, 0.99)
PROBABILITY_PREFIX = "proba_"
FEATURE_SUFFIX = " (feature)"


def day_bounds(day: str, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The start and end (UTC) of ``day`` in ``timezone``."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), zone)
    end = dt.datetime.combine(dt.date.fromisoformat(day) + dt.timedelta(days=1), dt.time(), zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def logged_days(list_children: Callable[[str], list[str]], model: str) -> list[str]:
    """The days that have a folder in ``model``'s log, oldest first."""
    return sorted(d for d in list_children(f"{model}/{FOLDER}") if len(d) == 10)


def parts_of_day(list_children: Callable[[str], list[str]], model: str, day: str) -> list[str]:
    """The keys of the parts of ``day``, in the order they were written."""
    prefix = f"{model}/{FOLDER}/{day}"
    return [f"{prefix}/{name}" for name in sorted(list_children(prefix)) if name.endswith(".parquet")]


def fingerprint(keys: list[str]) -> str:
    """A short digest of a day's part names: it changes when a part arrives."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]


def read_day(
    read_bytes: Callable[[str], bytes], list_children: Callable[[str], list[str]], model: str, day: str
) -> pd.DataFrame:
    """Every logged row of ``model`` on ``day``, in the order they were logged."""
    frames = [pd.read_parquet(io.BytesIO(read_bytes(key))) for key in parts_of_day(list_children, model, day)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    frame = pd.concat(frames, ignore_index=True)
    if "refused" not in frame.columns:  # parts written before refusals were logged
        frame["refused"] = pd.Series(pd.NA, index=frame.index, dtype="string")
    # Parts written before rollouts: every row was production's answer (a part of both kinds leaves
    # the older rows empty in the concatenation).
    frame["role"] = frame["role"].fillna("production") if "role" in frame.columns else "production"
    frame["answered"] = _answered_mask(frame) if "answered" in frame.columns else True
    return frame.sort_values(["logged_at", "request_id", "row"], kind="stable", ignore_index=True)


def answered(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that were their requests' answers (answered or refused to the client), without the
    rows a model predicted off the request path (a shadow candidate, a canary's mirror). A frame
    without the ``answered`` column (parts written before rollouts) is all answers."""
    if "answered" not in frame.columns:
        return frame
    kept = _answered_mask(frame)
    return frame if kept.all() else frame[kept]


def _answered_mask(frame: pd.DataFrame) -> np.ndarray:
    """``answered`` as booleans, a row without it (an older part's) True."""
    return frame["answered"].astype("boolean").fillna(True).to_numpy(dtype=bool)


def features(frame: pd.DataFrame) -> pd.DataFrame:
    """The answered rows as the model saw them: the feature columns, named as the model names them."""
    frame = answered(frame)
    rows = frame[frame["refused"].isna()] if "refused" in frame.columns else frame
    columns = [c for c in rows.columns if c not in COLUMNS and not c.startswith(PROBABILITY_PREFIX)]
    return rows[columns].rename(columns=lambda c: c.removesuffix(FEATURE_SUFFIX))


@dataclass
class DaySummary:
    """A day of traffic in numbers: requests and rows, refused by the signature check or answered,
    latency per request, and the versions that answered."""

    requests: int = 0
    rows: int = 0
    refused_requests: int = 0
    refused_rows: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)  # {"p50": ...}
    versions: list[dict] = field(default_factory=list)  # {"Version", "Requests", "Rows", "p50 ms"}
    refusals: list[dict] = field(default_factory=list)  # the commonest reasons {"Reason", "Requests"}

    @property
    def signature_share(self) -> float:
        """The share of rows that met the signature (1.0 on a day without traffic)."""
        return 1.0 if not self.rows else (self.rows - self.refused_rows) / self.rows

    def to_dict(self) -> dict:
        return {
            "requests": self.requests,
            "rows": self.rows,
            "refused_requests": self.refused_requests,
            "refused_rows": self.refused_rows,
            "signature_share": self.signature_share,
            "latency_ms": self.latency_ms,
            "versions": self.versions,
        }


def summarize(frame: pd.DataFrame) -> DaySummary:
    """The numbers of a day of the log (``read_day``): the requests' answers (``answered``)."""
    frame = answered(frame)
    if frame.empty:
        return DaySummary()
    refused = frame["refused"].notna().to_numpy()
    # One line per request, its first row: its version, latency and refusal (every row carries them;
    # an id is not enough, a client may send one id twice).
    requests = frame[frame["row"] == 0][["request_id", "version", "latency_ms", "refused"]]
    latency = requests["latency_ms"].to_numpy(dtype="float64")
    quantiles = np.quantile(latency, LATENCY_QUANTILES)
    rows_per_version = frame.groupby("version", sort=True).size()
    by_version = requests.groupby("version", sort=True)["latency_ms"].agg(["size", "median"])
    versions = [
        {
            "Version": str(version),
            "Requests": int(row["size"]),
            "Rows": int(rows_per_version[version]),
            "p50 ms": float(row["median"]),
        }
        for version, row in by_version.iterrows()
    ]
    reasons = requests["refused"].dropna().value_counts().head(5)
    return DaySummary(
        requests=len(requests),
        rows=len(frame),
        refused_requests=int(requests["refused"].notna().sum()),
        refused_rows=int(refused.sum()),
        latency_ms={f"p{int(q * 100)}": float(v) for q, v in zip(LATENCY_QUANTILES, quantiles)},
        versions=versions,
        refusals=[{"Reason": str(reason), "Requests": int(n)} for reason, n in reasons.items()],
    )


def main_version(frame: pd.DataFrame) -> str | None:
    """The version that answered the most rows of the day (None without answered rows)."""
    rows = answered(frame)
    rows = rows[rows["refused"].isna()]
    if rows.empty:
        return None
    return str(rows["version"].value_counts().idxmax())


def skew(profile: dict, frame: pd.DataFrame, method: str, threshold: float) -> list[dict]:
    """drift.compare of the day's answered rows with a training profile, over the features the log
    holds (a column of ``serving.log.exclude`` is not in the log, and is not drift)."""
    from ml_platform import drift

    rows = features(frame)
    logged = {**profile, "features": {k: v for k, v in profile["features"].items() if k in rows.columns}}
    return drift.compare(logged, rows, method, threshold)
