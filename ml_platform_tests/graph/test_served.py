"""served[day]: a day of the prediction log as an asset, on a model of a year-like shop table (a
400-value product column, bursts of missing distances), in a time zone that is not UTC.

The log is written by the server's own writer (PredictionLog) with rows the model really checked
and predicted, as `ml-platform serve` does; a request the signature check refuses is logged as
the server logs it. One day of ordinary traffic passes both checks; on a day whose prices went up
eightfold and a third of whose requests send prices as text, served shows the drift of `price`
against the training data and fails served_rows_match_signature with the refusal's reason. The
served sensor reads each ended day once, and a day again when a late part of it arrives.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform.errors import SignatureError
from ml_platform.serving import CheckedModel
from ml_platform.serving.prediction_log import Entry, LogSettings, PredictionLog
from ml_platform_tests.support.constants import DAYS
from ml_platform_tests.support.pipelines import built_from, ingest_and_train
from ml_platform_tests.support.platform import Platform
from ml_platform_tests.support.realistic import FEATURES, TARGET, shop_day, write_days
from ml_platform_tests.support.results import check_descriptions, check_results, step_errors

ZONE = "Europe/Berlin"
YAML = f"""
pipelines:
  - name: shop
    landing: shop
    target: {TARGET}
    model_name: shop_churn
    features: [{", ".join(FEATURES)}]
    partitions: {{start: "{DAYS[0]}"}}
    schedule: {{timezone: {ZONE}}}
    model: {{estimator: random_forest, params: {{n_estimators: 30}}}}
    monitoring: {{grace_minutes: 5}}
"""
BUILT = built_from(YAML)
ORDINARY, SHIFTED = "2026-01-08", "2026-01-09"


def shop_rows(day: str, rows: int, seed: int, burst: float = 0.0) -> pd.DataFrame:
    return shop_day(day, rows, seed, index=len(DAYS), burst=burst).drop(columns=["order_id", TARGET])


def at(day: str, minutes: float) -> dt.datetime:
    """``minutes`` after the start of ``day`` in Berlin, in UTC."""
    start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), ZoneInfo(ZONE))
    return (start + dt.timedelta(minutes=minutes)).astimezone(dt.UTC)


def requests_of(model: CheckedModel, rows: pd.DataFrame, day: str, prefix: str, rng) -> list[Entry]:
    """The rows as requests of 1-5 rows spread over the day, each checked and predicted (or refused)
    as the server does."""
    entries, start = [], 0
    while start < len(rows):
        size = int(rng.integers(1, 6))
        chunk = rows.iloc[start : start + size]
        request_id = f"{prefix}-{len(entries):04d}"
        logged_at = at(day, 1440 * start / len(rows))
        latency = float(rng.gamma(2.0, 2.0))
        try:
            frame, _ = model.check(chunk)
        except SignatureError as exc:
            refusal = Entry.refusal(
                model.version.model_name, model.version.version, request_id, latency, size, str(exc)
            )
            refusal.logged_at = logged_at
            entries.append(refusal)
        else:
            predictions, probabilities = model.predict_checked(frame, proba=True)
            entries.append(
                Entry(
                    model.version.model_name,
                    model.version.version,
                    request_id,
                    logged_at,
                    latency,
                    frame,
                    predictions,
                    probabilities,
                )
            )
        start += size
    return entries


def write_log(platform: Platform, entries: list[Entry]) -> None:
    settings = {"shop_churn": LogSettings(timezone=ZONE)}
    log = PredictionLog(platform.store.write_bytes, settings, lambda *a: None, flush_s=60)
    for entry in entries:
        log.record(entry)
    log.close()


def materialize_served(platform: Platform, day: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        BUILT.definitions,
        selection="key:shop/served",
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


def test_a_day_of_traffic_and_a_day_shifted(served_platform: Platform):
    platform = served_platform
    sklearn_model, version = platform.store.load("shop_churn")
    model = CheckedModel(sklearn_model, version)
    rng = np.random.default_rng(7)
    ordinary = requests_of(model, shop_rows(ORDINARY, 600, 1, burst=0.3), ORDINARY, "a", rng)
    shifted_rows = shop_rows(SHIFTED, 600, 2)
    shifted_rows["price"] = shifted_rows["price"] * 8
    shifted = requests_of(model, shifted_rows, SHIFTED, "b", rng)
    text_prices = shop_rows(SHIFTED, 300, 3).astype({"price": object})
    text_prices["price"] = "call us"
    refused = requests_of(model, text_prices, SHIFTED, "c", rng)
    assert all(e.refused for e in refused) and not any(e.refused for e in ordinary + shifted)
    # The first request of SHIFTED, at midnight in Berlin, is 23:00 UTC on ORDINARY: it belongs to
    # SHIFTED, the pipeline's day.
    assert shifted[0].logged_at.date().isoformat() == ORDINARY
    write_log(platform, ordinary + shifted + refused)

    result = materialize_served(platform, ORDINARY)
    assert result.success, step_errors(result)
    metadata = metadata_of(result)
    assert metadata["Requests"] == len(ordinary) and metadata["Rows"] == 600
    assert metadata["Refused rows"] == 0 and metadata["Rows meeting the signature"] == 1.0
    latencies = np.array([e.latency_ms for e in ordinary])
    assert metadata["Latency p50 ms"] == pytest.approx(float(np.quantile(latencies, 0.5)))
    assert metadata["Versions"].records[0].data == {
        "Version": version.version,
        "Requests": len(ordinary),
        "Rows": 600,
        "p50 ms": pytest.approx(float(np.median(latencies))),
    }
    assert check_results(result) == {"served_rows_match_signature": True, "no_feature_drift": True}
    day = result.output_for_node("shop__served")
    assert set(day["request_id"]) == {e.request_id for e in ordinary}
    assert day["distance"].isna().mean() > 0.2  # the burst of missing values, as the model saw it

    result = materialize_served(platform, SHIFTED)
    assert result.success, step_errors(result)
    metadata = metadata_of(result)
    assert metadata["Requests"] == len(shifted) + len(refused) and metadata["Rows"] == 900
    assert metadata["Refused rows"] == 300 and metadata["Rows meeting the signature"] == pytest.approx(600 / 900)
    assert check_results(result) == {"served_rows_match_signature": False, "no_feature_drift": False}
    descriptions = check_descriptions(result)
    assert descriptions["served_rows_match_signature"].startswith("66.67% of 900 served row(s) met the signature")
    assert "price" in descriptions["served_rows_match_signature"]
    assert f"drift against the training data of {version.version}" in descriptions["no_feature_drift"]
    assert "price" in descriptions["no_feature_drift"].split(": ", 1)[1]


def test_the_sensor_reads_each_ended_day_once_and_again_for_a_late_part(served_platform: Platform):
    """Yesterday and today in Berlin: yesterday is read once, and again when a late part of it
    arrives; today waits until it has ended (and the grace minutes passed)."""
    platform = served_platform
    (sensor,) = [s for s in BUILT.defs.sensors if s.name == "shop_served_sensor"]
    today = dt.datetime.now(ZoneInfo(ZONE)).date()
    yesterday = (today - dt.timedelta(days=1)).isoformat()

    def tick(cursor):
        context = dg.build_sensor_context(
            instance=platform.instance, cursor=cursor, resources={"model_store": platform.store}
        )
        result = sensor(context)
        return result, result.cursor

    write_log(platform, [_one_request(platform, yesterday, 600), _one_request(platform, today.isoformat(), 0)])
    first, cursor = tick(None)
    assert yesterday in [r.partition_key for r in first.run_requests]
    assert today.isoformat() not in [r.partition_key for r in first.run_requests]
    again, cursor = tick(cursor)
    assert not again.run_requests
    write_log(platform, [_one_request(platform, yesterday, 700)])  # a late part of a day already read
    late, cursor = tick(cursor)
    assert [r.partition_key for r in late.run_requests] == [yesterday]
    assert late.run_requests[0].run_key.startswith(f"served:{yesterday}:")


def _one_request(platform: Platform, day: str, minute: float) -> Entry:
    sklearn_model, version = platform.store.load("shop_churn")
    model = CheckedModel(sklearn_model, version)
    frame, _ = model.check(shop_rows(day, 1, 9))
    predictions, probabilities = model.predict_checked(frame, proba=True)
    return Entry(
        "shop_churn", version.version, f"late-{minute}", at(day, minute), 1.0, frame, predictions, probabilities
    )
