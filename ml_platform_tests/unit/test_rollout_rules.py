"""The rollout's evidence and rules (ml_platform.rollout), on logs built as the server writes them:
a day of shadowed traffic where the candidate is right less often than production, a canary day,
refusals, and the rules' promote / abort / wait / rollback on the numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_platform import rollout as rules
from ml_platform.spec import RolloutSpec

CLASSES = ["no", "yes"]


def log_of(role: str, version: str, ids: list[str], predictions, answered: bool, latency: float = 5.0) -> pd.DataFrame:
    predictions = np.asarray(predictions, dtype=object)
    proba_yes = np.where(predictions == "yes", 0.8, 0.2)
    return pd.DataFrame(
        {
            "request_id": ids,
            "row": 0,
            "version": version,
            "latency_ms": latency,
            "prediction": predictions,
            "refused": pd.Series([None] * len(ids), dtype="string"),
            "role": role,
            "answered": answered,
            "proba_no": 1 - proba_yes,
            "proba_yes": proba_yes,
        }
    )


def shadow_day(rows: int, production_right: float, candidate_right: float, seed: int = 0):
    """A day of shadowed traffic: every request answered by production and predicted by the
    candidate; labels for every row; each model right on about its share of rows."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(CLASSES, rows, p=[0.7, 0.3])
    ids = [f"r{seed}-{i}" for i in range(rows)]
    flip = {"no": "yes", "yes": "no"}

    def said(right: float):
        keep = rng.random(rows) < right
        return np.where(keep, labels, [flip[v] for v in labels])

    log = pd.concat(
        [
            log_of("production", "v1", ids, said(production_right), answered=True),
            log_of("candidate", "v2", ids, said(candidate_right), answered=False, latency=6.0),
        ],
        ignore_index=True,
    )
    outcomes = pd.DataFrame({"request_id": ids, "row": 0, "label": labels})
    return log, outcomes


SCORING = rules.Scoring("classification", "accuracy", lambda version: CLASSES)


def test_a_shadow_day_scores_both_models_and_compares_them_on_the_same_rows():
    log, outcomes = shadow_day(2000, production_right=0.9, candidate_right=0.8)
    evidence = rules.day_evidence(log, outcomes, SCORING)
    production, candidate = evidence.of("v1", "production"), evidence.of("v2", "candidate")
    assert (production.rows, candidate.rows, production.labelled, candidate.labelled) == (2000, 2000, 2000, 2000)
    assert production.score == pytest.approx(0.9, abs=0.03) and candidate.score == pytest.approx(0.8, abs=0.03)
    assert production.low < production.score < production.high
    (pair,) = evidence.pairs
    assert pair.rows == pair.labelled == 2000
    assert pair.difference == pytest.approx(candidate.score - production.score)
    assert 0 < pair.difference_se < 0.02  # paired: tighter than two independent groups would be
    assert pair.disagreement == pytest.approx(0.26, abs=0.04)  # 0.9 * 0.2 + 0.1 * 0.8
    # The record round-trips as the sensor reads it back.
    assert rules.DayEvidence.from_dict(evidence.to_dict()) == evidence


def test_rows_without_labels_count_for_rows_and_disagreement_not_for_scores():
    log, outcomes = shadow_day(1000, 0.9, 0.9)
    evidence = rules.day_evidence(log, outcomes.iloc[:300], SCORING)
    assert evidence.of("v2", "candidate").labelled == 300
    assert evidence.of("v2", "candidate").rows == 1000
    assert evidence.pairs[0].rows == 1000 and evidence.pairs[0].labelled == 300


def test_a_log_from_before_rollouts_is_production_answering():
    log, outcomes = shadow_day(200, 0.9, 0.9)
    old = log[log["role"] == "production"].drop(columns=["role", "answered"])
    evidence = rules.day_evidence(old, outcomes, SCORING)
    assert [(v.role, v.version) for v in evidence.versions] == [("production", "v1")]
    assert evidence.pairs == []


def test_refusals_make_the_error_rate_and_are_not_scored():
    log, outcomes = shadow_day(1000, 0.9, 0.9)
    refused = (log["role"] == "candidate") & (log.index % 20 == 0)
    log.loc[refused, "refused"] = "missing column 'price'"
    log.loc[refused, "prediction"] = None
    candidate = rules.day_evidence(log, outcomes, SCORING).of("v2", "candidate")
    assert candidate.refused == int(refused.sum()) and candidate.error_rate == pytest.approx(0.05, abs=0.001)
    assert candidate.labelled == 1000 - candidate.refused


def gathered(days: int, rows: int, production_right: float, candidate_right: float) -> rules.Evidence:
    evidence = {}
    for index in range(days):
        log, outcomes = shadow_day(rows, production_right, candidate_right, seed=index)
        evidence[f"2026-03-0{index + 1}"] = rules.day_evidence(log, outcomes, SCORING)
    return rules.gather(evidence, "v2", "v1")


def test_a_worse_candidate_is_aborted_with_the_numbers():
    evidence = gathered(2, 600, production_right=0.9, candidate_right=0.8)
    assert evidence.paired and evidence.difference.labelled == 1200 and len(evidence.days) == 2
    verdict = rules.decide(RolloutSpec(strategy="shadow"), evidence, higher_is_better=True, days_open=2)
    assert verdict.action == "abort"
    assert "worse than production with 95% confidence" in verdict.reason
    assert "accuracy" in verdict.reason and "1,200 labelled rows" in verdict.reason and "paired" in verdict.reason


def test_a_better_candidate_is_promoted_once_it_has_the_rows_and_days():
    spec = RolloutSpec(strategy="shadow", promote_when={"min_labelled": 1000, "min_days": 2})
    one_day = gathered(1, 1500, production_right=0.8, candidate_right=0.9)
    waiting = rules.decide(spec, one_day, True, days_open=1)
    assert waiting.action == "wait" and waiting.reason == "waiting for 1 of 2 days"
    two_days = gathered(2, 600, production_right=0.8, candidate_right=0.9)
    verdict = rules.decide(spec, two_days, True, days_open=2)
    assert verdict.action == "promote", verdict.reason
    assert "no worse than production (within 0)" in verdict.reason


def test_waiting_names_what_is_missing_and_max_days_ends_it():
    spec = RolloutSpec(strategy="shadow", promote_when={"min_labelled": 500}, max_days=5)
    few = gathered(1, 212, 0.85, 0.85)
    assert rules.decide(spec, few, True, days_open=1).reason == "waiting for 212 of 500 labelled rows; 1 of 2 days"
    ended = rules.decide(spec, few, True, days_open=5)
    assert ended.action == "abort" and "no decision after 5 day(s) (max_days 5)" in ended.reason


def test_guardrails_abort_before_any_label():
    log, _ = shadow_day(1000, 0.9, 0.9)
    refused = (log["role"] == "candidate") & (log.index % 20 == 0)
    log.loc[refused, "refused"] = "ValueError: boom"
    no_labels = pd.DataFrame({"request_id": [], "row": [], "label": []})
    evidence = rules.gather({"2026-03-01": rules.day_evidence(log, no_labels, SCORING)}, "v2", "v1")
    verdict = rules.decide(RolloutSpec(strategy="shadow"), evidence, True, days_open=0)
    assert verdict.action == "abort"
    assert "refused or failed on 50 of 1000 rows (5.00%), above max_error_rate 1.00%" in verdict.reason
    slow = rules.Evidence("accuracy", "v2", "v1", ("d",), 500, 0, candidate_p99_ms=30.0, production_p99_ms=10.0)
    said = rules.decide(RolloutSpec(strategy="canary"), slow, True, 0).reason
    assert "p99 latency 30.0 ms is 3.00x production's 10.0 ms" in said


def test_a_canary_without_mirror_is_compared_as_two_groups():
    rng = np.random.default_rng(3)
    ids = [f"c{i}" for i in range(3000)]
    labels = rng.choice(CLASSES, 3000, p=[0.7, 0.3])
    to_candidate = rng.random(3000) < 0.3
    predictions = np.where(rng.random(3000) < 0.85, labels, np.where(labels == "yes", "no", "yes"))
    log = pd.concat(
        [
            log_of("candidate", "v2", list(np.array(ids)[to_candidate]), predictions[to_candidate], True),
            log_of("production", "v1", list(np.array(ids)[~to_candidate]), predictions[~to_candidate], True),
        ]
    )
    outcomes = pd.DataFrame({"request_id": ids, "row": 0, "label": labels})
    evidence = rules.gather({"d": rules.day_evidence(log, outcomes, SCORING)}, "v2", "v1")
    assert not evidence.paired and evidence.disagreement is None
    c, p = evidence.candidate_score, evidence.production_score
    assert evidence.difference.value == pytest.approx(c.value - p.value)
    assert evidence.difference.se == pytest.approx(np.hypot(c.se, p.se))


def test_pooling_weighs_days_by_their_labelled_rows():
    pooled = rules.Pooled.of([(100, 0.8, 0.04), (300, 0.9, 0.02), (0, None, None)])
    assert pooled.value == pytest.approx(0.875) and pooled.labelled == 400 and pooled.days == 2
    assert pooled.se == pytest.approx(np.sqrt(0.25**2 * 0.04**2 + 0.75**2 * 0.02**2))


def test_rollback_needs_the_regression_beyond_the_margin_with_confidence():
    spec = RolloutSpec(strategy="direct", rollback={"days": 2, "max_live_regression": 0.02, "min_labelled": 200})
    names = ("v2", "v1")
    worse = rules.rollback_verdict(
        spec.rollback, rules.Pooled(0.80, 0.01, 800, 2), rules.Pooled(0.88, 0.01, 800, 3), True, names
    )
    assert worse.action == "rollback" and "v2 is worse than v1 by more than 0.02" in worse.reason
    within = rules.rollback_verdict(
        spec.rollback, rules.Pooled(0.87, 0.01, 800, 2), rules.Pooled(0.88, 0.01, 800, 3), True, names
    )
    assert within.action == "keep"
    few = rules.rollback_verdict(
        spec.rollback, rules.Pooled(0.5, 0.1, 50, 1), rules.Pooled(0.9, 0.01, 800, 3), True, names
    )
    assert few.action == "wait" and "v2 has 50" in few.reason
    # An error metric (lower is better): a higher RMSE is the regression.
    rmse = rules.rollback_verdict(
        spec.rollback, rules.Pooled(12.0, 0.5, 800, 2), rules.Pooled(9.0, 0.5, 800, 3), False, names
    )
    assert rmse.action == "rollback"


def test_the_evidence_is_shown_per_slice_where_the_candidate_fails_one_region():
    """evaluation.slices: each model's gate metric per slice of its labelled rows; a candidate wrong on
    one region only shows it there (the rules still read the whole day)."""
    log, outcomes = shadow_day(1200, production_right=0.9, candidate_right=0.9, seed=4)
    region = np.where(np.arange(len(log)) % 1200 < 400, "north", "south")
    log["region"] = region
    north = (log["role"] == "candidate") & (log["region"] == "north")
    label_of = outcomes.set_index("request_id")["label"]
    flipped = log.loc[north, "request_id"].map(label_of).map({"yes": "no", "no": "yes"})
    log.loc[north, "prediction"] = flipped.to_numpy()
    scoring = rules.Scoring("classification", "accuracy", lambda version: CLASSES, slices=("region", "absent"))
    evidence = rules.day_evidence(log, outcomes, scoring)
    by = {(s["Slice"], s["Role"]): s for s in evidence.slices}
    assert set(by) == {(f"region={r}", role) for r in ("north", "south") for role in ("production", "candidate")}
    assert by[("region=north", "candidate")]["accuracy"] == 0.0
    assert by[("region=south", "candidate")]["accuracy"] == pytest.approx(0.9, abs=0.04)
    assert by[("region=north", "production")]["Labelled"] == 400
    assert rules.DayEvidence.from_dict(evidence.to_dict()).slices == evidence.slices
