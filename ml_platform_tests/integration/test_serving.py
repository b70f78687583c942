"""`ml-platform serve` as a real process on a free port of 127.0.0.1, driven by a real HTTP client:
each route, the bad-request matrix, the bearer token, hot reload under traffic (a promotion by the
pipeline, `ml-platform rollback`, a tampered version pointed at) on the local store and on S3, SIGHUP,
and several workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform.demo import breast_cancer_frame
from ml_platform_tests.support.constants import (
    BIN,
    DAYS,
    END_DAY,
    MODEL_NAME,
    ROOT,
    TARGET,
)
from ml_platform_tests.support.pipelines import DIABETES, ingest_and_train, seed
from ml_platform_tests.support.platform import Platform, cli_json
from ml_platform_tests.support.results import step_errors
from ml_platform_tests.support.serve_process import TOKEN, Server, start_server, until
from ml_platform_tests.support.sockets import (
    listening_addresses,
    only_loopback,
    owner_group_of_port,
)

pytestmark = pytest.mark.cli

ROWS = breast_cancer_frame(TARGET).drop(columns=[TARGET]).head(20)


def records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


def deploy_both(platform: Platform) -> None:
    """The demo classifier and the diabetes regression, trained and deployed by the pipeline."""
    platform.seed()
    assert platform.ingest_range(DAYS).success
    trained = platform.train()
    assert trained.success, step_errors(trained)
    seed(platform, "diabetes", "diabetes", "progression")
    diabetes = ingest_and_train(platform, DIABETES)
    assert diabetes.success, step_errors(diabetes)


@pytest.fixture(scope="module")
def deployed_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serving")
    with dg.instance_for_test() as instance:
        deploy_both(
            Platform(
                root=root,
                landing=root / "landing",
                store_dir=root / "model_store",
                assets_dir=root / "assets",
                instance=instance,
            )
        )
    return root / "model_store"


@pytest.fixture(scope="module")
def server(deployed_store, tmp_path_factory) -> Iterator[Server]:
    """One server for the route and bad-request tests: both models, a token, a 64 KB body limit."""
    log = tmp_path_factory.mktemp("serve_log") / "serve.log"
    env = {**os.environ, "ML_PLATFORM_SERVE_TOKEN": TOKEN}
    running = start_server(
        env,
        log,
        "--store-dir",
        str(deployed_store),
        "--model",
        MODEL_NAME,
        "--model",
        "diabetes",
        "--max-body-mb",
        "0.0625",
    )
    yield running
    running.stop()


# -- the routes ----------------------------------------------------------------------------------


def test_predict_answers_with_the_version_that_served_and_the_signature_report(server, deployed_store):
    pointer = json.loads((deployed_store / MODEL_NAME / "production.json").read_text())
    status, answer, _ = server.predict(records(ROWS.assign(note="x")))
    assert status == 200, answer
    assert (answer["version"], answer["sha256"]) == (pointer["version"], pointer["sha256"])
    from ml_platform.serving import load_production_model

    model, _ = load_production_model(MODEL_NAME, store_dir=str(deployed_store))
    assert answer["predictions"] == model.sklearn_model.predict(ROWS).tolist()
    assert answer["report"]["dropped_columns"] == ["note"] and answer["report"]["rows"] == 20

    split = json.loads(ROWS.to_json(orient="split", index=False))
    status, by_columns, _ = server.predict({"columns": split["columns"], "data": split["data"]}, query="?proba=true")
    assert status == 200 and by_columns["predictions"] == answer["predictions"]
    assert by_columns["classes"] == ["0", "1"]
    assert np.allclose(np.sum(by_columns["probabilities"], axis=1), 1.0)
    status, by_csv, _ = server.predict(
        ROWS[list(reversed(ROWS.columns))].to_csv(index=False).encode(), content_type="text/csv"
    )
    assert status == 200 and by_csv["predictions"] == answer["predictions"]


def test_a_regression_answers_numbers(server, deployed_store):
    frame = pd.read_parquet(next((deployed_store.parent / "landing" / "diabetes").glob("*.parquet")))
    status, answer, _ = server.predict(records(frame.drop(columns=["progression"]).head(5)), model="diabetes")
    assert status == 200 and len(answer["predictions"]) == 5
    assert all(isinstance(v, float) for v in answer["predictions"])


def test_mlflow_scoring_server_bodies_are_answered_as_mlflow_clients_read_them(server):
    """A team moving from `mlflow models serve` sends its bodies unchanged; MLflow's clients read
    the "predictions" key of the answer."""
    from mlflow.models import convert_input_example_to_serving_input

    _, plain, _ = server.predict(records(ROWS))
    expected = plain["predictions"]
    bodies = {
        # What MLflow itself writes for a DataFrame input example (its serving_input_example.json).
        "dataframe_split": json.loads(convert_input_example_to_serving_input(ROWS)),
        "dataframe_records": {"dataframe_records": records(ROWS)},
        "instances as records": {"instances": records(ROWS)},
        "instances as rows": {"instances": ROWS.to_numpy().tolist()},  # the signature's column order
        "inputs as columns": {"inputs": {c: ROWS[c].tolist() for c in ROWS.columns}},
        "with params": {"dataframe_records": records(ROWS), "params": {}},
    }
    assert "dataframe_split" in bodies["dataframe_split"]
    for shape, body in bodies.items():
        status, answer, _ = server.predict(body)
        assert status == 200 and answer["predictions"] == expected, (shape, answer)
    status, answer, _ = server.predict({"dataframe_records": records(ROWS), "instances": records(ROWS)})
    assert status == 400 and "an MLflow body has one of dataframe_records" in answer["error"]
    status, answer, _ = server.predict({"instances": [[1.0, 2.0]]})  # two values for 30 columns
    assert status == 400 and answer["error"] == 'row 0 of "data" has 2 values for 30 columns', answer
    status, answer, _ = server.predict({"inputs": {"mean radius": [1.0, 2.0], "mean texture": [1.0]}})
    assert status == 400 and "the same length" in answer["error"]


def v2_column_tensors(frame: pd.DataFrame) -> list[dict]:
    """One tensor per column, as MLServer's pandas codec encodes a DataFrame."""
    return [{"name": c, "shape": [len(frame)], "datatype": "FP64", "data": frame[c].tolist()} for c in frame.columns]


def test_the_open_inference_protocol_v2(server, deployed_store):
    _, plain, _ = server.predict(records(ROWS), query="?proba=true")
    status, ready, _ = server.request("GET", "/v2/health/ready", token=None)
    assert status == 200 and ready == {"ready": True}
    assert server.request("GET", "/v2/health/live", token=None)[0] == 200
    status, ready, _ = server.request("GET", f"/v2/models/{MODEL_NAME}/ready")
    assert status == 200 and ready["ready"] is True
    status, metadata, _ = server.request("GET", f"/v2/models/{MODEL_NAME}")
    assert status == 200 and metadata["versions"] == [plain["version"]]
    assert [i["name"] for i in metadata["inputs"]] == list(ROWS.columns)
    assert {i["datatype"] for i in metadata["inputs"]} == {"FP64"}
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]

    def infer(body: dict, model: str = MODEL_NAME, **kwargs):
        return server.request("POST", f"/v2/models/{model}/infer", json.dumps(body).encode(), **kwargs)

    # A table: one tensor per column, both outputs asked for, an id echoed back.
    body = {
        "id": "req-42",
        "inputs": v2_column_tensors(ROWS),
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    status, answer, _ = infer(body)
    assert status == 200, answer
    assert (answer["model_name"], answer["model_version"], answer["id"]) == (MODEL_NAME, plain["version"], "req-42")
    predict, proba = answer["outputs"]
    assert predict["name"] == "predict" and predict["shape"] == [20] and predict["data"] == plain["predictions"]
    assert predict["datatype"] == "INT64"
    assert proba["shape"] == [20, 2] and proba["datatype"] == "FP64"
    assert np.allclose(np.reshape(proba["data"], (20, 2)), plain["probabilities"])
    # A matrix: one 2-D tensor of every feature in the signature's order, flat in row-major order.
    matrix = {
        "inputs": [{"name": "input-0", "shape": [20, 30], "datatype": "FP64", "data": ROWS.to_numpy().ravel().tolist()}]
    }
    status, answer, _ = infer(matrix)
    assert status == 200 and [o["name"] for o in answer["outputs"]] == ["predict"]
    assert answer["outputs"][0]["data"] == plain["predictions"] and "id" not in answer
    # A regression answers FP64.
    frame = pd.read_parquet(next((deployed_store.parent / "landing" / "diabetes").glob("*.parquet")))
    status, answer, _ = infer({"inputs": v2_column_tensors(frame.drop(columns=["progression"]).head(4))}, "diabetes")
    assert status == 200 and answer["outputs"][0]["datatype"] == "FP64" and answer["outputs"][0]["shape"] == [4]
    # Mistakes: one line each, the status a client expects.
    bad_shape = {"inputs": [{"name": "input-0", "shape": [20, 29], "datatype": "FP64", "data": [0.0] * 580}]}
    mistakes = [
        (bad_shape, 400, "has 29 features per row; the model takes 30"),
        (
            {"inputs": [{"name": "a", "shape": [3], "datatype": "FP64", "data": [1.0]}]},
            400,
            "has 1 values for the shape [3]",
        ),
        ({"inputs": v2_column_tensors(ROWS), "outputs": [{"name": "explain"}]}, 400, "unknown output(s) ['explain']"),
        ({"inputs": v2_column_tensors(ROWS.drop(columns=["mean radius"]))}, 422, "mean radius"),
        ({"rows": []}, 400, 'an inference request is {"inputs"'),
    ]
    for body, code, says in mistakes:
        status, answer, _ = infer(body)
        assert status == code and says in answer["error"], (body if len(str(body)) < 200 else says, answer)
    assert infer(body, token=None)[0] == 401
    assert infer({"inputs": v2_column_tensors(ROWS)}, model="nope")[0] == 404


def test_models_routes_show_version_sha256_promotion_metrics_and_signature(server, deployed_store):
    status, listing, _ = server.request("GET", "/v1/models")
    assert status == 200 and [m["name"] for m in listing["models"]] == [MODEL_NAME, "diabetes"]
    status, one, _ = server.request("GET", f"/v1/models/{MODEL_NAME}")
    pointer = json.loads((deployed_store / MODEL_NAME / "production.json").read_text())
    assert status == 200 and one["version"] == pointer["version"] and one["sha256"] == pointer["sha256"]
    assert one["promoted_at"] == pointer["promoted_at"] and one["metrics"]["accuracy"] >= 0.8
    assert [f["name"] for f in one["signature"]["features"]] == list(ROWS.columns)
    assert one["ready"] is True and one["problem"] is None
    # Deployed by the pipeline: model_metrics checked its compiled form on the test split, the server serves it.
    for listed in listing["models"]:
        serving = listed["serving"]
        assert serving["path"] == "compiled" and serving["reason"] is None, serving
        assert serving["rows"] > 0 and serving["max_difference"] <= 1e-9, serving


def test_livez_readyz_and_metrics(server):
    assert server.request("GET", "/livez", token=None)[:2] == (200, {"status": "alive"})
    status, ready, _ = server.request("GET", "/readyz", token=None)
    assert status == 200 and ready["ready"] is True and set(ready["models"]) == {MODEL_NAME, "diabetes"}
    server.predict(records(ROWS.head(3)))
    server.request("GET", "/v1/models/nope")
    status, text, headers = server.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'ml_platform_http_requests_total{route="/v1/models/{name}/predict",status="200"}' in text
    assert 'ml_platform_http_requests_total{route="/v1/models/{name}",status="404"}' in text
    assert "ml_platform_http_request_duration_seconds_bucket" in text
    assert f'ml_platform_served_version{{model="{MODEL_NAME}",role="production",sha256="' in text
    assert f'ml_platform_model_ready{{model="{MODEL_NAME}"}} 1.0' in text


def test_the_server_listens_on_loopback_only(server):
    port = int(server.url.rsplit(":", 1)[1])
    addresses = listening_addresses(owner_group_of_port(port))
    assert addresses and only_loopback(addresses), addresses


# -- bad requests: 4xx with one JSON line, never a 500 ------------------------------------------

TEXT = records(ROWS.head(3).astype({"mean radius": object}).assign(**{"mean radius": [1.0, "abc", 2.0]}))
BAD_REQUESTS = {
    "malformed JSON": (
        "POST",
        f"/v1/models/{MODEL_NAME}/predict",
        b'[{"mean radius": 1',
        "application/json",
        400,
        "the body is not valid JSON",
    ),
    "an empty body": (
        "POST",
        f"/v1/models/{MODEL_NAME}/predict",
        b"",
        "application/json",
        400,
        "the request body is empty",
    ),
    "a JSON scalar": (
        "POST",
        f"/v1/models/{MODEL_NAME}/predict",
        b"42",
        "application/json",
        400,
        "expected a JSON list of records",
    ),
    "uneven columns and data": (
        "POST",
        f"/v1/models/{MODEL_NAME}/predict",
        json.dumps({"columns": ["a", "b"], "data": [[1, 2], [3]]}).encode(),
        "application/json",
        400,
        'row 1 of "data" has 1 values for 2 columns',
    ),
    "an unknown model": (
        "POST",
        "/v1/models/nope/predict",
        json.dumps(records(ROWS.head(1))).encode(),
        "application/json",
        404,
        "unknown model 'nope'; served: demo_classifier, diabetes",
    ),
    "an unknown route": ("GET", "/v2/everything", None, "application/json", 404, "no route /v2/everything"),
    "a GET of predict": (
        "GET",
        f"/v1/models/{MODEL_NAME}/predict",
        None,
        "application/json",
        405,
        "GET is not allowed",
    ),
    "another content type": (
        "POST",
        f"/v1/models/{MODEL_NAME}/predict",
        b"<rows/>",
        "application/xml",
        415,
        "content type 'application/xml' is not application/json or text/csv",
    ),
    "a body over the limit": (
        "POST",
        f"/v1/models/{MODEL_NAME}/predict",
        json.dumps(records(pd.concat([ROWS] * 10))).encode(),
        "application/json",
        413,
        "the limit is 65536",
    ),
    "no rows": ("POST", f"/v1/models/{MODEL_NAME}/predict", b"[]", "application/json", 422, "the input has no rows"),
    "a missing column": (
        "POST",
        f"/v1/models/{MODEL_NAME}/predict",
        json.dumps(records(ROWS.head(2).drop(columns=["mean area"]))).encode(),
        "application/json",
        422,
        "missing feature column(s) 'mean area'",
    ),
    "text in a numeric column": (
        "POST",
        f"/v1/models/{MODEL_NAME}/predict",
        json.dumps(TEXT).encode(),
        "application/json",
        422,
        "column 'mean radius' expects numbers: row 1 holds 'abc'",
    ),
    "a list in a record": (
        "POST",
        f"/v1/models/{MODEL_NAME}/predict",
        json.dumps([{**records(ROWS.head(1))[0], "mean area": [1, 2]}]).encode(),
        "application/json",
        422,
        "row 0 holds a list",
    ),
    "probabilities of a regression": (
        "POST",
        "/v1/models/diabetes/predict?proba=true",
        b"[{}]",
        "application/json",
        400,
        "is a regression: it has no class probabilities",
    ),
    "a bad proba flag": (
        "POST",
        f"/v1/models/{MODEL_NAME}/predict?proba=maybe",
        b"[{}]",
        "application/json",
        400,
        "query parameter proba='maybe' is not true or false",
    ),
    "an unreadable CSV": (
        "POST",
        f"/v1/models/{MODEL_NAME}/predict",
        b'a,b\n"1,2\n',
        "text/csv",
        400,
        "the CSV body cannot be read",
    ),
    "a CSV separated by semicolons": (
        "POST",
        f"/v1/models/{MODEL_NAME}/predict",
        ROWS.head(2).to_csv(index=False, sep=";").encode(),
        "text/csv",
        422,
        "a CSV must be comma-separated",
    ),
    "an unknown model's info": ("GET", "/v1/models/nope", None, "application/json", 404, "unknown model 'nope'"),
}


@pytest.mark.parametrize(
    ("method", "path", "body", "kind", "status", "says"), list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS)
)
def test_bad_requests_get_4xx_with_one_json_line(server, method, path, body, kind, status, says):
    got, answer, headers = server.request(method, path, body, content_type=kind)
    assert got == status, answer
    assert headers["content-type"] == "application/json"
    assert set(answer) == {"error"} and says in answer["error"] and "\n" not in answer["error"]
    assert "Traceback" not in server.log.read_text()


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("wrong", 401), (TOKEN, 200)])
def test_the_bearer_token_protects_every_route_but_the_probes(server, token, status):
    for path in ("/v1/models", f"/v1/models/{MODEL_NAME}", "/metrics"):
        got, answer, headers = server.request("GET", path, token=token)
        assert got == status, (path, answer)
        if status == 401:
            assert answer == {"error": "missing or wrong bearer token (Authorization: Bearer …)"}
            assert headers["www-authenticate"] == "Bearer"
    got, _, _ = server.predict(records(ROWS.head(1)), token=token)
    assert got == status
    for probe in ("/livez", "/readyz"):
        assert server.request("GET", probe, token=token)[0] == 200


# -- hot reload under traffic --------------------------------------------------------------------


@dataclass
class Traffic:
    """Clients that send requests without pause and record (time, status, version) of each answer."""

    server: Server
    clients: int = 4
    answers: list[tuple[float, int, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    logged: dict[str, str] = field(default_factory=dict)  # request id -> the version that answered
    sent: set[str] = field(default_factory=set)  # every request id sent, answered or not

    def __enter__(self) -> Traffic:
        self.threads = [threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(self.clients)]
        for thread in self.threads:
            thread.start()
        return self

    def _send(self, client: int) -> None:
        body = json.dumps(records(ROWS.head(5))).encode()
        number = 0
        while not self.stop.is_set():
            request_id = f"traffic-{client}-{number}"
            number += 1
            self.sent.add(request_id)
            try:
                status, answer, _ = self.server.predict(body, headers={"X-Request-ID": request_id})
                version = answer.get("version") if isinstance(answer, dict) else None
                if status == 200:
                    self.logged[answer["request_id"]] = version
            except Exception as exc:  # noqa: BLE001 - a dropped connection is a failed request
                status, version = -1, repr(exc)
            self.answers.append((time.monotonic(), status, version))

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def wait_for(self, version: str, since: float, timeout: float = 30) -> float:
        """Seconds from ``since`` to the first answer from ``version``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [t for t, status, v in list(self.answers) if v == version and t >= since]
            if hits:
                return hits[0] - since
            time.sleep(0.05)
        raise AssertionError(f"no answer from {version} within {timeout} s")


RELOAD_S = 1.0


def tamper_a_copy(store, name: str, version: str) -> str:
    """A new version that is the given one with its artifact changed after its sha256 was recorded."""
    model, original = store.load(name, version=version)
    fake = store.save_version(
        name,
        model,
        {**{k: v for k, v in original.metadata.items() if k not in ("version", "sha256", "created_at", "identity")}},
    )
    key = f"{name}/{fake.version}/model.joblib"
    store.write_bytes(key, store.read_bytes(key) + b"\0")
    return fake.version


def hot_reload_under_traffic(platform: Platform, server: Server, env: dict[str, str]) -> Traffic:
    store = platform.store
    first = store.production(MODEL_NAME).version
    with Traffic(server) as traffic:
        time.sleep(1.0)
        # The pipeline promotes a new version (other hyperparameters: another model, same data).
        retrain = platform.materialize(
            "key:demo/trained_model+",
            END_DAY,
            {"ops": {"demo__trained_model": {"config": {"n_estimators": 30, "max_depth": 6}}}},
        )
        assert retrain.success, step_errors(retrain)
        second = store.production(MODEL_NAME).version
        assert second != first
        promoted = time.monotonic()
        traffic.wait_for(second, promoted)
        # ml-platform rollback moves it back.
        back = subprocess.run(
            [str(BIN / "ml-platform"), "rollback", "--reason", "test"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert back.returncode == 0, back.stderr
        rolled = time.monotonic()
        traffic.wait_for(first, rolled)
        # A tampered version is pointed at: refused, the rolled-back version keeps serving.
        tampered = tamper_a_copy(store, MODEL_NAME, second)
        store.promote(MODEL_NAME, tampered, reason="tampered on purpose")

        def refused():
            status, ready, _ = server.request("GET", "/readyz", token=None)
            model = ready["models"][MODEL_NAME] if status == 200 else {}
            return model if f"refused {tampered}" in (model.get("problem") or "") else None

        model = until(refused, f"the server refusing {tampered}")
        assert "ModelIntegrityError" in model["problem"] and model["version"] == first
        seen = time.monotonic()  # the refusal seen: answers go on, from the rolled-back version
        until(lambda: any(t > seen for t, _, _ in list(traffic.answers)), "an answer after the refusal")
    failed = [(status, version) for _, status, version in traffic.answers if status != 200]
    assert failed == [] and len(traffic.answers) > 50
    served = {version for _, _, version in traffic.answers}
    assert served == {first, second} and tampered not in served
    assert f"refused {tampered}" in server.log.read_text()
    return traffic


def assert_every_answer_logged(store, traffic: Traffic) -> None:
    """After the server stopped: each answered request in the prediction log, 5 rows each, with the
    version that answered it, on both sides of each swap; and the day as served[day] and outcomes
    read it from this store (local or S3): the same requests, versions and ids."""
    from ml_platform import outcomes
    from ml_platform import traffic as day_traffic
    from ml_platform.serving.prediction_log import read_log

    logged = read_log(store.read_bytes, store.list_children, MODEL_NAME)
    counts = logged.groupby("request_id").size()
    assert set(counts.index) == set(traffic.logged) and (counts == 5).all()
    versions = logged.groupby("request_id")["version"].first().to_dict()
    assert versions == traffic.logged and len(set(versions.values())) == 2

    days = day_traffic.logged_days(store.list_children, MODEL_NAME)  # one, or two across midnight
    frame = pd.concat([day_traffic.read_day(store.read_bytes, store.list_children, MODEL_NAME, d) for d in days])
    summary = day_traffic.summarize(frame)
    assert summary.requests == len(traffic.logged) and summary.rows == 5 * len(traffic.logged)
    assert {v["Version"]: v["Requests"] for v in summary.versions} == pd.Series(traffic.logged).value_counts().to_dict()
    ids = outcomes.logged_ids(store.read_bytes, store.list_children, MODEL_NAME, days)
    assert set(ids["request_id"]) == set(traffic.logged) and len(ids) == summary.rows


def test_hot_reload_under_traffic_on_the_local_store(tmp_path, instance):
    platform = Platform(
        root=tmp_path,
        landing=tmp_path / "landing",
        store_dir=tmp_path / "model_store",
        assets_dir=tmp_path / "assets",
        instance=instance,
    )
    platform.seed()
    assert platform.ingest_range(DAYS).success and platform.train().success
    env = {**os.environ, "ML_PLATFORM_MODEL_STORE_DIR": str(platform.store_dir), "ML_PLATFORM_SERVE_TOKEN": TOKEN}
    server = start_server(env, tmp_path / "serve.log", "--model", MODEL_NAME, "--reload-interval", str(RELOAD_S))
    try:
        traffic = hot_reload_under_traffic(platform, server, env)
    finally:
        server.stop()
    assert_every_answer_logged(platform.store, traffic)  # across the swaps; on S3 in the S3 test


def test_hot_reload_under_traffic_on_s3(s3_server, tmp_path, instance):
    from ml_platform_tests.support.s3 import s3_platform_on

    platform = s3_platform_on(s3_server, tmp_path, instance)
    platform.seed()
    assert platform.ingest_range(DAYS).success and platform.train().success
    env = {**os.environ, **s3_server.env(platform.prefix), "ML_PLATFORM_SERVE_TOKEN": TOKEN}
    server = start_server(env, tmp_path / "serve.log", "--model", MODEL_NAME, "--reload-interval", str(RELOAD_S))
    try:
        traffic = hot_reload_under_traffic(platform, server, env)
    finally:
        server.stop()
    assert_every_answer_logged(platform.store, traffic)  # across the swaps; on S3 in the S3 test


def test_sighup_reloads_at_once_and_a_model_without_production_is_not_ready(deployed_store, tmp_path):
    store_dir = tmp_path / "store"
    shutil.copytree(deployed_store, store_dir)
    env = {**os.environ, "ML_PLATFORM_MODEL_STORE_DIR": str(store_dir)}
    server = start_server(
        env, tmp_path / "serve.log", "--model", MODEL_NAME, "--model", "churn", "--reload-interval", "3600", ready=False
    )
    try:
        status, ready, _ = server.request("GET", "/readyz", token=None)
        assert status == 503 and ready["ready"] is False
        assert ready["models"]["churn"] == {"version": None, "problem": "model 'churn' has no production version yet"}
        status, answer, _ = server.predict(records(ROWS.head(1)), model="churn", token=None)
        assert status == 503 and "model 'churn' is not ready" in answer["error"]

        from ml_platform.backends.local import LocalModelStore

        store = LocalModelStore(root=str(store_dir))
        first = store.production(MODEL_NAME).version
        copy = store.save_version(
            MODEL_NAME, store.load(MODEL_NAME)[0], {**store.production(MODEL_NAME).metadata, "identity": None}
        )
        store.promote(MODEL_NAME, copy.version, reason="test")
        time.sleep(1.5)  # an hour between polls: nothing moves by itself
        assert server.predict(records(ROWS.head(1)), token=None)[1]["version"] == first
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while server.predict(records(ROWS.head(1)), token=None)[1]["version"] != copy.version:
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.1)
        assert "SIGHUP" in server.log.read_text()
    finally:
        server.stop()


def test_several_workers_share_the_port_their_metrics_and_the_log(deployed_store, tmp_path):
    """Two workers on one port: the answers, /metrics summed over both, and every answered request
    in the prediction log once (each worker writes its own parts, named by its process id)."""
    store_dir = tmp_path / "store"
    shutil.copytree(deployed_store, store_dir)
    shutil.rmtree(store_dir / MODEL_NAME / "prediction_log", ignore_errors=True)  # other servers' logs
    args = ("--store-dir", str(store_dir), "--model", MODEL_NAME, "--workers", "2", "--log-flush-s", "600")
    server = start_server(dict(os.environ), tmp_path / "serve.log", *args)
    sent: list[str] = []

    def client(worker: int) -> None:
        for i in range(10):
            request_id = f"worker-test-{worker}-{i}"
            status, answer, _ = server.predict(records(ROWS.head(2)), token=None, headers={"X-Request-ID": request_id})
            assert status == 200, answer
            sent.append(request_id)

    try:
        threads = [threading.Thread(target=client, args=(w,)) for w in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        status, text, _ = server.request("GET", "/metrics", token=None)
        line = next(
            x
            for x in text.splitlines()
            if x.startswith('ml_platform_http_requests_total{route="/v1/models/{name}/predict",status="200"}')
        )
        assert float(line.split()[-1]) == 30.0  # summed over both workers
        workers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == server.process.pid]
        assert len(workers) >= 2
    finally:
        server.stop()
    assert server.process.returncode is not None
    logged = logged_rows(store_dir)
    assert sorted(logged["request_id"].unique()) == sorted(sent)  # every answer, through SIGTERM's flush
    assert (logged.groupby("request_id").size() == 2).all()  # each request's 2 rows, once
    parts = list((store_dir / MODEL_NAME / "prediction_log").rglob("*.parquet"))
    writers = {p.name.split("-")[1] for p in parts}
    assert writers <= {w.name for w in workers}, (writers, workers)  # each part written by one of the workers


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_the_kubernetes_deployment_runs_a_command_the_cli_takes_and_probes_real_routes():
    import yaml

    from ml_platform.cli.main import build_parser

    documents = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "serving.yaml").read_text()))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["ml-platform", "serve"]
    args = build_parser().parse_args(command[1:])
    assert (args.host, args.port, args.workers) == ("0.0.0.0", 8000, 2)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert {"secretRef": {"name": "ml-platform-serve"}} in container["envFrom"]


# -- the prediction log ----------------------------------------------------------------------------
LOGGED_PIPELINES = f"""\
pipelines:
  - name: demo
    model_name: {MODEL_NAME}
    serving: {{log: {{exclude: ["mean area"]}}}}
"""


SERVED_AT = "2026-02-03T23:59:30+00:00"  # ML_PLATFORM_CLOCK: the time the server answers at


def logged_rows(store_dir: Path) -> pd.DataFrame:
    """Every row of the served model's prediction log in a local store."""
    from ml_platform.backends.local import LocalModelStore
    from ml_platform.serving.prediction_log import read_log

    store = LocalModelStore(root=str(store_dir))
    return read_log(store.read_bytes, store.list_children, MODEL_NAME)


def metric_value(text: str, name: str, **labels: str) -> float:
    """A sample of the Prometheus text /metrics answers; 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(part in line for part in wanted.split(",")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_every_answered_request_is_in_the_prediction_log_and_sigterm_loses_none(deployed_store, tmp_path):
    store_dir = tmp_path / "store"
    shutil.copytree(deployed_store, store_dir)
    shutil.rmtree(store_dir / MODEL_NAME / "prediction_log", ignore_errors=True)  # other servers' logs
    (tmp_path / "pipelines.yaml").write_text(LOGGED_PIPELINES)
    env = {
        **os.environ,
        "ML_PLATFORM_SERVE_TOKEN": TOKEN,
        "ML_PLATFORM_PIPELINES": str(tmp_path / "pipelines.yaml"),
        "ML_PLATFORM_CLOCK": SERVED_AT,  # the server's today: one day, at any hour the test runs
    }
    # A flush interval longer than the test: every row reaches the log through SIGTERM's flush.
    args = ("--store-dir", str(store_dir), "--model", MODEL_NAME, "--log-flush-s", "600")
    server = start_server(env, tmp_path / "serve.log", *args)
    sent: dict[str, tuple[int, list]] = {}
    lock = threading.Lock()

    def client(worker: int) -> None:
        for i in range(10):
            rows = ROWS.iloc[(worker + i) % 15 : (worker + i) % 15 + 1 + i % 4]
            headers = {"X-Request-ID": f"client-{worker}-{i}"} if i % 2 else {}
            body = json.dumps(records(rows)).encode()
            request = urllib.request.Request(
                f"{server.url}/v1/models/{MODEL_NAME}/predict" + ("?proba=true" if i % 3 == 0 else ""),
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}", **headers},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
                assert response.headers["X-Request-ID"] == answer["request_id"]
            if headers:
                assert answer["request_id"] == headers["X-Request-ID"]
            with lock:
                sent[answer["request_id"]] = (len(rows), answer["predictions"], answer["version"])

    try:
        threads = [threading.Thread(target=client, args=(w,)) for w in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Refused by the signature check: logged as refused, 20 rows, no prediction.
        status, _, _ = server.predict(records(ROWS.drop(columns=["mean radius"])), headers={"X-Request-ID": "bad"})
        assert status == 422
        assert not (store_dir / MODEL_NAME / "prediction_log").exists()  # nothing written yet
    finally:
        server.stop()  # SIGTERM: what is queued is written before the process ends
    assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()
    everything = logged_rows(store_dir)
    refused = everything[everything["refused"].notna()]
    assert set(refused["request_id"]) == {"bad"} and len(refused) == len(ROWS)
    assert "mean radius" in refused["refused"].iloc[0] and refused["prediction"].isna().all()
    logged = everything[everything["refused"].isna()]
    assert len(sent) == 60 and set(logged["request_id"]) == set(sent)  # every answered request, none missing
    for request_id, group in logged.groupby("request_id"):
        rows, predictions, version = sent[request_id]
        assert len(group) == rows and group.sort_values("row")["prediction"].tolist() == predictions
        assert set(group["version"]) == {version}
    assert "mean area" not in logged.columns and "mean radius" in logged.columns  # serving.log.exclude
    assert (logged["latency_ms"] > 0).all() and logged["proba_1"].notna().any()

    assert (everything["logged_at"] == pd.Timestamp(SERVED_AT)).all()  # answered on the server's clock

    # `ml-platform monitor` reads today's log at once: the same requests, rows and refusals.
    (today,) = cli_json(env, "monitor", "--model", MODEL_NAME, "--store-dir", str(store_dir), "--json")
    assert today["day"] == SERVED_AT[:10]
    assert today["requests"] == 61 and today["rows"] == len(everything) and today["refused_rows"] == len(ROWS)
    assert today["signature_share"] == pytest.approx(1 - len(ROWS) / len(everything))
    assert today["version_names"] == sorted({v for _, _, v in sent.values()}) and "mean area" not in today["drifted"]


def test_an_unwritable_log_never_fails_a_request_and_is_counted(deployed_store, tmp_path):
    store_dir = tmp_path / "store"
    shutil.copytree(deployed_store, store_dir)
    shutil.rmtree(store_dir / MODEL_NAME / "prediction_log", ignore_errors=True)  # other servers' logs
    (store_dir / MODEL_NAME / "prediction_log").write_text("a file where the log's folder should be")
    env = {**os.environ, "ML_PLATFORM_SERVE_TOKEN": TOKEN}
    args = ("--store-dir", str(store_dir), "--model", MODEL_NAME, "--log-flush-s", "0.2")
    server = start_server(env, tmp_path / "serve.log", *args)
    try:
        for _ in range(5):
            status, answer, _ = server.predict(records(ROWS.head(3)))
            assert status == 200, answer
        deadline = time.monotonic() + 10
        dropped = 0.0
        while time.monotonic() < deadline and dropped < 15:
            time.sleep(0.2)
            _, text, _ = server.request("GET", "/metrics")
            dropped = metric_value(text, "ml_platform_prediction_log_rows_total", model=MODEL_NAME, outcome="dropped")
        assert dropped == 15
    finally:
        server.stop()
    assert "the prediction log could not write" in (tmp_path / "serve.log").read_text()


def test_sigkill_loses_only_what_the_log_had_not_written(deployed_store, tmp_path):
    """SIGKILL under traffic: every request whose part was written before the kill is still in the
    log, whole (its five rows, the version that answered it); nothing is in the log that was not sent
    (a request in flight at the kill may be logged without its answer arriving); what is lost was
    answered after the parts the test saw written."""
    store_dir = tmp_path / "store"
    shutil.copytree(deployed_store, store_dir)
    shutil.rmtree(store_dir / MODEL_NAME / "prediction_log", ignore_errors=True)  # other servers' logs
    env = {**os.environ, "ML_PLATFORM_SERVE_TOKEN": TOKEN}
    args = ("--store-dir", str(store_dir), "--model", MODEL_NAME, "--log-flush-s", "0.3")
    server = start_server(env, tmp_path / "serve.log", *args)
    with Traffic(server) as traffic:
        until(lambda: len(traffic.logged) >= 40, "40 answered requests")
        written_before = dict(traffic.logged)  # answered before this point: flushed before the kill
        until(lambda: set(written_before) <= set(logged_rows(store_dir)["request_id"]), "their parts written")
        server.process.kill()  # no shutdown: what was not flushed yet is lost
        server.process.wait()
    answered = dict(traffic.logged)
    logged = logged_rows(store_dir)
    assert set(written_before) <= set(logged["request_id"]) <= traffic.sent
    assert (logged.groupby("request_id").size() == 5).all()  # no request half written
    versions = logged.groupby("request_id")["version"].first().to_dict()
    assert all(versions[request_id] == answered[request_id] for request_id in set(versions) & set(answered))
    lost = set(answered) - set(logged["request_id"])
    print(f"SIGKILL under traffic: {len(lost)} of {len(answered)} answered requests not in the log")
