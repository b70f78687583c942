"""`ml-platform serve` answering through each version's compiled form (``ml_platform.compiled``: rows
planned without pandas, trees walked in NumPy) exactly as scikit-learn answers, as a real process
driven by real HTTP clients from several threads.

One local model store and one server for the module (``support/compiled_models.py``): every built-in
estimator fitted on a table that looks real (missing values in bursts, 400 products, a store id
declared categorical, a boolean with nulls, 15 % positives), its parity recorded as deploy records
it; a twin of each served by scikit-learn; a model with a declared datetime column; a forest whose
compiled form disagrees with scikit-learn (its parity checked with its probabilities off by 1e-3).

- thousands of fresh rows (unseen categories, missing values, extra columns), one and fifty rows a
  request, answered as scikit-learn answers the same rows in this process: labels equal, values and
  probabilities within 1e-9 relatively; GET /v1/models/NAME says which path serves each version;
- bad requests get the same status and the same sentence from a compiled model and from its twin,
  and rows they accept the same answer and report;
- a version whose compiled form disagreed is served by scikit-learn, and `ml-platform models` and
  `ml-platform production` say so, and why.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from ml_platform.compiled import TOLERANCE
from ml_platform.errors import SignatureError
from ml_platform.signature import check_rows
from ml_platform_tests.support.compiled_models import (
    DATETIME,
    ESTIMATORS,
    LABEL,
    SPEND,
    Served,
    build_store,
    orders,
    records,
)
from ml_platform_tests.support.constants import BIN, ROOT
from ml_platform_tests.support.serve_process import TOKEN, Server, start_server

pytestmark = pytest.mark.cli

COMPILED = [f"{task}_{estimator}" for task, estimator, _ in ESTIMATORS]
BY_SCIKIT_LEARN = ["datetime_forest", "disagreeing_forest"]
# Fresh rows per model, half of them one a request, the rest BATCH_ROWS a request: fewer for the models
# scikit-learn serves (some 10 ms a request where a compiled form takes well under one).
FRESH_ROWS = {"compiled": 2000, "scikit-learn": 400}
BATCH_ROWS = 50
CLIENTS = 4


@dataclass
class Deployed:
    store_dir: Path
    models: dict[str, Served]
    versions: dict[str, str]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Deployed:
    store_dir = tmp_path_factory.mktemp("compiled") / "model_store"
    models = build_store(store_dir, orders(4000, seed=1), orders(1000, seed=2))
    versions = {name: json.loads((store_dir / name / "production.json").read_text())["version"] for name in models}
    return Deployed(store_dir, models, versions)


@pytest.fixture(scope="module", autouse=True)
def one_thread_per_call():
    """scikit-learn's answers in this process computed on one thread: HistGradientBoosting's OpenMP
    threads cost tens of milliseconds a call on a busy machine (and give the same answers)."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def server(deployed, tmp_path_factory) -> Server:
    """One server of every model of the store, with a token and its prediction log."""
    log = tmp_path_factory.mktemp("compiled_serve") / "serve.log"
    env = {**os.environ, "ML_PLATFORM_SERVE_TOKEN": TOKEN}
    models = [arg for name in deployed.models for arg in ("--model", name)]
    running = start_server(env, log, "--store-dir", str(deployed.store_dir), *models)
    yield running
    running.stop()


def cli(deployed: Deployed, *args: str) -> str:
    shown = subprocess.run(
        [str(BIN / "ml-platform"), *args],
        env={**os.environ, "ML_PLATFORM_MODEL_STORE_DIR": str(deployed.store_dir)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


# -- what scikit-learn answers ----------------------------------------------------------------------
def sklearn_answer(served: Served, rows: Any) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """scikit-learn's own answer to ``rows`` in this process: the signature check, then the Pipeline."""
    frame, report = check_rows(rows, served.signature)
    predictions = np.asarray(served.model.predict(frame))
    probabilities = served.model.predict_proba(frame) if served.classifier else None
    return predictions, probabilities, report.to_dict()


def assert_close(got: Any, expected: np.ndarray, what: str) -> None:
    """Within the compiled form's tolerance: TOLERANCE relatively, or absolutely below 1."""
    got = np.asarray(got, dtype=float)
    assert got.shape == expected.shape, what
    bound = TOLERANCE * np.maximum(np.abs(expected), 1.0)
    worst = np.abs(got - expected) - bound
    assert (worst <= 0).all(), f"{what}: off by up to {np.abs(got - expected).max():.3g}"


def assert_answered_alike(served: Served, answer: dict, predictions: np.ndarray, probabilities, what: str) -> None:
    if served.classifier:
        assert answer["predictions"] == predictions.tolist(), what
    else:
        assert_close(answer["predictions"], predictions.astype(float), f"{what}: values")
    if "probabilities" in answer:
        assert answer["classes"] == [str(c) for c in served.model.classes_], what
        assert_close(answer["probabilities"], probabilities, f"{what}: probabilities")


# -- thousands of fresh rows ------------------------------------------------------------------------
@dataclass
class Sent:
    model: str
    rows: list[dict]
    proba: bool
    sample: bool = False  # also answered by scikit-learn on its own (its report compared)
    status: int = 0
    answer: Any = None


def requests_of(served: Served, seed: int, count: int) -> list[Sent]:
    """``count`` fresh rows of the model's columns and more (an id, a note, the other models' columns),
    half of them one a request, the rest BATCH_ROWS a request; a classifier asked for probabilities on
    every third request; some requests also answered by scikit-learn on their own."""
    frame = orders(count, seed, fresh=True).drop(columns=[LABEL, SPEND])
    rows = json.loads(json.dumps(records(frame)))  # as the server reads them
    singles = count // 2
    sent = [Sent(served.name, [row], False, sample=i % 50 == 0) for i, row in enumerate(rows[:singles])]
    sent += [
        Sent(served.name, rows[start : start + BATCH_ROWS], False, sample=start % (4 * BATCH_ROWS) == 0)
        for start in range(singles, count, BATCH_ROWS)
    ]
    for index, item in enumerate(sent):
        item.proba = served.classifier and index % 3 == 0
    return sent


class Clients:
    """CLIENTS threads, each with its own keep-alive connection to the server (as a load balancer's)."""

    def __init__(self, server: Server):
        self.port = int(server.url.rsplit(":", 1)[1])
        self.local = threading.local()
        self.connections: list[http.client.HTTPConnection] = []

    def send(self, item: Sent) -> None:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.connections.append(connection)
        query = "?proba=true" if item.proba else ""
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
        connection.request("POST", f"/v1/models/{item.model}/predict{query}", json.dumps(item.rows), headers)
        answer = connection.getresponse()
        item.status, item.answer = answer.status, json.loads(answer.read())

    def send_all(self, sent: list[Sent]) -> None:
        """Every request, from CLIENTS threads at once (the server batches those that arrive together)."""
        order = np.random.default_rng(0).permutation(len(sent))
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(self.send, [sent[i] for i in order]))

    def close(self) -> None:
        for connection in self.connections:
            connection.close()


def check_answers(served: Served, version: str, sent: list[Sent]) -> None:
    """Each answer against scikit-learn's on the same rows: all of a model's rows predicted at once,
    the sampled requests on their own too; the report of every request of many rows and of the sampled ones."""
    predictions, probabilities, _ = sklearn_answer(served, [row for item in sent for row in item.rows])
    start = 0
    for index, item in enumerate(sent):
        what = f"{served.name} request {index} ({len(item.rows)} rows)"
        assert item.status == 200, (what, item.answer)
        assert item.answer["version"] == version, what
        end = start + len(item.rows)
        part = probabilities[start:end] if probabilities is not None else None
        assert_answered_alike(served, item.answer, predictions[start:end], part, what)
        assert ("probabilities" in item.answer) == item.proba, what
        start = end
        if item.sample:
            alone, alone_probabilities, report = sklearn_answer(served, item.rows)
            assert_answered_alike(served, item.answer, alone, alone_probabilities, f"{what}, alone")
            assert item.answer["report"] == report, what
        elif len(item.rows) > 1:
            assert item.answer["report"] == check_rows(item.rows, served.signature)[1].to_dict(), what


def test_each_version_says_which_path_serves_it(server, deployed):
    for name in COMPILED:
        status, described, _ = server.request("GET", f"/v1/models/{name}")
        assert status == 200 and described["ready"], described
        serving = described["serving"]
        assert serving["path"] == "compiled" and serving["reason"] is None, (name, serving)
        assert serving["rows"] == 1000 and serving["left_to_pandas"] == 0, (name, serving)
        twin = server.request("GET", f"/v1/models/{name}_twin")[1]["serving"]
        assert (twin["path"], twin["reason"]) == ("scikit-learn", "twin for the test"), twin
    serving = server.request("GET", "/v1/models/datetime_forest")[1]["serving"]
    assert serving["path"] == "scikit-learn" and "datetime" in serving["reason"], serving
    assert serving["reason"] == "a datetime column is read by pandas", serving
    assert deployed.models["datetime_forest"].signature.kinds[DATETIME] == "datetime"


def test_thousands_of_fresh_rows_are_answered_as_scikit_learn_answers_them(server, deployed):
    names = [*COMPILED, *BY_SCIKIT_LEARN]
    sent = {
        name: requests_of(deployed.models[name], 100 + i, FRESH_ROWS[deployed.models[name].parity.path])
        for i, name in enumerate(names)
    }
    clients = Clients(server)
    try:
        for name in names:  # one model at a time: scikit-learn's path would hold the others' requests up
            clients.send_all(sent[name])
    finally:
        clients.close()
    for name in names:
        check_answers(deployed.models[name], deployed.versions[name], sent[name])
    rows = sum(len(item.rows) for items in sent.values() for item in items)
    assert rows == FRESH_ROWS["compiled"] * len(COMPILED) + FRESH_ROWS["scikit-learn"] * len(BY_SCIKIT_LEARN)
    unseen = [item.answer["report"]["unseen_categories"] for item in sent["classification_random_forest"]]
    assert sum(u.get("product", 0) for u in unseen) > 20 and sum(u.get("store", 0) for u in unseen) > 20


# -- refusals ---------------------------------------------------------------------------------------
def bad_requests(rows: list[dict]) -> dict[str, Any]:
    """Requests the compiled form's plan leaves to the pandas path (which converts or refuses them), and
    some it takes, by what is in them."""
    one, columns = rows[0], list(rows[0])

    def with_(row: dict, **values: Any) -> dict:
        return {**row, **values}

    return {
        "a word in a numeric column": [with_(one, amount="lots")],
        "numeric text": [with_(one, amount=" 12.5 ")],
        "NaN as text": [with_(one, amount="NaN")],
        "a boolean in a numeric column": [with_(one, qty=True)],
        "a list in a numeric column": [with_(one, amount=[1, 2])],
        "a missing column": [{k: v for k, v in one.items() if k != "product"}],
        "a number far beyond the range (infinity is no JSON)": [with_(one, amount=1e308)],
        "a number far beyond the range in one of three rows": [rows[0], with_(rows[1], qty=-1e300), rows[2]],
        "a number outside the range": [with_(one, amount=1e6)],
        "an integer beyond 2**53": [with_(one, qty=2**60)],
        "an int in a text category": [with_(one, product=7)],
        "a boolean in a text category": [with_(one, product=False)],
        "an object in a text category": [with_(one, product={"sku": 1})],
        "empty text in a category": [with_(one, product="")],
        "a whole float as a store id": [with_(one, store=float(one["store"]))],
        "a fraction as a store id": [with_(one, store=101.5)],
        "a store id as text": [with_(one, store=str(one["store"]))],
        "a boolean as a store id": [with_(one, store=True)],
        "a store id beyond 2**53": [with_(one, store=2**60)],
        "an empty list": [],
        "1 for a boolean": [with_(one, member=1)],
        "0 for a boolean in one of three rows": [rows[0], with_(rows[1], member=0), rows[2]],
        "'yes' for a boolean": [with_(one, member="yes")],
        "a word in a boolean column": [with_(one, member="maybe")],
        "a row of nulls": [dict.fromkeys(columns)],
        "rows of different columns": [with_(rows[0], coupon="X"), {k: v for k, v in rows[1].items() if k != "amount"}],
        "columns and data": {"columns": columns, "data": [list(r.values()) for r in rows]},
        "a doubled column": {"columns": [*columns, "amount"], "data": [[*one.values(), 3.0]]},
        "columns and no data": {"columns": columns, "data": []},
    }


@pytest.mark.parametrize("name", COMPILED)
def test_a_compiled_model_refuses_and_converts_what_scikit_learn_does(server, deployed, name):
    """Each bad request: the same status and sentence from the compiled model and its scikit-learn twin
    (and from the signature check in this process); a request they take, the same answer and report."""
    served = deployed.models[name]
    rows = records(orders(3, seed=7)[served.signature.columns])
    outcomes = []
    for what, body in bad_requests(rows).items():
        query = "?proba=true" if served.classifier else ""
        status, answer, _ = server.predict(body, model=name, query=query)
        twin_status, twin, _ = server.predict(body, model=f"{name}_twin", query=query)
        assert (status, answer.get("error")) == (twin_status, twin.get("error")), what
        outcomes.append((what, status))
        if status != 200:
            with pytest.raises(SignatureError) as refused:
                check_rows(body, served.signature)
            assert (status, answer["error"]) == (422, str(refused.value)), what
            continue
        predictions, probabilities, report = sklearn_answer(served, body)
        assert answer["report"] == twin["report"] == report, what
        assert_answered_alike(served, answer, predictions, probabilities, what)
        assert_answered_alike(served, twin, predictions, probabilities, f"{what} (twin)")
    accepted = {what for what, status in outcomes if status == 200}
    assert {"numeric text", "1 for a boolean", "0 for a boolean in one of three rows", "a row of nulls"} <= accepted
    assert {"a word in a numeric column", "an empty list", "a missing column", "an int in a text category"}.isdisjoint(
        accepted
    )


# -- a compiled form that disagrees -----------------------------------------------------------------
def served_by_column(listing: str, version: str) -> str:
    """The "served by" value (the last column) of ``version``'s row in `ml-platform models`' table."""
    lines = listing.splitlines()
    assert any(line.rstrip().endswith("served by") for line in lines), listing
    return next(line for line in lines if line[2:].startswith(version)).split()[-1]


def test_a_version_whose_compiled_form_disagreed_is_served_by_scikit_learn(server, deployed):
    name = "disagreeing_forest"
    served, version = deployed.models[name], deployed.versions[name]
    reason = served.parity.reason
    assert served.parity.path == "scikit-learn" and served.parity.rows == 1000, served.parity
    assert reason == (
        "its compiled form (30 trees walked in NumPy) disagreed with scikit-learn on 1000 of 1000 test rows"
        " (probabilities differ by up to 0.001)"
    )
    assert deployed.models["classification_random_forest"].parity.path == "compiled"  # the same fitted model

    serving = server.request("GET", f"/v1/models/{name}")[1]["serving"]
    assert (serving["path"], serving["reason"]) == ("scikit-learn", reason), serving
    assert serving["max_difference"] == pytest.approx(1e-3)
    rows = json.loads(json.dumps(records(orders(200, seed=9, fresh=True))))
    predictions, probabilities, _ = sklearn_answer(served, rows)
    status, answer, _ = server.predict(rows, model=name, query="?proba=true")
    assert status == 200 and answer["version"] == version, answer
    assert_answered_alike(served, answer, predictions, probabilities, name)

    listing = cli(deployed, "models", "--model", name)
    assert served_by_column(listing, version) == "scikit-learn", listing
    assert f"  {version} is served by scikit-learn: {reason}" in listing.splitlines(), listing
    production = cli(deployed, "production", "--model", name)
    assert re.search(rf"^Served by\s*: scikit-learn: {re.escape(reason)}$", production, re.M), production


def test_the_cli_says_how_every_version_is_served(deployed):
    """`ml-platform models` over the whole store: each version's "served by", and why scikit-learn serves it."""
    listing = cli(deployed, "models")
    for name, version in deployed.versions.items():
        expected = deployed.models[name].parity.path
        assert served_by_column(listing, version) == expected, (name, listing)
        said = f"  {version} is served by scikit-learn: {deployed.models[name].parity.reason}"
        assert (said in listing.splitlines()) == (expected == "scikit-learn"), (name, listing)
    production = cli(deployed, "production", "--model", "classification_hist_gradient_boosting")
    compiled = (
        r"compiled \(30 trees walked, one row in Python, more in NumPy\): answered 1,000 test rows as scikit-learn did"
    )
    assert re.search(rf"^Served by\s*: {compiled} \(largest difference [0-9.e+-]+\)$", production, re.M), production


def test_the_server_logged_each_path_and_no_failure(server, deployed):
    log = server.log.read_text()
    for name, version in deployed.versions.items():
        path = "its compiled form" if name in COMPILED else f"scikit-learn ({deployed.models[name].parity.reason})"
        assert f"{name}: serving {version} through {path}" in log, (name, log[-3000:])
    assert "Traceback" not in log and not re.search(r"\bERROR\b", log), log[-3000:]
