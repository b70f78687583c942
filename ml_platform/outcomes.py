"""Late outcomes joined to what production predicted: the rules of outcomes[day] and live_metrics[day].
Free of Dagster.

An outcome file holds, per row, the id of a served request (``feedback.id``; a ``row`` column names
the row of a request of several rows, row 0 otherwise) and the true label in the target's column.
It is checked against the prediction log: every id must be one the server answered in the last
``feedback.max_delay_days`` days, each id once, each label a class of the model (classification)
or a number (regression). A later file may label an id again: the latest label counts (a correction).

live_metrics[day] scores the day's answered rows that have an outcome, per version that answered
and over all of them, with the functions model_metrics uses, the bootstrap interval of the gate's
metric, the share of the day's rows labelled so far and the label delay in days.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ml_platform.errors import FeedbackError
from ml_platform.intervals import Outputs, intervals
from ml_platform.ml import scores_of
from ml_platform.traffic import PROBABILITY_PREFIX, answered, parts_of_day

IDS_KNOWN = "outcome_ids_known"
IDS_UNIQUE = "outcome_ids_unique"
LABELS_MATCH = "outcome_labels_match_target"
CHECKS = (IDS_KNOWN, IDS_UNIQUE, LABELS_MATCH)
# The columns of an outcomes[day] value.
COLUMNS = ("request_id", "row", "label", "prediction_day", "arrived")
EXAMPLES = 3  # ids or labels named in a problem's sentence
ALL_VERSIONS = "(all)"


def logged_ids(
    read_bytes: Callable[[str], bytes], list_children: Callable[[str], list[str]], model: str, days: list[str]
) -> pd.DataFrame:
    """The (request_id, row) of every answered row of ``model`` on ``days``, with its day: only the
    id columns of the log are read. A rollout's rows predicted off the request path (``answered``
    False: a shadow candidate, a canary's mirror) repeat an answered id: they are left out."""
    frames = []
    for day in days:
        for key in parts_of_day(list_children, model, day):
            data = io.BytesIO(read_bytes(key))
            names = set(pq.read_schema(data).names)
            data.seek(0)
            wanted = [c for c in ("request_id", "row", "refused", "answered") if c in names]
            part = answered(pq.read_table(data, columns=wanted).to_pandas())
            if "refused" in part.columns:
                part = part[part["refused"].isna()]
            part = part.drop(columns=[c for c in ("refused", "answered") if c in part.columns])
            frames.append(part.assign(prediction_day=day))
    if not frames:
        return pd.DataFrame({"request_id": [], "row": pd.Series(dtype="int64"), "prediction_day": []})
    return pd.concat(frames, ignore_index=True)


def days_back(day: str, count: int) -> list[str]:
    """``day`` and the ``count`` days before it, oldest first."""
    last = dt.date.fromisoformat(day)
    return [(last - dt.timedelta(days=offset)).isoformat() for offset in range(count, -1, -1)]


@dataclass
class CheckedOutcomes:
    """An outcome file, checked: its rows as outcomes[day] keeps them (those whose id is known and
    whose label is of the target's kind), and, per check, what is wrong (empty: passed)."""

    frame: pd.DataFrame
    problems: dict[str, str] = field(default_factory=dict)
    rows: int = 0


def check_outcomes(
    raw: pd.DataFrame, id_column: str, target: str, arrived: str, classes: list | None, known: pd.DataFrame
) -> CheckedOutcomes:
    """The outcome file of ``arrived`` checked against the model's classes (None: a regression)
    and the ids the log knows (``logged_ids``). Raises FeedbackError when it has no id or no label
    column."""
    missing = [c for c in (id_column, target) if c not in raw.columns]
    if missing:
        raise FeedbackError(
            f"the outcome file of {arrived} has no column {' and no column '.join(map(repr, missing))}"
            f" (feedback.id is {id_column!r}, the label is the target {target!r}); its columns:"
            f" {', '.join(map(str, raw.columns))}"
        )
    rows = raw["row"] if "row" in raw.columns else pd.Series(0, index=raw.index)
    frame = pd.DataFrame(
        {"request_id": raw[id_column].astype("string"), "row": pd.to_numeric(rows, errors="coerce")}
    ).reset_index(drop=True)
    problems = {}
    labels, wrong = _labels(raw[target].reset_index(drop=True), classes)
    if wrong:
        problems[LABELS_MATCH] = wrong
    repeated = frame[frame.duplicated(["request_id", "row"], keep=False)].drop_duplicates(["request_id", "row"])
    if len(repeated):
        names = _examples(repeated["request_id"] + " row " + repeated["row"].astype("string"))
        problems[IDS_UNIQUE] = f"{len(repeated)} prediction(s) have more than one outcome in the file ({names})"
    joined = frame.assign(label=labels, arrived=arrived).merge(
        known.drop_duplicates(["request_id", "row"]), on=["request_id", "row"], how="left"
    )
    unknown = joined[joined["prediction_day"].isna()]
    if len(unknown):
        span = f"{known['prediction_day'].min()} to {arrived}" if len(known) else "the searched days"
        problems[IDS_KNOWN] = (
            f"{len(unknown)} of {len(joined)} outcome(s) name no prediction in the log of {span}"
            f" ({_examples(unknown['request_id'])})"
        )
    kept = joined[joined["prediction_day"].notna() & joined["label"].notna()]
    return CheckedOutcomes(kept[list(COLUMNS)].reset_index(drop=True), problems, len(frame))


def _labels(values: pd.Series, classes: list | None) -> tuple[pd.Series, str]:
    """The labels as the model's own values (a class, or a float), and what is wrong with them. An
    empty label is no outcome yet (kept out, not wrong)."""
    given = values.notna().to_numpy()
    if classes is None:
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        finite = np.isfinite(numbers.to_numpy())
        bad = values[given & ~finite]
        said = f"{len(bad)} label(s) are not numbers, as a regression's target is: {_examples(bad)}" if len(bad) else ""
        return numbers.where(finite), said
    by_text = {str(c): c for c in classes}
    mapped = values.map(lambda v: by_text.get(str(v).removesuffix(".0") if isinstance(v, float) else str(v)))
    bad = values[given & mapped.isna().to_numpy()]
    said = (
        f"{len(bad)} label(s) are not classes of the model ({', '.join(by_text)}): {_examples(bad)}" if len(bad) else ""
    )
    return mapped, said


def _examples(values: pd.Series) -> str:
    shown = [repr(None if v is pd.NA or v != v else v) for v in values.head(EXAMPLES)]
    return ", ".join(shown) + (" …" if len(values) > EXAMPLES else "")


def latest_outcomes(outcomes: dict[str, pd.DataFrame], day: str) -> pd.DataFrame:
    """The outcomes of ``day``'s predictions from the outcomes[arrival day] values: the latest
    label of each (request_id, row)."""
    frames = [f[f["prediction_day"] == day] for f in outcomes.values() if len(f)]
    if not frames:
        return pd.DataFrame({c: [] for c in COLUMNS})
    joined = pd.concat(frames, ignore_index=True).sort_values("arrived", kind="stable")
    return joined.drop_duplicates(["request_id", "row"], keep="last")


def live_scores(
    served: pd.DataFrame, outcomes: pd.DataFrame, day: str, task: str, classes: list | None, gate_metric: str
) -> pd.DataFrame:
    """One row per version that answered on ``day`` and one for all of them: rows, labelled rows
    and share, the label delay, the task's headline scores on the labelled rows and the gate
    metric's 95 % interval."""
    rows = answered(served)  # a rollout's rows predicted off the request path are not what was answered
    rows = rows[rows["refused"].isna()] if "refused" in rows.columns else rows
    joined = rows.merge(outcomes[["request_id", "row", "label", "arrived"]], on=["request_id", "row"], how="left")
    groups = [(str(v), g) for v, g in joined.groupby("version", sort=True)]
    if len(groups) != 1:  # several versions answered (or none): their sum first
        groups.insert(0, (ALL_VERSIONS, joined))
    return pd.DataFrame([_scores_row(name, group, day, task, classes, gate_metric) for name, group in groups])


def _scores_row(name: str, rows: pd.DataFrame, day: str, task: str, classes, gate_metric: str) -> dict[str, Any]:
    labelled = rows[rows["label"].notna()]
    delays = (pd.to_datetime(labelled["arrived"]) - pd.Timestamp(day)).dt.days
    row: dict[str, Any] = {
        "Version": name,
        "Rows": len(rows),
        "Labelled": len(labelled),
        "Labelled share": len(labelled) / len(rows) if len(rows) else 0.0,
        "Median label delay (days)": float(delays.median()) if len(delays) else float("nan"),
    }
    if len(labelled) < 2:
        return row
    outputs = _outputs(labelled, task, classes)
    scores = scores_of(outputs)
    for metric in _headline(task, gate_metric):
        if isinstance(scores.get(metric), float):
            row[metric] = scores[metric]
    if isinstance(scores.get(gate_metric), float):
        interval = intervals(outputs, [gate_metric], point={gate_metric: scores[gate_metric]}).get(gate_metric)
        if interval:
            row[f"{gate_metric} low"], row[f"{gate_metric} high"] = interval
    return row


def _headline(task: str, gate_metric: str) -> list[str]:
    from ml_platform.metrics import HEADLINE_METRICS

    metrics = [m for m in HEADLINE_METRICS[task] if m != "test_rows"]
    return metrics + ([gate_metric] if gate_metric not in metrics else [])


def _outputs(labelled: pd.DataFrame, task: str, classes: list | None) -> Outputs:
    if task != "classification":
        return Outputs(task, labelled["label"].to_numpy(dtype="float64"), labelled["prediction"].to_numpy("float64"))
    labels = list(classes or sorted(set(labelled["label"]) | set(labelled["prediction"]), key=str))
    proba_columns = [f"{PROBABILITY_PREFIX}{c}" for c in labels]
    proba = None
    if all(c in labelled.columns for c in proba_columns) and labelled[proba_columns].notna().all().all():
        proba = labelled[proba_columns].to_numpy(dtype="float64")
    by_text = {str(c): c for c in labels}
    # Each distinct prediction mapped once (a day of a million rows has a few).
    codes, uniques = pd.factorize(labelled["prediction"].to_numpy(), use_na_sentinel=False)
    predicted = pd.Index([by_text.get(str(v), v) for v in uniques]).take(codes).to_numpy()
    return Outputs(task, labelled["label"].to_numpy(), predicted, proba, tuple(labels), "logged")


@dataclass(frozen=True)
class DayScore:
    """A day's live gate metric over all versions, and how many predictions it rests on."""

    day: str
    value: float
    labelled: int


@dataclass(frozen=True)
class Decay:
    """A run of decayed days, oldest first, and why they count as decayed."""

    days: tuple[DayScore, ...]
    reason: str


def decay_of(
    scores: list[DayScore],
    bounds: dict[str, float],
    higher_is_better: bool,
    sustained_days: int,
    min_outcomes: int,
) -> tuple[Decay | None, str]:
    """Whether the newest ``sustained_days`` days with at least ``min_outcomes`` labelled
    predictions are all worse than one of ``bounds`` ({what the bound is: value}, e.g. the gate's
    threshold and the test score less the allowed drop): (the decay or None, what was found)."""

    def worse(value: float, bound: float) -> bool:
        return value < bound if higher_is_better else value > bound

    evidence = [s for s in sorted(scores, key=lambda s: s.day) if s.labelled >= min_outcomes and s.value == s.value]
    streak: list[DayScore] = []
    for score in reversed(evidence):
        if not any(worse(score.value, bound) for bound in bounds.values()):
            break
        streak.insert(0, score)
    if len(streak) < sustained_days:
        return None, (
            f"{len(streak)} decayed day(s) in a row among the {len(evidence)} day(s) with at least {min_outcomes}"
            f" outcomes; retraining takes {sustained_days}"
        )
    shown = ", ".join(f"{s.value:.4f} on {s.day} ({s.labelled} outcomes)" for s in streak)
    broken = [f"{name} {bound:.4f}" for name, bound in bounds.items() if all(worse(s.value, bound) for s in streak)]
    return Decay(tuple(streak), f"{shown}: {'worse than ' + ' and '.join(broken) if broken else 'decayed'}"), ""
