"""The rollout's evidence and its decisions: a candidate against production on live traffic, and a
promotion against the version it replaced. Free of Dagster: rollout[day] computes a day's evidence
here, the rollout sensor and ``ml-platform rollout`` pool the days and decide here.

A day's evidence (``DayEvidence``), from the day's prediction log (every row each model predicted:
``role`` production or candidate, ``answered`` or not) joined to the outcomes that have arrived:

- per model that predicted (role, version): its rows, the share it refused or failed on (the error
  rate), its p99 latency, its gate metric on its labelled rows with the bootstrap's standard error
  and 95 % interval, and the label-free estimate of its accuracy (``ml_platform.estimate``, from the
  calibration the version was stored with) and that estimate's stated error;
- per candidate and production version that predicted the same rows (shadow, or a mirrored canary):
  the share of those rows on which they disagree, and on the labelled ones the paired bootstrap of
  candidate minus production (the gate's comparison of champion and challenger).

Days are pooled by weighing each day's value by its labelled rows (a normal approximation: the
standard errors combine as independent days'). A comparison of groups that did not see the same rows
(a canary without mirror) is a two-sample one: the difference of the pooled scores, its standard
error from both.

The decision (``decide``) reads the rules of ``rollout:``: a guardrail crossed aborts at once;
enough labelled rows and days with the candidate not worse than production (one-sided bound at the
declared confidence, within ``max_regression``) promote; the candidate worse with the abort's
confidence aborts; ``max_days`` without a decision aborts; otherwise it waits, saying what is still
missing. A rollback (``rollback_verdict``) compares a promoted version's first days with the days
of the version it replaced before the swap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.intervals import LEVEL, Outputs, paired_differences, resampled_scores, weighted_scores
from ml_platform.traffic import PROBABILITY_PREFIX

MIN_SCORED_ROWS = 2  # fewer labelled rows than this: no score
# The log's columns a day's evidence reads (besides the probabilities and the slice columns).
EVIDENCE_COLUMNS = ("request_id", "row", "role", "answered", "version", "refused", "latency_ms", "prediction")
PRODUCTION, CANDIDATE = "production", "candidate"


def _from_dict(cls, data: dict[str, Any]):
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class VersionEvidence:
    """One model's day: what it predicted, refused, how fast, and how well (labels, or estimated)."""

    role: str
    version: str
    rows: int
    refused: int
    p99_ms: float | None
    labelled: int = 0
    score: float | None = None  # the gate metric on its labelled rows
    score_se: float | None = None
    low: float | None = None
    high: float | None = None
    estimate: float | None = None  # the label-free estimate of its accuracy
    estimate_error: float | None = None  # the estimate's stated error (half-width at 95 %)
    estimate_trusted: bool | None = None
    estimate_note: str | None = None

    @property
    def error_rate(self) -> float | None:
        return self.refused / self.rows if self.rows else None

    to_dict = asdict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionEvidence:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class PairEvidence:
    """A candidate and a production version on the same rows of a day."""

    candidate: str
    production: str
    rows: int  # rows both predicted
    disagreement: float | None  # the share of those rows on which their predictions differ
    labelled: int = 0
    difference: float | None = None  # candidate minus production, gate metric, on the labelled rows
    difference_se: float | None = None

    to_dict = asdict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairEvidence:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class DayEvidence:
    """rollout[day]'s evidence: per model and per pair of models that saw the same rows."""

    metric: str
    versions: list[VersionEvidence] = field(default_factory=list)
    pairs: list[PairEvidence] = field(default_factory=list)
    # Per slice of evaluation.slices: each model's gate metric on its labelled rows of the slice
    # ({"Slice", "Role", "Version", "Labelled", metric}); for people, not for the rules.
    slices: list[dict[str, Any]] = field(default_factory=list)

    def of(self, version: str, role: str | None = None) -> VersionEvidence | None:
        found = [v for v in self.versions if v.version == version and (role is None or v.role == role)]
        return found[0] if found else None

    def pair(self, candidate: str, production: str) -> PairEvidence | None:
        return next((p for p in self.pairs if (p.candidate, p.production) == (candidate, production)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "versions": [v.to_dict() for v in self.versions],
            "pairs": [p.to_dict() for p in self.pairs],
            "slices": self.slices,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DayEvidence:
        return cls(
            str(data.get("metric", "")),
            [VersionEvidence.from_dict(v) for v in data.get("versions", [])],
            [PairEvidence.from_dict(p) for p in data.get("pairs", [])],
            list(data.get("slices", [])),
        )


# -- a day --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scoring:
    """How a day's rows are scored: the task, the gate metric, and per version its classes and
    its calibration (``estimate.Calibration``; None: no label-free estimate)."""

    task: str
    metric: str
    classes_of: Callable[[str], list | None]
    calibration_of: Callable[[str], Any] = lambda version: None
    slices: tuple[str, ...] = ()  # evaluation.slices: the columns the evidence is also shown by
    bins: int = 4  # evaluation.bins: quantile bins of a numeric slice column


def day_evidence(log: pd.DataFrame, labels: pd.DataFrame, scoring: Scoring) -> DayEvidence:
    """The evidence of a day of the prediction log (``traffic.read_day``; rows of both roles) and
    the latest outcomes of its predictions (``outcomes.latest_outcomes``)."""
    if log.empty:
        return DayEvidence(scoring.metric)
    # Only what the evidence reads (a day of 1M requests holds every feature twice).
    slices = {name for column in scoring.slices for name in (column, f"{column} (feature)")}
    log = log[[c for c in log.columns if c in EVIDENCE_COLUMNS or c in slices or c.startswith(PROBABILITY_PREFIX)]]
    log = with_roles(log)
    joined = log.merge(labels[["request_id", "row", "label"]], on=["request_id", "row"], how="left")
    versions = [
        _version_evidence(str(role), str(version), group, scoring)
        for (role, version), group in joined.groupby(["role", "version"], sort=True)
    ]
    candidates = {v.version for v in versions if v.role == CANDIDATE}
    productions = {v.version for v in versions if v.role == PRODUCTION}
    pairs = [_pair_evidence(joined, c, p, scoring) for c in sorted(candidates) for p in sorted(productions)]
    return DayEvidence(scoring.metric, versions, [p for p in pairs if p is not None], _by_slice(joined, scoring))


SLICE_VALUES = 10  # the largest slices of a column shown per model


def _by_slice(joined: pd.DataFrame, scoring: Scoring) -> list[dict[str, Any]]:
    """Each model's gate metric on its labelled rows of each slice of ``scoring.slices`` (the
    ``SLICE_VALUES`` largest of a column), as the model metrics' slices are cut."""
    from ml_platform.slices import scores_of_slices, slice_labels

    ok = joined["refused"].isna() if "refused" in joined.columns else pd.Series(True, index=joined.index)
    labelled = joined[ok & joined["label"].notna()]
    rows = []
    for column in scoring.slices:
        name = column if column in labelled.columns else f"{column} (feature)"
        if name not in labelled.columns or labelled.empty:
            continue
        labels = slice_labels(labelled[name], scoring.bins)
        for (role, version), group in labelled.groupby(["role", "version"], sort=True):
            outputs = outputs_of(group, scoring.task, scoring.classes_of(str(version)))
            found = scores_of_slices(outputs, column, labels.loc[group.index], [scoring.metric], most=SLICE_VALUES)
            rows += [
                {
                    "Slice": s.name,
                    "Role": str(role),
                    "Version": str(version),
                    "Labelled": s.rows,
                    scoring.metric: s.scores.get(scoring.metric),
                }
                for s in found
            ]
    return rows


def with_roles(log: pd.DataFrame) -> pd.DataFrame:
    """The log with ``role`` and ``answered`` (parts written before a rollout existed: production's
    answers)."""
    log = log.copy()
    if "role" not in log.columns:
        log["role"] = PRODUCTION
    log["role"] = log["role"].fillna(PRODUCTION).astype(str)
    if "answered" not in log.columns:
        log["answered"] = True
    return log


def _version_evidence(role: str, version: str, rows: pd.DataFrame, scoring: Scoring) -> VersionEvidence:
    refused = rows["refused"].notna() if "refused" in rows.columns else pd.Series(False, index=rows.index)
    predicted = rows[~refused]
    latency = rows.drop_duplicates("request_id")["latency_ms"].to_numpy(dtype="float64")
    evidence = VersionEvidence(
        role,
        version,
        rows=len(rows),
        refused=int(refused.sum()),
        p99_ms=float(np.quantile(latency, 0.99)) if len(latency) else None,
    )
    labelled = predicted[predicted["label"].notna()]
    evidence = _with_score(evidence, labelled, scoring)
    return _with_estimate(evidence, predicted, scoring)


def _with_score(evidence: VersionEvidence, labelled: pd.DataFrame, scoring: Scoring) -> VersionEvidence:
    if len(labelled) < MIN_SCORED_ROWS:
        return _replace(evidence, labelled=len(labelled))
    outputs = outputs_of(labelled, scoring.task, scoring.classes_of(evidence.version))
    value = gate_value(outputs, scoring.metric)
    if not isinstance(value, float) or not math.isfinite(value):
        return _replace(evidence, labelled=len(labelled))
    resampled = resampled_scores(outputs, [scoring.metric]).get(scoring.metric, np.array([]))
    finite = resampled[np.isfinite(resampled)]
    tail = (1 - LEVEL) / 2 * 100
    low, high = (float(x) for x in np.percentile(finite, [tail, 100 - tail])) if len(finite) else (None, None)
    se = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
    return _replace(evidence, labelled=len(labelled), score=value, score_se=se, low=low, high=high)


def _with_estimate(evidence: VersionEvidence, predicted: pd.DataFrame, scoring: Scoring) -> VersionEvidence:
    """The label-free estimate of the model's accuracy on the rows it predicted (classifiers whose
    probabilities were logged, versions stored with a calibration)."""
    from ml_platform.errors import MlPlatformError
    from ml_platform.estimate import estimate

    calibration = scoring.calibration_of(evidence.version) if scoring.task == "classification" else None
    if calibration is None or predicted.empty:
        return evidence
    columns = [f"proba_{c}" for c in calibration.classes]
    if not all(c in predicted.columns for c in columns) or predicted[columns].isna().any().any():
        return _replace(evidence, estimate_note="no probabilities logged for every row")
    probabilities = predicted[columns].set_axis(list(calibration.classes), axis=1)
    try:
        found = estimate(calibration, probabilities, predicted["prediction"].astype(str).to_numpy())
    except MlPlatformError as exc:
        return _replace(evidence, estimate_note=str(exc))
    return _replace(
        evidence,
        estimate=found.values.get("accuracy"),
        estimate_error=found.errors.get("accuracy"),
        estimate_trusted=found.trusted,
        estimate_note="; ".join(found.warnings) or None,
    )


def _pair_evidence(joined: pd.DataFrame, candidate: str, production: str, scoring: Scoring) -> PairEvidence | None:
    """Candidate and production on the rows both predicted (neither refused)."""
    ok = joined["refused"].isna() if "refused" in joined.columns else pd.Series(True, index=joined.index)
    keys = ["request_id", "row"]
    mine = joined[ok & (joined["role"] == CANDIDATE) & (joined["version"] == candidate)]
    theirs = joined[ok & (joined["role"] == PRODUCTION) & (joined["version"] == production)]
    kept = [c for c in theirs.columns if c in (*keys, "prediction") or c.startswith(PROBABILITY_PREFIX)]
    both = mine.merge(theirs[kept], on=keys, suffixes=("", "_production"))
    if both.empty:
        return None
    disagree = both["prediction"].astype(str) != both["prediction_production"].astype(str)
    pair = PairEvidence(candidate, production, len(both), float(disagree.mean()))
    labelled = both[both["label"].notna()]
    if len(labelled) < MIN_SCORED_ROWS:
        return _replace(pair, labelled=len(labelled))
    classes = scoring.classes_of(candidate) or scoring.classes_of(production)
    own = [c for c in labelled.columns if c.endswith("_production")]
    theirs_rows = labelled[["label", *own]].rename(columns=lambda c: c.removesuffix("_production"))
    mine_out = outputs_of(labelled, scoring.task, classes)
    theirs_out = outputs_of(theirs_rows, scoring.task, classes)
    point = gate_value(mine_out, scoring.metric), gate_value(theirs_out, scoring.metric)
    if not all(isinstance(v, float) and math.isfinite(v) for v in point):
        return _replace(pair, labelled=len(labelled))
    differences = paired_differences(mine_out, theirs_out, [scoring.metric]).get(scoring.metric, np.array([]))
    finite = differences[np.isfinite(differences)]
    se = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
    return _replace(pair, labelled=len(labelled), difference=point[0] - point[1], difference_se=se)


def gate_value(outputs: Outputs, metric: str) -> float | None:
    """The gate metric alone on all the rows (``intervals.weighted_scores`` with every weight 1: what
    scikit-learn's function gives), not every score of the task."""
    values = weighted_scores(outputs, [metric], np.ones((1, outputs.rows))).get(metric)
    return float(values[0]) if values is not None else None


def outputs_of(labelled: pd.DataFrame, task: str, classes: list | None) -> Outputs:
    """What a model said on labelled log rows, as the gate's statistics take it."""
    from ml_platform.outcomes import _outputs

    return _outputs(labelled, task, classes)


def _replace(record, **changes):
    from dataclasses import replace

    return replace(record, **changes)


# -- days pooled --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pooled:
    """A value pooled over days by labelled rows, its standard error, the rows and days behind it."""

    value: float | None
    se: float | None
    labelled: int
    days: int

    @classmethod
    def of(cls, parts: list[tuple[int, float | None, float | None]]) -> Pooled:
        """From (labelled rows, value, standard error) per day; days without a value are left out."""
        usable = [(n, v, s) for n, v, s in parts if v is not None and n > 0]
        total = sum(n for n, _, _ in usable)
        if not total:
            return cls(None, None, 0, 0)
        value = sum(n * v for n, v, _ in usable) / total
        if any(s is None for _, _, s in usable):
            return cls(value, None, total, len(usable))
        se = math.sqrt(sum((n / total) ** 2 * s**2 for n, _, s in usable))
        return cls(value, se, total, len(usable))


@dataclass(frozen=True)
class Evidence:
    """A candidate against production over the candidate's days so far (``gather``)."""

    metric: str
    candidate: str
    production: str
    days: tuple[str, ...]
    candidate_rows: int = 0
    candidate_refused: int = 0
    candidate_p99_ms: float | None = None
    production_p99_ms: float | None = None
    candidate_score: Pooled = Pooled(None, None, 0, 0)
    production_score: Pooled = Pooled(None, None, 0, 0)
    difference: Pooled = Pooled(None, None, 0, 0)  # candidate minus production
    paired: bool = False
    disagreement: float | None = None
    candidate_estimate: float | None = None
    production_estimate: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.candidate_refused / self.candidate_rows if self.candidate_rows else None

    @property
    def p99_ratio(self) -> float | None:
        if not self.candidate_p99_ms or not self.production_p99_ms:
            return None
        return self.candidate_p99_ms / self.production_p99_ms

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["error_rate"], out["p99_ratio"] = self.error_rate, self.p99_ratio
        return out


def gather(days: dict[str, DayEvidence], candidate: str, production: str) -> Evidence:
    """The evidence of ``candidate`` against ``production`` over ``days`` (each day's evidence)."""
    metric = next((d.metric for d in days.values()), "")
    mine = [d.of(candidate, CANDIDATE) for d in days.values()]
    theirs = [d.of(production, PRODUCTION) for d in days.values()]
    mine_ok, theirs_ok = [m for m in mine if m], [t for t in theirs if t]
    pairs = [p for p in (d.pair(candidate, production) for d in days.values()) if p]
    paired = Pooled.of([(p.labelled, p.difference, p.difference_se) for p in pairs])
    candidate_score = Pooled.of([(m.labelled, m.score, m.score_se) for m in mine_ok])
    production_score = Pooled.of([(t.labelled, t.score, t.score_se) for t in theirs_ok])
    difference = paired if paired.labelled else _two_sample(candidate_score, production_score)
    compared = sum(p.rows for p in pairs)
    return Evidence(
        metric,
        candidate,
        production,
        tuple(sorted(day for day, d in days.items() if d.of(candidate, CANDIDATE))),
        candidate_rows=sum(m.rows for m in mine_ok),
        candidate_refused=sum(m.refused for m in mine_ok),
        candidate_p99_ms=max((m.p99_ms for m in mine_ok if m.p99_ms is not None), default=None),
        production_p99_ms=max((t.p99_ms for t in theirs_ok if t.p99_ms is not None), default=None),
        candidate_score=candidate_score,
        production_score=production_score,
        difference=difference,
        paired=bool(paired.labelled),
        disagreement=sum(p.rows * p.disagreement for p in pairs) / compared if compared else None,
        candidate_estimate=_weighted([(m.rows, m.estimate) for m in mine_ok]),
        production_estimate=_weighted([(t.rows, t.estimate) for t in theirs_ok]),
    )


def _two_sample(first: Pooled, second: Pooled) -> Pooled:
    if first.value is None or second.value is None:
        return Pooled(None, None, min(first.labelled, second.labelled), 0)
    se = math.sqrt(first.se**2 + second.se**2) if first.se is not None and second.se is not None else None
    return Pooled(first.value - second.value, se, min(first.labelled, second.labelled), min(first.days, second.days))


def _weighted(parts: list[tuple[int, float | None]]) -> float | None:
    usable = [(n, v) for n, v in parts if v is not None and n]
    total = sum(n for n, _ in usable)
    return sum(n * v for n, v in usable) / total if total else None


# -- the decision -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """What the rules say today: ``promote``, ``abort``, ``wait`` (a rollback: ``rollback``,
    ``keep``, ``wait``), and why, with the numbers."""

    action: str
    reason: str

    to_dict = asdict


def z_of(confidence: float) -> float:
    """The one-sided normal quantile of ``confidence`` (0.95: 1.645)."""
    return NormalDist().inv_cdf(confidence)


def decide(rollout, evidence: Evidence, higher_is_better: bool, days_open: int) -> Verdict:
    """The rules of ``rollout`` (``spec.RolloutSpec``) on the evidence so far; ``days_open``: the
    days since the candidate was proposed."""
    guard = _guardrail(rollout.guardrails, evidence)
    if guard is not None:
        return Verdict("abort", guard)
    judged = _judged(rollout, evidence, higher_is_better)
    if judged is not None:
        return judged
    missing = _missing(rollout.promote_when, evidence)
    if days_open >= rollout.max_days:
        return Verdict("abort", f"no decision after {days_open} day(s) (max_days {rollout.max_days}): {missing}")
    return Verdict("wait", missing)


def _guardrail(guardrails, evidence: Evidence) -> str | None:
    if evidence.candidate_rows < guardrails.min_rows:
        return None
    rate = evidence.error_rate
    if rate is not None and rate > guardrails.max_error_rate:
        return (
            f"guardrail: the candidate refused or failed on {evidence.candidate_refused} of"
            f" {evidence.candidate_rows} rows ({rate:.2%}), above max_error_rate {guardrails.max_error_rate:.2%}"
        )
    ratio = evidence.p99_ratio
    if ratio is not None and ratio > guardrails.max_p99_ratio:
        return (
            f"guardrail: the candidate's p99 latency {evidence.candidate_p99_ms:.1f} ms is {ratio:.2f}x"
            f" production's {evidence.production_p99_ms:.1f} ms, above max_p99_ratio {guardrails.max_p99_ratio:g}"
        )
    return None


def _oriented(value: float, higher_is_better: bool) -> float:
    return value if higher_is_better else -value


def _judged(rollout, evidence: Evidence, higher_is_better: bool) -> Verdict | None:
    """Promote or abort on the labelled comparison, when it is conclusive under the rules."""
    difference = evidence.difference
    if difference.value is None or difference.se is None:
        return None
    gain = _oriented(difference.value, higher_is_better)  # > 0: the candidate is better
    said = describe_difference(evidence, higher_is_better)
    abort = rollout.abort_when
    if difference.labelled >= abort.min_labelled and gain + z_of(abort.confidence) * difference.se < 0:
        return Verdict(
            "abort", f"the candidate is worse than production with {abort.confidence:.0%} confidence: {said}"
        )
    promote = rollout.promote_when
    enough = difference.labelled >= promote.min_labelled and len(evidence.days) >= promote.min_days
    lower = gain - z_of(promote.confidence) * difference.se
    if enough and lower >= -promote.max_regression:
        return Verdict(
            "promote",
            f"the candidate is no worse than production (within {promote.max_regression:g}) with"
            f" {promote.confidence:.0%} confidence: {said}",
        )
    return None


def describe_difference(evidence: Evidence, higher_is_better: bool) -> str:
    """'accuracy 0.8312 vs 0.8790 (candidate − production −0.0478 ± 0.0121, paired, on 1,204 labelled rows
    over 3 day(s))'."""
    d, c, p = evidence.difference, evidence.candidate_score, evidence.production_score
    scores = f"{evidence.metric} {_shown(c.value)} vs {_shown(p.value)}" if c.value is not None else evidence.metric
    spread = f" ± {1.96 * d.se:.4f}" if d.se is not None else ""
    how = "paired" if evidence.paired else "two groups"
    return (
        f"{scores} (candidate − production {d.value:+.4f}{spread} at 95 %, {how}, on {d.labelled:,} labelled rows"
        f" over {d.days} day(s))"
    )


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _missing(promote_when, evidence: Evidence) -> str:
    """What the promotion still waits for: '212 of 500 labelled rows; 1 of 2 days'."""
    parts = []
    labelled = evidence.difference.labelled
    if labelled < promote_when.min_labelled:
        parts.append(f"{labelled} of {promote_when.min_labelled} labelled rows")
    if len(evidence.days) < promote_when.min_days:
        parts.append(f"{len(evidence.days)} of {promote_when.min_days} days")
    if not parts:
        parts.append(
            "the comparison is not yet conclusive"
            + (f": {describe_difference(evidence, True)}" if evidence.difference.value is not None else "")
        )
    return "waiting for " + "; ".join(parts)


def rollback_verdict(rollback, new: Pooled, old: Pooled, higher_is_better: bool, names: tuple[str, str]) -> Verdict:
    """Roll back a promotion when the promoted version's live metric over its first days (``new``)
    is worse than the replaced version's over the days before the swap (``old``) by more than
    ``max_live_regression``, with the declared confidence; ``names``: (promoted, replaced)."""
    promoted, replaced = names
    if new.labelled < rollback.min_labelled or old.labelled < rollback.min_labelled:
        return Verdict(
            "wait",
            f"waiting for {rollback.min_labelled} labelled rows of each: {promoted} has {new.labelled},"
            f" {replaced} {old.labelled}",
        )
    if new.se is None or old.se is None:
        return Verdict("wait", "no standard error for a comparison yet")
    loss = _oriented(old.value - new.value, higher_is_better)  # > 0: the promoted version is worse
    se = math.sqrt(new.se**2 + old.se**2)
    said = (
        f"live {new.value:.4f} over {new.days} day(s) ({new.labelled:,} labelled rows) vs {old.value:.4f} before"
        f" the swap ({old.labelled:,}); worse by {loss:+.4f} ± {1.96 * se:.4f} at 95 %"
    )
    if loss - z_of(rollback.confidence) * se > rollback.max_live_regression:
        return Verdict(
            "rollback",
            f"{promoted} is worse than {replaced} by more than {rollback.max_live_regression:g} with"
            f" {rollback.confidence:.0%} confidence: {said}",
        )
    return Verdict("keep", f"{promoted} is not shown worse than {replaced} beyond the margin: {said}")


# -- the decisions, carried out -----------------------------------------------------------------
ROLLED_BACK = "rolled back"  # how a rollback's reason starts: a restored version is never rolled back again


def promote_candidate(store, model: str, reason: str, actor: str):
    """Production moves to the open candidate (compare-and-swap, production's history says why),
    then the candidate is closed as promoted. A crash in between leaves a candidate that names
    production's version, which reads as no candidate (``ModelStore.candidate``)."""
    from ml_platform.errors import ModelStoreError

    candidate = store.candidate(model)
    if candidate is None:
        raise ModelStoreError(f"model {model!r} has no open candidate to promote")
    _, token = store.pointer_state(model)
    moved = store.promote(model, candidate.version, reason=f"promoted: {reason}", actor=actor, expected=token)
    store.close_candidate(model, "promoted", reason, actor=actor)
    return moved


def abort_candidate(store, model: str, reason: str, actor: str):
    """The open candidate is closed as aborted; production never moved."""
    return store.close_candidate(model, "aborted", reason, actor=actor)


def roll_back(store, model: str, reason: str, actor: str):
    """Production moves back to the version the current one replaced (its history says why)."""
    from ml_platform.errors import ModelStoreError

    pointer, token = store.pointer_state(model)
    if pointer is None or not pointer.previous:
        raise ModelStoreError(f"model {model!r} has no earlier production version to roll back to")
    return store.promote(model, pointer.previous, reason=f"{ROLLED_BACK}: {reason}", actor=actor, expected=token)
