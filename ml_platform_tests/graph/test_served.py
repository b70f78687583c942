"""served[day]: a day of the prediction log as an asset, on a model of a year-like shop table (a
400-value product column, bursts of missing distances), in a time zone that is not UTC.

The log is written by the server's own app (``create_app``, in this process, on a clock the test
sets to each request's minute): requests of 1-5 rows spread over the day, checked, predicted and
logged as `ml-platform serve` does, the refused ones included. One day of ordinary traffic passes
both checks; on a day whose prices went up eightfold and a third of whose requests send prices as
text, served shows the drift of `price` against the training data and fails
served_rows_match_signature with the refusal's reason. The served sensor reads each ended day once,
and a day again when a late part of it arrives. Each test that writes outcome files has days of its
own (their windows of max_delay_days do not reach another test's), so the order they run in
changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform import clock
from ml_platform.asset_records import LiveMetricsRecord, OutcomesRecord
from ml_platform_tests.support.clock import SetClock, local_time
from ml_platform_tests.support.constants import DAYS
from ml_platform_tests.support.pipelines import built_from, ingest_and_train
from ml_platform_tests.support.platform import Platform
from ml_platform_tests.support.realistic import FEATURES, TARGET, shop_day, write_days
from ml_platform_tests.support.results import check_descriptions, check_results, step_errors
from ml_platform_tests.support.serve_process import serving_in_process

ZONE = "Europe/Berlin"
MODEL = "shop_churn"
YAML = f"""
pipelines:
  - name: shop
    landing: shop
    target: {TARGET}
    model_name: {MODEL}
    features: [{", ".join(FEATURES)}]
    partitions: {{start: "{DAYS[0]}"}}
    schedule: {{timezone: {ZONE}}}
    model: {{estimator: random_forest, params: {{n_estimators: 30}}}}
    gate: {{min_accuracy: 0.6}}
    monitoring: {{grace_minutes: 5, sustained_days: 2, min_outcomes: 100}}
    feedback: {{landing: shop_outcomes, id: order_ref, max_delay_days: 7}}
"""
BUILT = built_from(YAML)
LOG = {MODEL: {"timezone": ZONE}}  # the pipeline's serving.log, as `ml-platform serve` reads it
ORDINARY, SHIFTED = "2026-01-08", "2026-01-09"


def shop_rows(day: str, rows: int, seed: int, burst: float = 0.0) -> pd.DataFrame:
    return shop_day(day, rows, seed, index=len(DAYS), burst=burst).drop(columns=["order_id", TARGET])


def at(day: str, minutes: float) -> dt.datetime:
    """``minutes`` after the start of ``day`` in Berlin, in UTC."""
    return local_time(day, "00:00", ZONE) + dt.timedelta(minutes=minutes)


@dataclass
class Sent:
    """A request as its client saw it: its id, how many rows, the status and the predictions."""

    request_id: str
    rows: int
    status: int
    predictions: list | None


def send_day(client, setclock: SetClock, rows: pd.DataFrame, day: str, prefix: str, rng) -> list[Sent]:
    """The rows as requests of 1-5 rows spread over ``day`` in Berlin (the server's clock set to each
    request's minute), asking for probabilities."""
    sent: list[Sent] = []
    start = 0
    while start < len(rows):
        size = min(int(rng.integers(1, 6)), len(rows) - start)
        setclock.moment = at(day, 1440 * start / len(rows))
        request_id = f"{prefix}-{len(sent):04d}"
        response = client.post(
            f"/v1/models/{MODEL}/predict?proba=true",
            content=rows.iloc[start : start + size].to_json(orient="records"),
            headers={"Content-Type": "application/json", "X-Request-ID": request_id},
        )
        sent.append(Sent(request_id, size, response.status_code, response.json().get("predictions")))
        start += size
    return sent


def materialize_served(platform: Platform, day: str, asset: str = "served") -> dg.ExecuteInProcessResult:
    return dg.materialize(
        BUILT.definitions,
        selection=f"key:shop/{asset}",
        partition_key=day,
        instance=platform.instance,
        resources=platform.resources,
        raise_on_error=False,
    )


def metadata_of(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.fixture(scope="module")
def served_platform(tmp_path_factory) -> Platform:
    root = tmp_path_factory.mktemp("served")
    with dg.instance_for_test() as instance:
        platform = Platform(root, root / "landing", root / "model_store", root / "assets", instance)
        write_days(platform.landing / "shop", DAYS, shop_day, rows=400)
        trained = ingest_and_train(platform, BUILT)
        assert trained.success, step_errors(trained)
        yield platform


@dataclass
class Logged:
    """The traffic the log holds: each day's requests, and the true label of each ordinary row."""

    version: str
    ordinary: list[Sent]
    shifted: list[Sent]
    refused: list[Sent]
    truth: pd.DataFrame  # request_id, row, churned (None where the outcome never comes)


@pytest.fixture(scope="module")
def logged(served_platform: Platform) -> Logged:
    """A day of ordinary traffic (a burst of missing distances, and no outcome for those rows), and
    a day whose prices went up eightfold with a third of its requests sending prices as text."""
    platform = served_platform
    rng = np.random.default_rng(7)
    day = shop_day(ORDINARY, 600, 1, index=len(DAYS), burst=0.3)
    shifted_rows = shop_rows(SHIFTED, 600, 2)
    shifted_rows["price"] = shifted_rows["price"] * 8
    text_prices = shop_rows(SHIFTED, 300, 3).astype({"price": object})
    text_prices["price"] = "call us"
    setclock = SetClock(at(ORDINARY, 0))
    with serving_in_process(platform.store_dir, LOG, setclock) as client:
        ordinary = send_day(client, setclock, day.drop(columns=["order_id", TARGET]), ORDINARY, "a", rng)
        shifted = send_day(client, setclock, shifted_rows, SHIFTED, "b", rng)
        refused = send_day(client, setclock, text_prices, SHIFTED, "c", rng)
    assert all(s.status == 422 for s in refused) and all(s.status == 200 for s in ordinary + shifted)
    ids = [(s.request_id, row) for s in ordinary for row in range(s.rows)]
    truth = pd.DataFrame(ids, columns=["request_id", "row"]).assign(churned=day[TARGET].to_numpy())
    version = platform.store.production(MODEL).version
    return Logged(version, ordinary, shifted, refused, truth)


def test_a_day_of_traffic_and_a_day_shifted(served_platform: Platform, logged: Logged):
    platform = served_platform
    ordinary, shifted, refused = logged.ordinary, logged.shifted, logged.refused
    result = materialize_served(platform, ORDINARY)
    assert result.success, step_errors(result)
    metadata = metadata_of(result)
    assert metadata["Requests"] == len(ordinary) and metadata["Rows"] == 600
    assert metadata["Refused rows"] == 0 and metadata["Rows meeting the signature"] == 1.0
    day = result.output_for_node("shop__served")
    latencies = day.groupby("request_id")["latency_ms"].first().to_numpy()  # the server's, per request
    assert len(latencies) == len(ordinary) and (latencies > 0).all()
    assert metadata["Latency p50 ms"] == pytest.approx(float(np.quantile(latencies, 0.5)))
    assert metadata["Versions"].records[0].data == {
        "Version": logged.version,
        "Requests": len(ordinary),
        "Rows": 600,
        "p50 ms": pytest.approx(float(np.median(latencies))),
    }
    assert check_results(result) == {"served_rows_match_signature": True, "no_feature_drift": True}
    assert set(day["request_id"]) == {s.request_id for s in ordinary}
    assert day["distance"].isna().mean() > 0.2  # the burst of missing values, as the model saw it
    received = pd.DataFrame(
        [(s.request_id, row, p) for s in ordinary for row, p in enumerate(s.predictions)],
        columns=["request_id", "row", "received"],
    )
    both = day.merge(received, on=["request_id", "row"])
    assert len(both) == 600 and (both["prediction"] == both["received"]).all()  # what the clients got

    result = materialize_served(platform, SHIFTED)
    assert result.success, step_errors(result)
    metadata = metadata_of(result)
    assert metadata["Requests"] == len(shifted) + len(refused) and metadata["Rows"] == 900
    assert metadata["Refused rows"] == 300 and metadata["Rows meeting the signature"] == pytest.approx(600 / 900)
    assert check_results(result) == {"served_rows_match_signature": False, "no_feature_drift": False}
    descriptions = check_descriptions(result)
    assert descriptions["served_rows_match_signature"].startswith("66.67% of 900 served row(s) met the signature")
    assert "price" in descriptions["served_rows_match_signature"]
    assert f"drift against the training data of {logged.version}" in descriptions["no_feature_drift"]
    assert "price" in descriptions["no_feature_drift"].split(": ", 1)[1]
    # SHIFTED's first request, at midnight in Berlin, came at 23:00 UTC on ORDINARY: the server logged
    # it in SHIFTED, the pipeline's day.
    assert at(SHIFTED, 0).date().isoformat() == ORDINARY
    assert shifted[0].request_id in set(result.output_for_node("shop__served")["request_id"])


YESTERDAY, TODAY = "2026-01-20", "2026-01-21"  # days of Berlin no other test logs


def test_the_sensor_reads_each_ended_day_once_and_again_for_a_late_part(served_platform: Platform, monkeypatch):
    """Yesterday and today in Berlin, on the platform's clock fixed just after midnight: yesterday is
    read once its grace minutes have passed (00:05 in Berlin, still yesterday in UTC), and again when
    a late part of it arrives; today waits until it has ended."""
    platform = served_platform
    (sensor,) = [s for s in BUILT.defs.sensors if s.name == "shop_served_sensor"]

    def tick(cursor, berlin_time: str):
        monkeypatch.setenv(clock.ENV_VAR, local_time(TODAY, berlin_time, ZONE).isoformat())
        context = dg.build_sensor_context(
            instance=platform.instance, cursor=cursor, resources={"model_store": platform.store}
        )
        result = sensor(context)
        return [r.partition_key for r in result.run_requests or []], result

    def answer_one(moment: dt.datetime, seed: int) -> None:
        with serving_in_process(platform.store_dir, LOG, SetClock(moment)) as client:
            body = shop_rows(TODAY, 1, seed).to_json(orient="records")
            response = client.post(f"/v1/models/{MODEL}/predict", content=body)
            assert response.status_code == 200, response.text

    answer_one(at(YESTERDAY, 600), 9)
    answer_one(at(TODAY, 0), 10)
    early, result = tick(None, "00:04:59")
    assert YESTERDAY not in early and TODAY not in early  # 23:04:59 UTC: its grace has not passed
    first, result = tick(result.cursor, "00:05")
    assert YESTERDAY in first and TODAY not in first
    again, result = tick(result.cursor, "00:30")
    assert again == []
    answer_one(at(YESTERDAY, 1430), 11)  # a late part of a day already read
    late, result = tick(result.cursor, "00:40")
    assert late == [YESTERDAY]
    assert result.run_requests[0].run_key.startswith(f"served:{YESTERDAY}:")


# -- outcomes and live metrics ------------------------------------------------------------------
ARRIVALS = ["2026-01-09", "2026-01-10", "2026-01-11"]


def write_outcomes(platform: Platform, day: str, frame: pd.DataFrame) -> None:
    folder = platform.landing / "shop_outcomes"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / f"{day}.parquet", index=False)


def as_file(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Outcomes as the CRM exports them: its own name for the id, the label, one more column."""
    return outcomes.rename(columns={"request_id": "order_ref"}).assign(source="crm")


def predicted(logged: Logged) -> pd.DataFrame:
    """What the server answered on each ordinary row."""
    return pd.DataFrame(
        [(s.request_id, row, p) for s in logged.ordinary for row, p in enumerate(s.predictions)],
        columns=["request_id", "row", "prediction"],
    )


def test_outcomes_arriving_over_three_days_fill_live_metrics_day_by_day(served_platform: Platform, logged: Logged):
    """A third of the outcomes a day, for three days (the rows of the burst never get one): the
    labelled share grows, and the live accuracy is scikit-learn's on the rows labelled so far."""
    from sklearn.metrics import accuracy_score

    platform = served_platform
    assert materialize_served(platform, ORDINARY).success
    coming = logged.truth.dropna(subset=[TARGET]).sample(frac=1.0, random_state=0)
    assert len(coming) < 600  # a burst of rows without outcomes
    thirds = [coming.iloc[part] for part in np.array_split(np.arange(len(coming)), 3)]
    for number, (arrival, outcomes) in enumerate(zip(ARRIVALS, thirds), start=1):
        write_outcomes(platform, arrival, as_file(outcomes))
        ingested = materialize_served(platform, arrival, "outcomes")
        assert ingested.success, step_errors(ingested)
        assert check_results(ingested) == dict.fromkeys(
            ["outcome_ids_known", "outcome_ids_unique", "outcome_labels_match_target"], True
        )
        # What the late-label sensor reads back: the day these outcomes are about.
        assert OutcomesRecord.from_metadata(metadata_of(ingested)).days_labelled == (ORDINARY,)
        live = materialize_served(platform, ORDINARY, "live_metrics")
        assert live.success, step_errors(live)
        metadata = metadata_of(live)
        so_far = pd.concat(thirds[:number]).merge(predicted(logged), on=["request_id", "row"])
        assert metadata["Labelled rows"] == len(so_far) and metadata["Answered rows"] == 600
        assert metadata["Labelled share"] == pytest.approx(len(so_far) / 600)
        accuracy = accuracy_score(so_far[TARGET], so_far["prediction"])
        assert metadata["Live accuracy"] == pytest.approx(accuracy)
        delays = np.repeat(np.arange(1, number + 1), [len(t) for t in thirds[:number]])
        assert metadata["Median label delay (days)"] == pytest.approx(float(np.median(delays)))
        # What the decay sensor and ml-platform monitor read back, written by the asset itself.
        read_back = LiveMetricsRecord.from_metadata(metadata)
        assert (read_back.labelled_rows, read_back.score("accuracy")) == (len(so_far), pytest.approx(accuracy))
        (row,) = metadata["By version"].records
        assert row.data["Version"] == logged.version
        assert row.data["accuracy low"] <= accuracy <= row.data["accuracy high"]


def test_bad_outcome_files_get_specific_errors_and_change_nothing(served_platform: Platform, logged: Logged):
    platform = served_platform
    assert materialize_served(platform, ORDINARY).success
    before = metadata_of(materialize_served(platform, ORDINARY, "live_metrics"))
    good = as_file(logged.truth.dropna(subset=[TARGET]).head(8))
    unknown = pd.concat([good, good.head(3).assign(order_ref=["zz-1", "zz-2", "zz-3"])], ignore_index=True)
    wrong_kind = good.assign(**{TARGET: ["yes", "no", "maybe", "yes", "no", "no", "maybe", "yes"]})
    repeated = pd.concat([good, good.head(2)], ignore_index=True)
    cases = {
        "2026-01-12": (unknown, "outcome_ids_known", "3 of 11 outcome(s) name no prediction in the log"),
        "2026-01-13": (wrong_kind, "outcome_labels_match_target", "2 label(s) are not classes of the model"),
        "2026-01-14": (
            repeated,
            "outcome_ids_unique",
            "2 prediction(s) have more than one outcome in the file ('a-0000 row ",
        ),
    }
    for day, (frame, check, says) in cases.items():
        write_outcomes(platform, day, frame)
        result = materialize_served(platform, day, "outcomes")
        assert not result.success and says in step_errors(result), step_errors(result)
        assert check_results(result)[check] is False and says in check_descriptions(result)[check]
        assert not result.get_asset_materialization_events()  # nothing stored
    write_outcomes(platform, "2026-01-15", good.drop(columns=["order_ref"]))
    result = materialize_served(platform, "2026-01-15", "outcomes")
    assert "has no column 'order_ref'" in step_errors(result)
    after = metadata_of(materialize_served(platform, ORDINARY, "live_metrics"))
    assert after["Labelled rows"] == before["Labelled rows"]


FEEDBACK_DAY = "2026-01-16"  # labels SHIFTED: outside the window of ORDINARY's live metrics


def test_the_feedback_sensor_ingests_files_and_rescores_the_days_they_label(served_platform: Platform, logged):
    platform = served_platform
    (sensor,) = [s for s in BUILT.defs.sensors if s.name == "shop_feedback_sensor"]
    labels = [(s.request_id, row, p) for s in logged.shifted[:20] for row, p in enumerate(s.predictions)]
    write_outcomes(platform, FEEDBACK_DAY, as_file(pd.DataFrame(labels, columns=["request_id", "row", TARGET])))

    def tick(cursor):
        context = dg.build_sensor_context(
            instance=platform.instance, cursor=cursor, resources={"landing_zone": platform.resources["landing_zone"]}
        )
        return sensor(context)

    first = tick(None)
    files = [r for r in first.run_requests if r.run_key.startswith("outcomes:")]
    assert FEEDBACK_DAY in {r.partition_key for r in files}
    assert all(r.asset_selection == [dg.AssetKey(["shop", "outcomes"])] for r in files)
    ingested = materialize_served(platform, FEEDBACK_DAY, "outcomes")
    assert ingested.success, step_errors(ingested)
    second = tick(first.cursor)
    rescored = [r for r in second.run_requests if r.run_key.startswith("live:")]
    assert SHIFTED in {r.partition_key for r in rescored}
    assert all(r.asset_selection == [dg.AssetKey(["shop", "live_metrics"])] for r in rescored)
    assert not tick(second.cursor).run_requests


# -- retraining on decay ------------------------------------------------------------------------
DECAYED = ["2026-01-10", "2026-01-11"]
DECAY_OUTCOMES = "2026-01-17"  # the outcomes of DECAYED arrive on a day of their own


def test_live_accuracy_below_the_gate_for_sustained_days_retrains_and_says_why(
    served_platform: Platform, logged: Logged, webhook
):
    """Two days on which the world turned (every outcome is the opposite of what the shop's rule
    says): live accuracy far under the gate's min_accuracy 0.6 on both, each on more than
    min_outcomes labels. The decay sensor asks for one retraining run of the newest ingested day
    and sends the numbers; the run retrains; the next tick asks for nothing more."""
    from ml_platform.resources.notifier import Notifier

    platform = served_platform
    rng = np.random.default_rng(11)
    outcomes = []
    setclock = SetClock(at(DECAYED[0], 0))
    with serving_in_process(platform.store_dir, LOG, setclock) as client:
        for number, day in enumerate(DECAYED):
            frame = shop_day(day, 400, 20 + number, index=len(DAYS))
            sent = send_day(client, setclock, frame.drop(columns=["order_id", TARGET]), day, f"d{number}", rng)
            assert all(s.status == 200 for s in sent)
            ids = [(s.request_id, row) for s in sent for row in range(s.rows)]
            turned = np.where(frame[TARGET].to_numpy() == "yes", "no", "yes")
            outcomes.append(pd.DataFrame(ids, columns=["request_id", "row"]).assign(**{TARGET: turned}))
    write_outcomes(platform, DECAY_OUTCOMES, as_file(pd.concat(outcomes, ignore_index=True)))
    ingested = materialize_served(platform, DECAY_OUTCOMES, "outcomes")
    assert ingested.success, step_errors(ingested)
    live = {}
    for day in DECAYED:
        assert materialize_served(platform, day).success
        result = materialize_served(platform, day, "live_metrics")
        assert result.success, step_errors(result)
        live[day] = metadata_of(result)["Live accuracy"]
    assert all(value < 0.6 for value in live.values()), live

    (sensor,) = [s for s in BUILT.defs.sensors if s.name == "shop_decay_sensor"]
    notifier = Notifier(webhook_url=webhook.url, timeout_s=5.0)

    def tick(cursor):
        context = dg.build_sensor_context(
            instance=platform.instance, cursor=cursor, resources={"model_store": platform.store, "notifier": notifier}
        )
        return sensor(context), context.cursor

    # A webhook that fails does not stop the retraining (the tick warns instead).
    failing = Notifier(webhook_url=f"{webhook.url}/fail", timeout_s=5.0)
    failed_context = dg.build_sensor_context(
        instance=platform.instance, resources={"model_store": platform.store, "notifier": failing}
    )
    assert isinstance(sensor(failed_context), dg.RunRequest) and webhook.paths[-1].endswith("/fail")
    request, cursor = tick(None)
    assert isinstance(request, dg.RunRequest), request
    assert request.run_key == f"decay:{DECAYED[0]}" and request.partition_key == DAYS[-1]
    message = webhook.bodies[-1]
    text = message["text"]
    assert "live accuracy decayed" in message["subject"] and f"{DECAYED[0]} to {DECAYED[-1]}" in text
    for day, value in live.items():
        assert f"{value:.4f} on {day}" in text
    assert "worse than the gate's min_accuracy 0.6000" in text
    retrained = dg.materialize(
        BUILT.definitions,
        selection=request.asset_selection,
        partition_key=request.partition_key,
        instance=platform.instance,
        resources=platform.resources,
        tags=request.tags,
        raise_on_error=False,
    )
    assert retrained.success, step_errors(retrained)
    again, _ = tick(cursor)
    assert isinstance(again, dg.SkipReason) and "already retrained" in again.skip_message
