"""`ml-platform serve` with a rollout: production and a candidate of one model behind one route, as
real processes driven by real HTTP clients from several threads. Two real versions of a shop churn
model (ml_platform_tests.support.rollout_models) are shared by the module; each scenario serves a
copy of their store with its own pipelines file (`rollout:`) and reads the prediction log the
server wrote when it stopped (SIGTERM).

- shadow: production answers every request; the candidate's predictions of the same rows are logged
  beside production's, not answered; a candidate that raises or refuses rows never changes an answer;
- canary: a stable share of requests is the candidate's (by request id, or by an entity column),
  each answer names its version and role, and with mirror the other model's rows are logged too.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import signal
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_platform.backends.local import LocalModelStore
from ml_platform.serving.prediction_log import read_log
from ml_platform.serving.rollout import to_candidate
from ml_platform_tests.support.constants import ROOT
from ml_platform_tests.support.realistic import TARGET
from ml_platform_tests.support.rollout_models import (
    COLUMNS,
    MAX_QUANTITY,
    MODEL,
    ShopVersions,
    pipelines_yaml,
    shop_rows,
    shop_versions,
)
from ml_platform_tests.support.serve_process import TOKEN, Server, start_server, until

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> ShopVersions:
    return shop_versions(tmp_path_factory.mktemp("rollout") / "model_store")


@pytest.fixture(scope="module")
def request_rows() -> pd.DataFrame:
    """Rows of later days than either model saw, as clients send them (no id, no label)."""
    return shop_rows("2026-03-01", 4, 250, 42).drop(columns=["order_id", TARGET])


def serve(versions: ShopVersions, tmp_path: Path, rollout: str, candidate: str | None) -> tuple[Server, Path]:
    """A server of a copy of the store, with ``candidate`` as the open candidate (None: no candidate)
    and a pipelines file whose rollout is ``rollout``; the log is written when it stops."""
    store_dir = tmp_path / "store"
    shutil.copytree(versions.store_dir, store_dir)
    if candidate is not None:
        LocalModelStore(root=str(store_dir)).promote(MODEL, candidate, reason="test: a rollout", role="candidate")
    (tmp_path / "pipelines.yaml").write_text(pipelines_yaml(rollout))
    env = {
        **os.environ,
        "ML_PLATFORM_SERVE_TOKEN": TOKEN,
        "ML_PLATFORM_PIPELINES": str(tmp_path / "pipelines.yaml"),
        "PYTHONPATH": str(ROOT),  # the faulty candidate's feature step lives in ml_platform_tests
    }
    args = ("--store-dir", str(store_dir), "--model", MODEL, "--log-flush-s", "600")
    return start_server(env, tmp_path / "serve.log", *args), store_dir


def body_of(frame: pd.DataFrame, shape: str) -> tuple[bytes, str]:
    """A request body of ``frame`` as records, ``{"columns", "data"}`` or CSV, and its content type."""
    if shape == "csv":
        return frame.to_csv(index=False).encode(), "text/csv"
    records = json.loads(frame.to_json(orient="records"))
    if shape == "split":
        return json.dumps({"columns": list(frame.columns), "data": [list(r.values()) for r in records]}).encode(), ""
    return json.dumps(records).encode(), ""


def send_all(server: Server, requests: dict[str, tuple[bytes, str]], clients: int, query: str = "") -> dict[str, dict]:
    """Each request (id -> body, content type) sent once by one of ``clients`` threads, each a client
    with its own keep-alive connection, each request with its ``X-Request-ID``: the answers by id."""
    answers: dict[str, dict] = {}
    ids = list(requests)
    failures: list[str] = []

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=30)
        try:
            for request_id in ids[number::clients]:
                body, kind = requests[request_id]
                headers = {
                    "Content-Type": kind or "application/json",
                    "Authorization": f"Bearer {TOKEN}",
                    "X-Request-ID": request_id,
                }
                connection.request("POST", f"/v1/models/{MODEL}/predict{query}", body, headers)
                response = connection.getresponse()
                answer = json.loads(response.read())
                if response.status != 200:
                    failures.append(f"{request_id}: {response.status} {answer}")
                answers[request_id] = answer
        except Exception as exc:  # noqa: BLE001 - said by the assertion below
            failures.append(f"client {number}: {type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(answers) == len(requests), failures[:3]
    return answers


def metric_value(server: Server, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry ``labels``."""
    _, text, _ = server.request("GET", "/metrics")
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"{name}{{") and all(part in line for part in wanted)
    )


def logged(store_dir: Path) -> pd.DataFrame:
    store = LocalModelStore(root=str(store_dir))
    return read_log(store.read_bytes, store.list_children, MODEL)


def local_predictions(store_dir: Path, version: str, frame: pd.DataFrame) -> list:
    from ml_platform.serving import load_production_model

    model, _ = load_production_model(MODEL, store_dir=str(store_dir), version=version)
    return model.predict(frame).tolist()


def plain(value):
    return value.item() if isinstance(value, np.generic) else value


def by_role(log: pd.DataFrame, role: str, answered: bool) -> pd.DataFrame:
    return log[(log["role"] == role) & (log["answered"] == answered)]


# -- shadow ------------------------------------------------------------------------------------------


def test_shadow_answers_with_production_and_logs_the_candidate_for_every_request(versions, request_rows, tmp_path):
    """No candidate yet: ready, production answers. A candidate set (and SIGHUP) is followed: 300
    requests from six clients are answered by production exactly as production predicts them, and
    after SIGTERM the log holds, for every one, production's answered rows and the candidate's rows
    (predictions and probabilities), not answered. The candidate closed, the server drops it."""
    server, store_dir = serve(versions, tmp_path, "{strategy: shadow}", candidate=None)
    store = LocalModelStore(root=str(store_dir))
    try:
        status, ready, _ = server.request("GET", "/readyz", token=None)
        assert status == 200 and ready["models"][MODEL] == {
            "version": versions.production,
            "problem": None,
            "candidate": None,
        }
        _, described, _ = server.request("GET", f"/v1/models/{MODEL}")
        assert described["candidate"] is None and described["rollout"]["strategy"] == "shadow"
        before = json.loads(request_rows.head(2).to_json(orient="records"))
        status, alone, _ = server.predict(before, model=MODEL, headers={"X-Request-ID": "before"})
        assert status == 200 and alone["role"] == "production"

        store.promote(MODEL, versions.candidate, reason="test: deploy with shadow", role="candidate")
        server.process.send_signal(signal.SIGHUP)

        def candidate_described():
            return (server.request("GET", f"/v1/models/{MODEL}")[1]["candidate"] or {}).get("version")

        until(lambda: candidate_described() == versions.candidate, "the candidate loaded")
        _, described, _ = server.request("GET", f"/v1/models/{MODEL}")
        assert described["version"] == versions.production and described["candidate"]["strategy"] == "shadow"
        assert described["candidate"]["ready"] is True and described["candidate"]["role"] == "candidate"

        frames = {f"shadow-{i:03d}": request_rows.iloc[3 * i : 3 * i + 1 + i % 3] for i in range(300)}
        requests = {
            rid: body_of(frame, ("records", "split", "csv")[i % 3]) for i, (rid, frame) in enumerate(frames.items())
        }
        answers = send_all(server, requests, clients=6)
        sent = pd.concat(frames.values(), ignore_index=True)
        expected = iter(local_predictions(store_dir, versions.production, sent))
        for rid, frame in frames.items():
            answer = answers[rid]
            assert (answer["version"], answer["role"], answer["request_id"]) == (versions.production, "production", rid)
            assert answer["predictions"] == [next(expected) for _ in range(len(frame))]
            assert "probabilities" not in answer  # not asked: the log keeps them all the same
        rows = sum(len(f) for f in frames.values())
        until(
            lambda: metric_value(server, "ml_platform_predicted_rows_total", role="candidate") == rows,
            "the candidate's rows counted",
        )
        assert metric_value(server, "ml_platform_predicted_rows_total", role="production") == rows + 2
        assert metric_value(server, "ml_platform_served_version", role="candidate", version=versions.candidate) == 1

        store.close_candidate(MODEL, "aborted", reason="test: aborted")
        server.process.send_signal(signal.SIGHUP)
        until(lambda: candidate_described() is None, "the closed candidate dropped")
        after = json.loads(request_rows.head(1).to_json(orient="records"))
        assert server.predict(after, model=MODEL, headers={"X-Request-ID": "after"})[0] == 200
    finally:
        server.stop()

    log = logged(store_dir)
    production, candidate = by_role(log, "production", True), by_role(log, "candidate", False)
    assert len(production) + len(candidate) == len(log)  # nothing else: no candidate answer, no production shadow
    assert set(production["request_id"]) == set(frames) | {"before", "after"}
    assert set(candidate["request_id"]) == set(frames)  # every shadowed request, none before or after
    for part in (production, candidate):
        counts = part[part["request_id"].isin(frames)].groupby("request_id").size()
        assert counts.to_dict() == {rid: len(frame) for rid, frame in frames.items()}
        assert part["prediction"].notna().all() and part[["proba_no", "proba_yes"]].notna().all().all()
    assert set(candidate["version"]) == {versions.candidate} and set(production["version"]) == {versions.production}
    assert candidate["refused"].isna().all()
    # The candidate predicted the rows as its own model does.
    shadowed = candidate.sort_values(["request_id", "row"])
    rows_sent = pd.concat([frames[rid] for rid in sorted(frames)], ignore_index=True)
    assert shadowed["prediction"].tolist() == local_predictions(store_dir, versions.candidate, rows_sent)


def test_a_candidate_that_fails_never_changes_an_answer(versions, request_rows, tmp_path):
    """The faulty candidate raises on an order of more than 50 items and refuses rows without its new
    `coupon` column. Under concurrent traffic (its failing calls batched with good ones), every
    answer is production's own prediction, and the candidate's failures are logged as refused rows
    with why, not answered, and counted; the requests it could score are in the log as predicted."""
    frames, coupons, marked = {}, set(), set()
    for i in range(150):
        frame = request_rows.iloc[2 * i : 2 * i + 2].copy()
        rid = f"faulty-{i:03d}"
        if i % 3:
            frame["coupon"] = float(i % 5)
            coupons.add(rid)
        if i % 7 == 0:
            frame.iloc[0, frame.columns.get_loc("qty")] = 99  # outside the training range: reported, answered
            marked.add(rid)
        frames[rid] = frame
    server, store_dir = serve(versions, tmp_path, "{strategy: shadow}", candidate=versions.faulty)
    try:
        answers = send_all(server, {rid: body_of(f, "records") for rid, f in frames.items()}, clients=6)
        refused, raised = set(frames) - coupons, coupons & marked
        until(
            lambda: metric_value(server, "ml_platform_candidate_failures_total", kind="error") == len(raised),
            "the candidate's errors counted",
        )
        assert metric_value(server, "ml_platform_candidate_failures_total", kind="refused") == len(refused)
        status, ready, _ = server.request("GET", "/readyz", token=None)
        assert status == 200 and ready["models"][MODEL]["candidate"] == versions.faulty
    finally:
        server.stop()
    sent = pd.concat(frames.values(), ignore_index=True)[COLUMNS]
    expected = local_predictions(store_dir, versions.production, sent)
    assert [p for rid in frames for p in answers[rid]["predictions"]] == expected
    assert {answers[rid]["version"] for rid in frames} == {versions.production}
    assert all(answers[rid]["report"]["outside_training_range"].get("qty") == 1 for rid in marked)

    log = logged(store_dir)
    candidate = by_role(log, "candidate", False)
    assert len(by_role(log, "production", True)) + len(candidate) == len(log)
    reasons = candidate.groupby("request_id")["refused"].first()
    assert set(reasons.index) == set(frames)
    assert all(reasons[rid].startswith("missing feature column(s) 'coupon'") for rid in refused)
    assert all(
        reasons[rid] == f"RuntimeError: an order of more than {MAX_QUANTITY} items: the candidate cannot score it"
        for rid in raised
    )
    scored = coupons - marked
    assert reasons[list(scored)].isna().all()
    failed = candidate[candidate["refused"].notna()]
    assert failed["prediction"].isna().all() and set(failed.groupby("request_id").size()) == {2}
    assert candidate[candidate["request_id"].isin(scored)]["prediction"].notna().all()


# -- canary ------------------------------------------------------------------------------------------


def test_canary_answers_a_stable_share_by_request_id(versions, request_rows, tmp_path):
    """share 0.2 over 2,000 requests from eight clients: about a fifth are the candidate's, exactly the
    ids the documented hash picks; each answer (V1 and V2) names its version and role; each request
    is logged once, answered, by the model that answered it (no mirror: no other rows)."""
    server, store_dir = serve(versions, tmp_path, "{strategy: canary, share: 0.2}", candidate=versions.candidate)
    frames = {f"canary-{i:04d}": request_rows.iloc[i % 1000 : i % 1000 + 1] for i in range(2000)}
    try:
        answers = send_all(server, {rid: body_of(f, "records") for rid, f in frames.items()}, clients=8)
        v2 = {}
        for i in range(20):
            row = request_rows.iloc[i]
            inputs = [{"name": c, "shape": [1], "datatype": "BYTES", "data": [plain(row[c])]} for c in COLUMNS]
            status, v2[f"v2-{i}"], _ = server.request(
                "POST", f"/v2/models/{MODEL}/infer", json.dumps({"id": f"v2-{i}", "inputs": inputs}).encode()
            )
            assert status == 200
    finally:
        server.stop()
    version_of = {"production": versions.production, "candidate": versions.candidate}
    roles = {rid: answer["role"] for rid, answer in answers.items()}
    share = sum(role == "candidate" for role in roles.values()) / len(roles)
    assert 0.17 <= share <= 0.23, share
    for rid, answer in answers.items():
        assert answer["role"] == ("candidate" if to_candidate(rid, 0.2) else "production")
        assert answer["version"] == version_of[answer["role"]]
    for rid, answer in v2.items():
        role = "candidate" if to_candidate(rid, 0.2) else "production"
        assert (answer["model_version"], answer["parameters"]) == (version_of[role], {"role": role})

    log = logged(store_dir)
    assert log["answered"].all() and log["refused"].isna().all()
    assert log.groupby("request_id").size().to_dict() == dict.fromkeys([*answers, *v2], 1)
    logged_roles = log.set_index("request_id")
    assert all(logged_roles.at[rid, "role"] == roles[rid] for rid in answers)
    assert all(logged_roles.at[rid, "version"] == answers[rid]["version"] for rid in answers)


def test_canary_routes_each_entity_to_one_version_and_mirrors_the_other(versions, request_rows, tmp_path):
    """route_by store, share 0.2, mirror: requests of several rows in three body shapes are routed
    by their first row's store; every request of one store meets the same version every time (the
    stores the documented hash picks are the candidate's), and the log holds each request's
    answer and the other model's rows, not answered."""
    rollout = "{strategy: canary, share: 0.2, route_by: store, mirror: true}"
    server, store_dir = serve(versions, tmp_path, rollout, candidate=versions.candidate)
    rng = np.random.default_rng(3)
    stores = sorted(request_rows["store"].unique())
    frames, entity = {}, {}
    for n in range(240):
        store = stores[n % len(stores)]
        first = request_rows[request_rows["store"] == store].sample(1, random_state=n)
        others = request_rows.sample(int(rng.integers(0, 3)), random_state=1000 + n)  # other stores
        frames[f"entity-{n:03d}"] = pd.concat([first, others])
        entity[f"entity-{n:03d}"] = int(store)
    try:
        shapes = ("records", "split", "csv")
        requests = {rid: body_of(f, shapes[i % 3]) for i, (rid, f) in enumerate(frames.items())}
        answers = send_all(server, requests, clients=6, query="?proba=true")
    finally:
        server.stop()
    met: dict[int, set[str]] = {}
    for rid, answer in answers.items():
        met.setdefault(entity[rid], set()).add(answer["version"])
        assert np.allclose(np.sum(answer["probabilities"], axis=1), 1.0) and answer["classes"] == ["no", "yes"]
    assert all(len(seen) == 1 for seen in met.values()), met  # one version per store, every time
    to_the_candidate = {s for s in met if to_candidate(str(s), 0.2)}
    assert {s for s, seen in met.items() if seen == {versions.candidate}} == to_the_candidate
    assert 0 < len(to_the_candidate) < len(met)  # both models answer some stores

    log = logged(store_dir)
    other = {"production": "candidate", "candidate": "production"}
    for rid, group in log.groupby("request_id"):
        role = answers[rid]["role"]
        assert set(zip(group["role"], group["answered"])) == {(role, True), (other[role], False)}
        assert (group.groupby("role").size() == len(frames[rid])).all()
    assert set(log["request_id"]) == set(frames) and log["prediction"].notna().all()
    answered = log[log["answered"]].sort_values(["request_id", "row"])
    assert answered["prediction"].tolist() == [p for rid in sorted(answers) for p in answers[rid]["predictions"]]


def test_a_request_is_routed_by_its_first_rows_entity_in_any_body_shape():
    """An entity sent as a number, as text, in a CSV or as a float is one routing key; a request
    without the column is routed by its id."""
    from ml_platform.serving.rollout import routing_key

    frame = pd.DataFrame({"store": [105, 101], "qty": [1, 2]})
    for rows in (
        json.loads(frame.to_json(orient="records")),
        {"columns": ["store", "qty"], "data": [["105", 1], ["101", 2]]},
        pd.read_csv(io.StringIO(frame.to_csv(index=False))),
        [{"store": 105.0, "qty": 1}],
    ):
        assert routing_key(rows, "store", "request-id") == "105"
    assert routing_key([{"qty": 1}], "store", "request-id") == "request-id"
