"""The loop back through `dagster asset materialize` and `ml-platform monitor`: a day of the
prediction log (written by the server's own writer) becomes served[day]; the outcomes that arrive
the day after become outcomes[day]; live_metrics[day] reads them through its window of later days;
and `ml-platform monitor` prints the day's traffic with its live accuracy from the instance."""

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_platform.backends.local import LocalModelStore
from ml_platform.serving import load_production_model
from ml_platform.serving.prediction_log import Entry, LogSettings, PredictionLog
from ml_platform_tests.support.materialize_cli import materialize
from ml_platform_tests.support.platform import cli_json, project_env
from ml_platform_tests.support.realistic import FEATURES, TARGET, shop_day, write_days

pytestmark = pytest.mark.cli

PIPELINES = f"""\
pipelines:
  - name: shop
    target: {TARGET}
    features: [{", ".join(FEATURES)}]
    window_days: 1
    partitions: {{start: "2026-01-01"}}
    model: {{estimator: random_forest, params: {{n_estimators: 30}}}}
    gate: {{min_accuracy: 0.6}}
    monitoring: {{}}
    feedback: {{landing: shop_outcomes, id: order_id}}
"""
TRAINED, SERVED, ARRIVED = "2026-01-07", "2026-01-08", "2026-01-09"


def test_served_outcomes_and_live_metrics_through_the_cli(tmp_path: Path):
    env = project_env(tmp_path)
    (tmp_path / "pipelines.yaml").write_text(PIPELINES)
    env["ML_PLATFORM_PIPELINES"] = str(tmp_path / "pipelines.yaml")
    landing = Path(env["ML_PLATFORM_LANDING_DIR"])
    write_days(landing / "shop", [TRAINED], shop_day, rows=1500)
    materialize(env, "--select", "key:shop/raw_data+", "--partition", TRAINED)

    # A day of orders, one request per order (the order id as X-Request-ID), as the server logs them.
    store = LocalModelStore(root=env["ML_PLATFORM_MODEL_STORE_DIR"])
    model, version = load_production_model("shop", store_dir=env["ML_PLATFORM_MODEL_STORE_DIR"])
    orders = shop_day(SERVED, 500, 5, index=8, burst=0.2)
    checked, _ = model.check(orders[FEATURES])
    predictions, probabilities = model.predict_checked(checked, proba=True)  # one call, handed out below
    log = PredictionLog(store.write_bytes, {"shop": LogSettings()}, lambda *a: None, flush_s=60)
    start = dt.datetime.fromisoformat(f"{SERVED}T00:00:00+00:00")
    for number, order_id in enumerate(orders["order_id"]):
        at = start + dt.timedelta(minutes=2.5 * number)
        one = slice(number, number + 1)
        frame, proba = checked.iloc[one].reset_index(drop=True), probabilities.iloc[one].reset_index(drop=True)
        log.record(Entry("shop", version.version, order_id, at, 2.0, frame, predictions[one], proba))
    log.close()

    # The outcomes the CRM exports the day after: the rows of the burst never get one.
    outcomes = orders[["order_id", TARGET]].dropna().assign(exported_by="crm")
    (landing / "shop_outcomes").mkdir()
    outcomes.to_parquet(landing / "shop_outcomes" / f"{ARRIVED}.parquet", index=False)
    materialize(env, "--select", "key:shop/outcomes", "--partition", ARRIVED)
    materialize(env, "--select", "key:shop/served,key:shop/live_metrics", "--partition", SERVED)

    (day,) = cli_json(env, "monitor", "--model", "shop", "--json")
    logged = pd.concat([pd.read_parquet(p) for p in sorted(Path(store.uri("shop/prediction_log")).glob("*/*.parquet"))])
    joined = outcomes.merge(logged, left_on="order_id", right_on="request_id")
    assert day["day"] == SERVED and day["requests"] == 500 and day["rows"] == 500
    assert day["live_metric_name"] == "accuracy"
    assert day["live_metric"] == pytest.approx(float(np.mean(joined[TARGET] == joined["prediction"])))
    assert day["labelled_share"] == pytest.approx(len(outcomes) / 500) and len(outcomes) < 500
