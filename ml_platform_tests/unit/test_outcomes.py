"""The rules of outcomes and decay, without Dagster: a regression's outcome file, outcomes whose
label is empty (no outcome yet: kept out, not an error), a later label correcting an earlier one,
and when a run of days counts as decay."""

import pandas as pd
import pytest

from ml_platform.errors import ConfigError
from ml_platform.outcomes import IDS_KNOWN, LABELS_MATCH, DayScore, check_outcomes, decay_of, latest_outcomes
from ml_platform_tests.support.pipelines import built_from

KNOWN = pd.DataFrame({"request_id": ["r1", "r2", "r3"], "row": [0, 0, 0], "prediction_day": ["2026-01-08"] * 3})


def test_a_regression_takes_numbers_and_names_what_is_not_one():
    raw = pd.DataFrame({"id": ["r1", "r2", "r3", "r9"], "price": ["12.5", "high", None, "3"]})
    checked = check_outcomes(raw, "id", "price", "2026-01-09", None, KNOWN)
    # r3's label is empty: no outcome yet, kept out without an error.
    assert checked.problems[LABELS_MATCH] == "1 label(s) are not numbers, as a regression's target is: 'high'"
    assert checked.problems[IDS_KNOWN].startswith("1 of 4 outcome(s) name no prediction in the log of 2026-01-08")
    assert checked.frame["label"].tolist() == [12.5]  # r1 only: known, and a number


def test_classes_given_as_numbers_match_however_the_file_wrote_them():
    raw = pd.DataFrame({"id": ["r1", "r2", "r3"], "label": [1.0, 0.0, None]})  # a CSV column with a gap
    checked = check_outcomes(raw, "id", "label", "2026-01-09", [0, 1], KNOWN)
    assert checked.frame["label"].tolist() == [1, 0] and not checked.problems  # r3: no outcome yet
    wrong = check_outcomes(raw.assign(label=[1.0, 2.0, 5.0]), "id", "label", "2026-01-09", [0, 1], KNOWN)
    assert wrong.problems[LABELS_MATCH] == "2 label(s) are not classes of the model (0, 1): 2.0, 5.0"


def test_the_latest_label_of_a_prediction_counts():
    first = pd.DataFrame(
        {
            "request_id": ["r1", "r2"],
            "row": [0, 0],
            "label": ["no", "no"],
            "prediction_day": ["2026-01-08"] * 2,
            "arrived": ["2026-01-09"] * 2,
        }
    )
    correction = first.head(1).assign(label="yes", arrived="2026-01-11")
    latest = latest_outcomes({"2026-01-09": first, "2026-01-11": correction}, "2026-01-08")
    assert dict(zip(latest["request_id"], latest["label"])) == {"r1": "yes", "r2": "no"}


def test_decay_needs_sustained_days_with_enough_outcomes():
    bounds = {"the gate's min_accuracy": 0.8}
    days = [
        DayScore("2026-01-01", 0.9, 500),
        DayScore("2026-01-02", 0.7, 500),
        DayScore("2026-01-03", 0.1, 20),
        DayScore("2026-01-04", 0.72, 400),
    ]
    found, said = decay_of(days, bounds, True, 2, 100)
    assert found is not None and [d.day for d in found.days] == ["2026-01-02", "2026-01-04"]  # the thin day skipped
    assert found.reason.endswith("worse than the gate's min_accuracy 0.8000")
    found, said = decay_of(days, bounds, True, 3, 100)
    assert found is None and said.startswith("2 decayed day(s) in a row among the 3 day(s) with at least 100")
    # An error metric: higher is worse.
    found, _ = decay_of([DayScore("2026-01-01", 12.0, 200)], {"rmse + drop": 10.0}, False, 1, 100)
    assert found is not None


def test_feedback_needs_monitoring():
    with pytest.raises(ConfigError, match="feedback.*needs `monitoring`"):
        built_from("""
        pipelines:
          - name: shop
            feedback: {landing: outcomes}
        """)
