"""Production earned on live traffic, end to end: versions deployed by the pipeline, a real
`ml-platform serve` shadowing the candidate while it answers orders over HTTP, the outcomes that
arrive the day after, `dagster asset materialize` of served, outcomes and rollout[day], and the
rollout sensor deciding on that evidence (under a real daemon once), read back through
`ml-platform rollout --json` and the pointers' history.

The versions, trained once on a year-like shop table (400 product categories, bursts of missing
distances, labels missing on those rows, class imbalance):

- GOOD: trained on correct days;
- BUGGED: trained on days where an upstream bug silently inverted the ``member`` flag. Its own test
  split has the same bug, so it passes the offline gate (and beats GOOD there), yet on correct live
  rows it is worse: the abort case, as a real upstream bug does;
- OTHER: correct days, other parameters (the label-free estimate's pair).

Each test copies the trained project and sets the pointers it starts from; the decisions are the
sensor's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from ml_platform.backends.local import LocalModelStore
from ml_platform.resources.notifier import Notifier
from ml_platform.version_record import VersionRecord
from ml_platform_tests.support.constants import BIN, DAYS, ROOT
from ml_platform_tests.support.dagster_dev import dagster_dev_on, start_sensors, wait_for_runs
from ml_platform_tests.support.materialize_cli import materialize
from ml_platform_tests.support.pipelines import built_from, ingest_and_train
from ml_platform_tests.support.platform import Platform, cli_json, project_env, project_vars
from ml_platform_tests.support.realistic import FEATURES, TARGET, shop_day, write_days
from ml_platform_tests.support.results import step_errors
from ml_platform_tests.support.rollout_models import BROKEN_PRODUCTS, broken_on_some_products
from ml_platform_tests.support.serve_process import TOKEN, start_server
from ml_platform_tests.support.servers import webhook  # noqa: F401 - a fixture

pytestmark = pytest.mark.cli

MODEL = "shop"
GOOD_MODEL = "{estimator: random_forest, params: {n_estimators: 40, max_depth: 8}}"
OTHER_MODEL = "{estimator: random_forest, params: {n_estimators: 80, max_depth: 12, min_samples_leaf: 3}}"
DAY_BEFORE, SERVED, ARRIVED = "2026-01-08", "2026-01-09", "2026-01-10"
# The platform's time while the evidence is judged: the day the outcomes arrived (ML_PLATFORM_CLOCK).
JUDGED = f"{ARRIVED}T12:00:00+00:00"
ORDERS = 300
ROLLBACK_ORDERS = 700


def pipelines(strategy: str, model: str = GOOD_MODEL) -> str:
    """The shop pipeline with a rollout of ``strategy``, its rules small enough for a day of orders."""
    return f"""\
pipelines:
  - name: shop
    target: {TARGET}
    features: [{", ".join(FEATURES)}]
    window_days: 2
    partitions: {{start: "{DAYS[0]}"}}
    model: {model}
    gate: {{min_accuracy: 0.6, max_regression: 0.05}}
    monitoring: {{grace_minutes: 0}}
    feedback: {{landing: shop_outcomes, id: order_id}}
    rollout:
      strategy: {strategy}
      promote_when: {{min_labelled: 200, min_days: 1}}
      abort_when: {{min_labelled: 100}}
      rollback: {{days: 1, min_labelled: 100, max_live_regression: 0.0, confidence: 0.9}}
"""


def inverted_member_day(day: str, rows: int, seed: int, index: int = 0, burst: float = 0.0) -> pd.DataFrame:
    """A shop day as an upstream bug delivers it: ``member`` inverted, nothing else changed."""
    frame = shop_day(day, rows, seed, index, burst)
    return frame.assign(member=~frame["member"].astype(bool))


@dataclass
class Trained:
    root: Path
    versions: dict[str, str]  # GOOD, BUGGED, OTHER -> version

    def copy(self, tmp_path: Path, strategy: str = "shadow") -> tuple[Path, dict[str, str], LocalModelStore]:
        root = tmp_path / "project"
        shutil.copytree(self.root, root)
        (root / "pipelines.yaml").write_text(pipelines(strategy))
        env = {**project_vars(root), "ML_PLATFORM_PIPELINES": str(root / "pipelines.yaml"), "ML_PLATFORM_CLOCK": JUDGED}
        return root, env, LocalModelStore(root=str(root / "model_store"))


def train(root: Path, instance, text: str, make) -> None:
    write_days(root / "landing" / MODEL, DAYS, make, rows=300)
    platform = Platform(root, root / "landing", root / "model_store", root / "assets", instance)
    result = ingest_and_train(platform, built_from(text))
    assert result.success, step_errors(result)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """GOOD deployed first (promoted: nothing to earn its place against); BUGGED then OTHER deployed
    under shadow: each becomes the candidate, production stays GOOD, OTHER replaces BUGGED."""
    root = tmp_path_factory.mktemp("rollout_loop")
    env = project_env(root)
    store = LocalModelStore(root=str(root / "model_store"))
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        train(root, instance, pipelines("shadow"), shop_day)
        good = store.production(MODEL).version
        train(root, instance, pipelines("shadow"), inverted_member_day)
        bugged = store.candidate(MODEL).version
        assert store.production(MODEL).version == good  # the gate passed; production did not move
        train(root, instance, pipelines("shadow", OTHER_MODEL), shop_day)
        other = store.candidate(MODEL)
    assert len({good, bugged, other.version}) == 3
    assert other.previous == bugged and f"replacing candidate {bugged}" in other.reason
    deployed = instance_metadata(env, "deployed_model")
    assert deployed["Candidate"] is True and deployed["Promoted"] is False
    return Trained(root, {"GOOD": good, "BUGGED": bugged, "OTHER": other.version})


def instance_metadata(env: dict[str, str], asset: str, partition: str | None = None) -> dict:
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        if partition is None:
            event = instance.get_latest_materialization_event(dg.AssetKey([MODEL, asset]))
        else:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey([MODEL, asset]), asset_partitions=[partition]), limit=1
            ).records
            event = records[0].event_log_entry
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def arrange(store: LocalModelStore, production: str, candidate: str | None) -> None:
    """The pointers a test starts from (as earlier deploys would have left them)."""
    if store.pointer(MODEL).version != production:
        store.promote(MODEL, production, reason="arranged by the test")
    if candidate is not None:
        store.promote(MODEL, candidate, reason="arranged by the test", role="candidate")
    elif store.candidate(MODEL) is not None:
        store.close_candidate(MODEL, "aborted", "arranged by the test")


def store_faulty(store: LocalModelStore, version: str) -> str:
    """``version`` behind a feature step that raises on two products' rows (about 5 % of orders), as
    a candidate with a new bug would: stored as a version of its own with the same record."""
    model, stored = store.load(MODEL, version)
    faulty = Pipeline([("bug", FunctionTransformer(broken_on_some_products, validate=False)), ("model", model)])
    return store.save_version(MODEL, faulty, VersionRecord.from_dict(stored.metadata)).version


def serve_orders(root: Path, env: dict[str, str], day: str, seed: int, count: int = ORDERS) -> pd.DataFrame:
    """A real `ml-platform serve` on ``day`` (ML_PLATFORM_CLOCK) answers one request per order from
    four clients at once (the order id as X-Request-ID); stopped by SIGTERM, it has written its log.
    The orders, as sent."""
    orders = shop_day(day, count, seed, index=len(DAYS) + 1, burst=0.15)
    serve_env = {
        **env,
        "ML_PLATFORM_SERVE_TOKEN": TOKEN,
        "ML_PLATFORM_CLOCK": f"{day}T12:00:00+00:00",
        "PYTHONPATH": str(ROOT),  # a faulty candidate's feature step lives in ml_platform_tests
    }
    server = start_server(serve_env, root / f"serve-{day}.log")

    def send(order: tuple[str, dict]) -> int:
        status, answer, _ = server.predict([order[1]], model=MODEL, headers={"X-Request-ID": order[0]})
        assert status == 200, answer
        return status

    try:
        rows = json.loads(orders[FEATURES].to_json(orient="records"))
        with ThreadPoolExecutor(4) as clients:
            assert len(list(clients.map(send, zip(orders["order_id"], rows, strict=True)))) == count
    finally:
        server.stop()
    return orders


def outcomes_arrive(root: Path, env: dict[str, str], orders: pd.DataFrame, day: str) -> None:
    """The labels of ``orders`` (the burst's rows never get one) land on ARRIVED; outcomes[ARRIVED],
    then served, live_metrics and rollout of ``day`` through `dagster asset materialize`."""
    folder = root / "landing" / "shop_outcomes"
    folder.mkdir(parents=True, exist_ok=True)
    labelled = orders[["order_id", TARGET]].dropna()
    path = folder / f"{ARRIVED}.parquet"
    if path.exists():  # outcomes of an earlier day arrived the same day
        labelled = pd.concat([pd.read_parquet(path), labelled], ignore_index=True)
    labelled.to_parquet(path, index=False)
    materialize(env, "--select", "key:shop/outcomes", "--partition", ARRIVED)
    evidence_of(env, day)


def evidence_of(env: dict[str, str], day: str) -> None:
    materialize(env, "--select", "key:shop/served,key:shop/live_metrics,key:shop/rollout", "--partition", day)


def sensor_tick(env: dict[str, str], strategy: str, notifier: Notifier, monkeypatch) -> str:
    """One tick of <name>_rollout_sensor on the project's instance, as the daemon would run it, at
    the platform time JUDGED."""
    sensor = built_from(pipelines(strategy)).sensor("rollout_sensor")
    monkeypatch.setenv("ML_PLATFORM_CLOCK", JUDGED)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        context = dg.build_sensor_context(
            instance=instance,
            resources={"model_store": LocalModelStore(root=env["ML_PLATFORM_MODEL_STORE_DIR"]), "notifier": notifier},
        )
        result = sensor(context)
    return result.skip_message if hasattr(result, "skip_message") else str(result)


def rollout_json(env: dict[str, str]) -> dict:
    return cli_json(env, "rollout", "--model", MODEL, "--json")


def test_a_better_candidate_is_promoted_on_live_outcomes(trained: Trained, tmp_path: Path, webhook, monkeypatch):
    """Production BUGGED (as if the bug had reached it), candidate GOOD shadowing it: on the day's
    outcomes GOOD is better, paired on the same orders, and the sensor promotes it."""
    root, env, store = trained.copy(tmp_path)
    arrange(store, production=trained.versions["BUGGED"], candidate=trained.versions["GOOD"])
    orders = serve_orders(root, env, SERVED, seed=11)
    outcomes_arrive(root, env, orders, SERVED)

    said = sensor_tick(env, "shadow", Notifier(webhook_url=webhook.url), monkeypatch)
    assert said.startswith(f"promoted candidate {trained.versions['GOOD']}"), said
    assert store.production(MODEL).version == trained.versions["GOOD"]
    assert store.candidate(MODEL) is None and store.pointer(MODEL, "candidate").closed == "promoted"
    (message,) = webhook.bodies
    assert "candidate promoted" in message["text"] and "accuracy" in message["text"]

    state = rollout_json(env)
    assert state["candidate"] is None and state["production"]["version"] == trained.versions["GOOD"]
    moves = [(m["role"], m["version"], m.get("closed")) for m in state["history"]]
    assert ("candidate", trained.versions["GOOD"], "promoted") in moves
    promoted = next(m for m in state["history"] if m["role"] == "production" and m["reason"].startswith("promoted"))
    assert promoted["actor"] == "rollout sensor" and "paired" in promoted["reason"]


def test_a_candidate_trained_on_a_silent_upstream_bug_is_aborted_by_the_daemon(
    trained: Trained, tmp_path: Path, webhook
):
    """Production GOOD, candidate BUGGED (it passed its offline gate). Under `dagster dev`, the
    served, feedback and rollout sensors turned on as a person would: the day is read, the outcomes
    ingested and the day re-scored, and the rollout sensor aborts BUGGED on the live evidence; the
    notification names the metric, the interval and the rows."""
    root, env, store = trained.copy(tmp_path)
    arrange(store, production=trained.versions["GOOD"], candidate=trained.versions["BUGGED"])
    orders = serve_orders(root, env, SERVED, seed=12)
    folder = root / "landing" / "shop_outcomes"
    folder.mkdir(parents=True)
    orders[["order_id", TARGET]].dropna().to_parquet(folder / f"{ARRIVED}.parquet", index=False)

    sensors = ["shop_served_sensor", "shop_feedback_sensor", "shop_rollout_sensor"]
    daemon_env = {**env, "ML_PLATFORM_SENSOR_INTERVAL_S": "2", "ML_PLATFORM_WEBHOOK_URL": webhook.url}
    with dagster_dev_on(daemon_env, tmp_path) as (url, _, _):
        start_sensors(url, sensors)
        wait_for_runs(url, "served", 1)
        wait_for_runs(url, "feedback", 1)
        wait_for_runs(url, "late labels", 1)
        deadline = time.monotonic() + 120
        while store.candidate(MODEL) is not None and time.monotonic() < deadline:
            time.sleep(1)
    closed = store.pointer(MODEL, "candidate")
    assert closed.closed == "aborted" and closed.version == trained.versions["BUGGED"], closed
    assert store.production(MODEL).version == trained.versions["GOOD"]  # production never moved
    assert "worse than production with 95% confidence" in closed.reason
    assert "accuracy" in closed.reason and "labelled rows" in closed.reason and "±" in closed.reason
    aborted = [b["text"] for b in webhook.bodies if "candidate aborted" in b["text"]]
    assert len(aborted) == 1 and "labelled rows" in aborted[0] and "±" in aborted[0]


def test_a_promotion_whose_live_outcomes_turn_worse_is_rolled_back(
    trained: Trained, tmp_path: Path, webhook, monkeypatch
):
    """`direct` with `rollback`: GOOD answers DAY_BEFORE; BUGGED is promoted directly and answers
    SERVED; on both days' outcomes BUGGED is worse and the sensor rolls production back to GOOD."""
    root, env, store = trained.copy(tmp_path, strategy="direct")
    arrange(store, production=trained.versions["GOOD"], candidate=None)
    # Two groups of rows, not the same rows twice: a comparison of two samples needs more of them.
    before = serve_orders(root, env, DAY_BEFORE, seed=13, count=ROLLBACK_ORDERS)
    store.promote(MODEL, trained.versions["BUGGED"], reason="gate passed (direct)")
    after = serve_orders(root, env, SERVED, seed=14, count=ROLLBACK_ORDERS)
    outcomes_arrive(root, env, before, DAY_BEFORE)
    outcomes_arrive(root, env, after, SERVED)

    said = sensor_tick(env, "direct", Notifier(webhook_url=webhook.url), monkeypatch)
    assert said.startswith(f"rolled {trained.versions['BUGGED']} back to {trained.versions['GOOD']}"), said
    production = store.pointer(MODEL)
    assert production.version == trained.versions["GOOD"] and production.reason.startswith("rolled back:")
    (message,) = webhook.bodies
    assert "promotion rolled back" in message["text"]
    # A restored version is not rolled back again: the next tick has nothing to do.
    assert "no open candidate" in sensor_tick(env, "direct", Notifier(webhook_url=webhook.url), monkeypatch)


def test_the_label_free_estimate_is_within_its_error_of_the_accuracy_the_outcomes_give(
    trained: Trained, tmp_path: Path
):
    """Production GOOD, candidate OTHER (both sound): rollout[day] before the outcomes estimates each
    model's accuracy from its probabilities; once the outcomes arrive, the accuracy computed on them
    is within each estimate's stated error."""
    root, env, store = trained.copy(tmp_path)
    arrange(store, production=trained.versions["GOOD"], candidate=trained.versions["OTHER"])
    orders = serve_orders(root, env, SERVED, seed=15)
    evidence_of(env, SERVED)  # no outcome yet
    early = json.loads(json.dumps(instance_metadata(env, "rollout", SERVED)["Evidence"]))
    outcomes_arrive(root, env, orders, SERVED)
    late = instance_metadata(env, "rollout", SERVED)["Evidence"]

    for version in (trained.versions["GOOD"], trained.versions["OTHER"]):
        estimated = next(v for v in early["versions"] if v["version"] == version)
        scored = next(v for v in late["versions"] if v["version"] == version)
        assert estimated["labelled"] == 0 and estimated["estimate"] is not None, estimated
        assert scored["labelled"] > 200
        assert abs(estimated["estimate"] - scored["score"]) <= estimated["estimate_error"], (estimated, scored)
    state = rollout_json(env)
    assert state["evidence"]["candidate_estimate"] is not None
    assert state["decision"]["action"] in ("wait", "promote", "abort")
    assert state["evidence"]["difference"]["labelled"] == late["pairs"][0]["labelled"], state
    by_hand(env, store, trained.versions["OTHER"])


def by_hand(env: dict[str, str], store: LocalModelStore, candidate: str) -> None:
    """`ml-platform models` marks the candidate; `ml-platform rollout abort` closes it as the sensor
    would, with the person as the actor and what the rules said in the reason; a second abort is
    one clear error."""
    listing = run_cli(env, "models", "--model", MODEL)
    assert any(line.startswith(f"c {candidate}") for line in listing.stdout.splitlines()), listing.stdout
    shown = run_cli(env, "rollout", "--model", MODEL)
    assert f"candidate   {candidate}" in shown.stdout and "today" in shown.stdout
    aborted = run_cli(env, "rollout", "abort", "--model", MODEL, "--reason", "upstream bug found")
    assert f"aborted candidate {candidate}" in aborted.stdout
    closed = store.pointer(MODEL, "candidate")
    assert closed.closed == "aborted" and closed.actor.startswith("ml-platform rollout by ")
    assert closed.reason.startswith("by hand: upstream bug found (the rules said: ")
    history = rollout_json(env)["history"]
    assert history[-1]["role"] == "candidate" and history[-1]["closed"] == "aborted"
    again = run_cli(env, "rollout", "abort", "--model", MODEL, expect=2)
    assert again.stderr.strip() == f"ml-platform: error: model '{MODEL}' has no open candidate to abort"


def run_cli(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "ml-platform"), *args], env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == expect, (done.stdout, done.stderr)
    return done


def test_a_candidate_that_fails_on_five_percent_of_rows_is_aborted_before_any_label(
    trained: Trained, tmp_path: Path, webhook, monkeypatch
):
    """Candidate GOOD behind a feature step that raises on two products (about 5 % of orders): every
    answer is production's, the candidate's failures are logged as refused, and on the day's
    evidence alone, with no outcome yet, the guardrail (max_error_rate 1 %) aborts it."""
    root, env, store = trained.copy(tmp_path)
    faulty = store_faulty(store, trained.versions["GOOD"])
    arrange(store, production=trained.versions["GOOD"], candidate=faulty)
    orders = serve_orders(root, env, SERVED, seed=16)
    broken = int(orders["product"].isin(BROKEN_PRODUCTS).sum())
    assert 0.03 * ORDERS < broken < 0.08 * ORDERS
    evidence_of(env, SERVED)  # no outcome has arrived

    said = sensor_tick(env, "shadow", Notifier(webhook_url=webhook.url), monkeypatch)
    assert said.startswith(f"aborted candidate {faulty}: guardrail"), said
    assert f"refused or failed on {broken} of {ORDERS} rows" in said and "above max_error_rate 1.00%" in said
    # (every failure is logged: the server waits for the candidate's predictions before it stops)
    assert store.candidate(MODEL) is None and store.production(MODEL).version == trained.versions["GOOD"]
    candidate = next(
        v for v in instance_metadata(env, "rollout", SERVED)["Evidence"]["versions"] if v["version"] == faulty
    )
    assert candidate["labelled"] == 0 and candidate["refused"] == broken
    (message,) = webhook.bodies
    assert "candidate aborted" in message["text"] and "max_error_rate" in message["text"]
