"""The loop back, end to end, fed by a real `ml-platform serve`: orders sent over HTTP (the order id
as X-Request-ID) to a server on ML_PLATFORM_CLOCK's day, which writes its own prediction log; then

- through `dagster asset materialize` and `ml-platform monitor`: the outcomes that arrive the day
  after become outcomes[day], the day's log served[day], live_metrics[day] joins them, and the live
  accuracy is scikit-learn's accuracy_score of the labels against what the server answered;
- under a real daemon (`dagster dev`, its sensors turned on): outcomes opposite to what the model
  learned make the served, feedback and decay sensors launch served, outcomes and live_metrics,
  then a retraining run, and every run succeeds.

The model is trained once (in-process, into the project's own DAGSTER_HOME) and the server runs
once; each test works on its own copy of that project, so neither sees what the other did.
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score

from ml_platform_tests.support.constants import DAYS, END_DAY
from ml_platform_tests.support.dagster_dev import dagster_dev_on, start_sensors, wait_for_runs
from ml_platform_tests.support.materialize_cli import materialize
from ml_platform_tests.support.pipelines import built_from, ingest_and_train
from ml_platform_tests.support.platform import Platform, cli_json, project_env, project_vars
from ml_platform_tests.support.realistic import FEATURES, TARGET, shop_day, write_days
from ml_platform_tests.support.results import step_errors
from ml_platform_tests.support.serve_process import TOKEN, start_server

pytestmark = pytest.mark.cli

PIPELINES = f"""\
pipelines:
  - name: shop
    target: {TARGET}
    features: [{", ".join(FEATURES)}]
    window_days: 2
    partitions: {{start: "{DAYS[0]}"}}
    model: {{estimator: random_forest, params: {{n_estimators: 30}}}}
    gate: {{min_accuracy: 0.6}}
    monitoring: {{grace_minutes: 0, sustained_days: 1}}
    feedback: {{landing: shop_outcomes, id: order_id}}
"""
TRAINED, SERVED, ARRIVED = END_DAY, "2026-01-08", "2026-01-09"
ORDERS = 300


@dataclass
class Served:
    """A trained project whose server answered a day of orders, and what it answered."""

    root: Path
    orders: pd.DataFrame  # order_id, the features, the true label
    answered: pd.DataFrame  # order_id, prediction (as the client received it)

    def copy(self, tmp_path: Path) -> tuple[Path, dict[str, str]]:
        """This project copied under ``tmp_path``, and its environment."""
        root = tmp_path / "project"
        shutil.copytree(self.root, root)
        return root, {**project_vars(root), "ML_PLATFORM_PIPELINES": str(root / "pipelines.yaml")}

    def labelled(self, labels: pd.Series) -> pd.DataFrame:
        """An outcome file's rows (order_id, label, one more column) for the orders with a label."""
        outcomes = self.orders[["order_id"]].assign(**{TARGET: labels}).dropna()
        return outcomes.assign(exported_by="crm")


def write_outcomes(root: Path, frame: pd.DataFrame) -> None:
    (root / "landing" / "shop_outcomes").mkdir(parents=True, exist_ok=True)
    frame.to_parquet(root / "landing" / "shop_outcomes" / f"{ARRIVED}.parquet", index=False)


def live_accuracy(outcomes: pd.DataFrame, answered: pd.DataFrame) -> float:
    """scikit-learn's accuracy of the labels against what the server answered, on the labelled orders."""
    joined = outcomes.merge(answered, on="order_id")
    assert len(joined) == len(outcomes)
    return float(accuracy_score(joined[TARGET], joined["prediction"]))


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    """The shop model trained and deployed; `ml-platform serve` on SERVED (ML_PLATFORM_CLOCK) answers
    one request per order, a third of them with probabilities, and writes its log when stopped."""
    root = tmp_path_factory.mktemp("feedback_loop")
    env = project_env(root)
    (root / "pipelines.yaml").write_text(PIPELINES)
    write_days(root / "landing" / "shop", DAYS, shop_day, rows=300)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        platform = Platform(root, root / "landing", root / "model_store", root / "assets", instance)
        trained = ingest_and_train(platform, built_from(PIPELINES))
        assert trained.success, step_errors(trained)

    orders = shop_day(SERVED, ORDERS, 5, index=len(DAYS), burst=0.2)
    serve_env = {
        **env,
        "ML_PLATFORM_PIPELINES": str(root / "pipelines.yaml"),
        "ML_PLATFORM_SERVE_TOKEN": TOKEN,
        "ML_PLATFORM_CLOCK": f"{SERVED}T12:00:00+00:00",
    }
    server = start_server(serve_env, root / "serve.log")
    answered = []
    try:
        rows = json.loads(orders[FEATURES].to_json(orient="records"))  # missing distances as null
        for number, (order_id, row) in enumerate(zip(orders["order_id"], rows, strict=True)):
            query = "?proba=true" if number % 3 == 0 else ""
            status, answer, _ = server.predict([row], model="shop", query=query, headers={"X-Request-ID": order_id})
            assert status == 200 and answer["request_id"] == order_id, answer
            answered.append((order_id, answer["predictions"][0]))
    finally:
        server.stop()  # SIGTERM: the log is written before the process ends
    assert [p.name for p in (root / "model_store" / "shop" / "prediction_log").iterdir()] == [SERVED]
    return Served(root, orders, pd.DataFrame(answered, columns=["order_id", "prediction"]))


def test_served_outcomes_and_live_metrics_through_the_cli(served: Served, tmp_path: Path):
    root, env = served.copy(tmp_path)
    outcomes = served.labelled(served.orders[TARGET])  # the rows of the burst never get one
    assert 0 < len(outcomes) < ORDERS
    write_outcomes(root, outcomes)
    materialize(env, "--select", "key:shop/outcomes", "--partition", ARRIVED)
    materialize(env, "--select", "key:shop/served,key:shop/live_metrics", "--partition", SERVED)

    (day,) = cli_json(env, "monitor", "--model", "shop", "--json")
    assert day["day"] == SERVED and day["requests"] == ORDERS and day["rows"] == ORDERS
    assert day["live_metric_name"] == "accuracy"
    assert day["live_metric"] == pytest.approx(live_accuracy(outcomes, served.answered))
    assert day["labelled_share"] == pytest.approx(len(outcomes) / ORDERS)


def test_the_daemon_runs_served_feedback_and_decay_to_a_retraining(served: Served, tmp_path: Path):
    """Every outcome the opposite of the true label: the live accuracy falls under the gate's 0.6 on
    SERVED, and the decay sensor (sustained_days 1) retrains on the newest ingested day."""
    root, env = served.copy(tmp_path)
    turned = served.orders[TARGET].map({"yes": "no", "no": "yes"})
    outcomes = served.labelled(turned)
    write_outcomes(root, outcomes)
    sensors = ["shop_served_sensor", "shop_feedback_sensor", "shop_decay_sensor"]
    with dagster_dev_on({**env, "ML_PLATFORM_SENSOR_INTERVAL_S": "2"}, tmp_path) as (url, _, _):
        start_sensors(url, sensors)
        (served_run,) = wait_for_runs(url, "served", 1)
        (outcomes_run,) = wait_for_runs(url, "feedback", 1)
        (rescored,) = wait_for_runs(url, "late labels", 1)
        (retraining,) = wait_for_runs(url, "decay", 1)
    partitions = [
        {t["key"]: t["value"] for t in run["tags"]}["dagster/partition"]
        for run in (served_run, outcomes_run, rescored, retraining)
    ]
    assert partitions == [SERVED, ARRIVED, SERVED, TRAINED]

    expected = live_accuracy(outcomes, served.answered)
    assert expected < 0.6
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        live = instance.get_latest_materialization_event(dg.AssetKey(["shop", "live_metrics"]))
        retrained = instance.get_latest_materialization_event(dg.AssetKey(["shop", "deployed_model"]))
    metadata = {k: v.value for k, v in live.asset_materialization.metadata.items()}
    assert metadata["Live accuracy"] == pytest.approx(expected) and metadata["Labelled rows"] == len(outcomes)
    assert retrained.run_id == retraining["runId"]
