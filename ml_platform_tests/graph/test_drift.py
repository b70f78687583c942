"""Drift: each new raw_data day against the last training data (a WARN check with a table), and
the drift sensor that turns drift sustained over days into a retraining run."""

import datetime as dt

import dagster as dg
import numpy as np
import pytest

from ml_platform import drift
from ml_platform.demo import synthetic_frame
from ml_platform.jobs import retrain_keys
from ml_platform_tests.support.constants import END_DAY, MODEL_NAME
from ml_platform_tests.support.pipelines import DEMO
from ml_platform_tests.support.results import check_results, materialized

GATE = "accuracy_above_threshold"
drift_sensor = DEMO.sensor("drift_sensor")
NEW_DAYS = [(dt.date.fromisoformat(END_DAY) + dt.timedelta(days=i)).isoformat() for i in (1, 2, 3, 4)]


# -- the statistics --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic():
    whole = synthetic_frame(6000, 0, "target").sample(frac=1, random_state=0).reset_index(drop=True)
    return drift.profile(whole.iloc[:5000], "target"), whole.iloc[5000:].reset_index(drop=True)


@pytest.mark.parametrize("method", ["psi", "ks"])
def test_the_same_distribution_does_not_drift(synthetic, method):
    reference, day = synthetic
    rows = drift.compare(reference, day, method, drift.DEFAULT_THRESHOLDS[method])
    assert len(rows) == 21 and not any(r["Drifted"] for r in rows), rows[:3]


@pytest.mark.parametrize("method", ["psi", "ks"])
def test_a_shifted_feature_drifts_and_only_it(synthetic, method):
    reference, day = synthetic
    shifted = day.assign(feature_03=day["feature_03"] + 1.0)
    rows = drift.compare(reference, shifted, method, drift.DEFAULT_THRESHOLDS[method])
    assert [r["Feature"] for r in rows if r["Drifted"]] == ["feature_03"]
    assert rows[0]["Feature"] == "feature_03" and rows[0]["Statistic"] == method.upper()


def test_new_categories_and_missing_columns_drift(synthetic):
    reference, day = synthetic
    changed = day.assign(segment="unheard-of").drop(columns=["feature_00"])
    drifted = {r["Feature"]: r for r in drift.compare(reference, changed, "ks", 0.15) if r["Drifted"]}
    assert set(drifted) == {"segment", "feature_00"}
    assert drifted["segment"]["Statistic"] == "PSI" and drifted["feature_00"]["Statistic"] == "missing"


def test_small_days_raise_the_threshold_above_sampling_noise(synthetic):
    reference, day = synthetic
    rows = drift.compare(reference, day.iloc[:40], "psi", 0.2)
    assert not any(r["Drifted"] for r in rows)
    assert min(r["Threshold"] for r in rows) > 0.2  # 40 rows: the noise floor is above 0.2


def test_ks_matches_the_exact_two_sample_statistic():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 20_000), rng.normal(0.3, 1, 3_000)
    reference = drift.profile(__import__("pandas").DataFrame({"x": a, "target": 0}), "target")
    exact = max(
        abs(
            np.searchsorted(np.sort(a), v, side="right") / len(a)
            - np.searchsorted(np.sort(b), v, side="right") / len(b)
        )
        for v in np.sort(b)
    )
    assert drift.ks(reference["features"]["x"]["percentiles"], b) == pytest.approx(exact, abs=0.015)


# -- the check in the graph ------------------------------------------------------------------------
def write_new_day(platform, demo_frame, day: str, shift: float = 1.0, seed: int = 0) -> None:
    rows = demo_frame.sample(n=120, random_state=seed).reset_index(drop=True)
    platform.write_day(day, rows.assign(**{"mean radius": rows["mean radius"] * shift}))


def drift_evaluation(result) -> dg.AssetCheckEvaluation:
    (evaluation,) = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.check_name == "no_feature_drift"
    ]
    return evaluation


def reference_of(platform) -> str:
    """How the drift check names its reference: the production model, and its training data's day."""
    production = platform.store.production(MODEL_NAME)
    return f"production {production.version} (data as of {production.metadata['data_as_of']})"


@pytest.fixture
def trained(seeded):
    seeded.ingest_range()
    assert seeded.train().success
    return seeded


def test_a_drifting_day_warns_naming_the_feature_and_still_trains(trained, demo_frame):
    write_new_day(trained, demo_frame, NEW_DAYS[0], shift=1.6)
    reference = reference_of(trained)  # the run may promote another model after its checks
    result = trained.materialize("*", NEW_DAYS[0])
    evaluation = drift_evaluation(result)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert f"drift against the training data of {reference} in {NEW_DAYS[0]}: mean radius" in evaluation.description
    table = evaluation.metadata["Features"].value.records
    assert table[0].data["Feature"] == "mean radius" and table[0].data["Drifted"] is True
    assert evaluation.metadata["Reference"].value == reference and reference.endswith(f"(data as of {END_DAY})")
    # Not blocking: training went on (whether it deploys is the gate's business), and the data
    # checks passed.
    assert {"training_data", "trained_model", "model_metrics"} <= materialized(result)
    assert all(v for k, v in check_results(result).items() if k not in ("no_feature_drift", GATE))


def test_a_day_like_the_training_data_does_not_warn(trained, demo_frame):
    write_new_day(trained, demo_frame, NEW_DAYS[0], shift=1.0)
    result = trained.materialize("key:demo/raw_data", NEW_DAYS[0])
    evaluation = drift_evaluation(result)
    assert evaluation.passed, evaluation.description
    assert f"no feature drifts from the training data of {reference_of(trained)}" in evaluation.description


def test_before_any_training_there_is_nothing_to_drift_from(seeded):
    result = seeded.materialize("key:demo/raw_data", END_DAY)
    assert drift_evaluation(result).passed
    assert drift_evaluation(result).description == "no production model yet to compare with"


# -- the drift sensor ------------------------------------------------------------------------------
class Tick:
    """One evaluation of the drift sensor, as the daemon runs it: its request or skip, its cursor."""

    def __init__(self, platform, cursor=None):
        context = dg.build_sensor_context(instance=platform.instance, cursor=cursor, sensor_name="demo_drift_sensor")
        result = drift_sensor(context)
        self.run_requests = [result] if isinstance(result, dg.RunRequest) else []
        self.skip_message = result.skip_message if isinstance(result, dg.SkipReason) else None
        self.cursor = context.cursor


tick = Tick


def test_sustained_drift_requests_one_retraining_run(trained, demo_frame):
    for number, day in enumerate(NEW_DAYS[:2]):
        write_new_day(trained, demo_frame, day, shift=1.6, seed=number)
        trained.materialize("key:demo/raw_data", day)
    waiting = tick(trained)
    assert not waiting.run_requests
    assert "2 drifting day(s) in a row among the newest checked days; retraining takes 3" in waiting.skip_message

    write_new_day(trained, demo_frame, NEW_DAYS[2], shift=1.6, seed=2)
    trained.materialize("key:demo/raw_data", NEW_DAYS[2])
    result = tick(trained, waiting.cursor)
    (request,) = result.run_requests
    assert request.partition_key == NEW_DAYS[2]
    assert request.asset_selection == retrain_keys(DEMO.pipeline)
    assert request.tags["ml_platform/trigger"] == "drift"
    again = tick(trained, result.cursor)
    assert not again.run_requests and "already requested" in again.skip_message

    # The run it asks for retrains on a window with the drifted days; the reference is whatever
    # production is then (the new model if the gate promoted it).
    run = trained.materialize(request.asset_selection, request.partition_key, tags=request.tags)
    assert "training_data" in materialized(run), run.all_events
    write_new_day(trained, demo_frame, NEW_DAYS[3], shift=1.6, seed=3)
    evaluation = drift_evaluation(trained.materialize("key:demo/raw_data", NEW_DAYS[3]))
    assert evaluation.metadata["Reference"].value == reference_of(trained)


def test_a_normal_day_breaks_the_streak(trained, demo_frame):
    for number, (day, shift) in enumerate(zip(NEW_DAYS[:3], (1.6, 1.0, 1.6))):
        write_new_day(trained, demo_frame, day, shift=shift, seed=number)
        trained.materialize("key:demo/raw_data", day)
    result = tick(trained)
    assert not result.run_requests
    assert "1 drifting day(s) in a row" in result.skip_message
