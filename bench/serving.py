"""Serving benchmark: `ml-platform serve` beside the limit (the same call in-process) and MLflow's
scoring server (`mlflow models serve`) on the same models, in one run, against issue 35's goals; and
`ml-platform serve` with its prediction log on (the default) against the same server with `--no-log`.

Models (built as the pipeline builds them, `ml_platform.ml.make_model`): the demo model (a 100-tree
forest, max_depth 10, over the 30 breast cancer features), a 100-tree forest over 20 synthetic
features, and `hgb400`, a histogram gradient boosting classifier (default params) over a synthetic
table of 20,000 rows that looks real (`hgb_frame`: a number with missing values, an int, a category
of 400 text values, a small category with missing values, a boolean). Each version is fitted on 75 %
of its table and records its parity (`ml_platform.compiled.parity_of`) on the 25 % held out, as the
pipeline does on its test split, so the server answers it through its compiled form (rows planned
without pandas, trees walked in NumPy) when that form answered those rows as scikit-learn did; the
bench logs which path each version got, and which one the server reports.

Per model: single-row requests from 1 client (p50, p99; and the server's own `latency_ms` of those
requests, read from the parquet parts its prediction log wrote during the run) and from 16 clients
(requests/s), 1,000-row requests from 4 clients (rows/s), each to `ml-platform serve` (one worker)
and MLflow, beside the same work in-process: the fitted Pipeline's predict (the limit before compiled
forms), and for one row the compiled path (`CheckedModel.checked`, then `predict_planned` with
probabilities, as the server answers). Then a second server with `--workers 2`: single rows from 16
clients, 1,000-row requests from 4. Load: wrk (Debian's package; installed when missing),
keep-alive connections. MLflow is installed by this bench in its own venv (bench/.mlflow-venv,
gitignored), never into the project; a model MLflow cannot save or serve is measured without it
(the reason printed and kept in the results).

`ml-platform serve` runs as a user starts it, so with its prediction log on: every answered request's
rows are written as parquet parts under `<model>/prediction_log/` of the model store it serves from
(flushed every `--log-flush-s`, 1 s by default); the bench models are not in pipelines.yaml, so
they are logged whole. Its cost is measured on its own, on the two forests: the same single-row
requests to two servers started for it, one as above (log on) and one with `--no-log` (same store,
models and flags otherwise), the two alternated on, off, off, on, with the rows the log wrote
meanwhile counted (its /metrics counter and the parquet parts) to show the log was on and dropped
nothing.

A rollout's shadow candidate (issue 34), on the two forests: each gets a second version (the same
forest fitted with another seed on the same data) as its candidate pointer, and two servers are
started from the store with a pipelines file naming both models (`monitoring: {}`): one with
`rollout: {strategy: shadow}` (production answers, the candidate predicts every request off the
request path, both are logged) and one without a rollout (production alone, the candidate pointer
ignored); single-row requests from 1 and 16 clients alternated shadow, off, off, shadow, as for the
log.

Run alone: `.venv/bin/python bench/serving.py [--seconds 10] [--only shadow] [--keep]`; `make bench` runs it
as the section "serving" (every part).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scaffold import BENCH, BIN, Row, free_port, logger, run_section

MLFLOW_VENV = BENCH / ".mlflow-venv"
MLFLOW_REQUIREMENT = "mlflow>=3,<4"  # pip takes the newest that installs beside our scikit-learn
BIG_ROWS = 1000
BIG_CLIENTS = 4  # 1,000-row requests come from this many clients (issue 35's goal)
RELOADS = 10
MODELS = ("demo", "forest20", "hgb400")
# The log on / off and the shadow candidate are measured on the two forests only: what they cost is
# the server's work beside the model's (and the section's time stays reasonable).
LOG_SHADOW_MODELS = ("demo", "forest20")
HGB_ROWS = 20_000
LABELS = {  # (in the comparison rows, in the log and shadow rows)
    "demo": ("demo model (100 trees, 30 features)", "demo model"),
    "forest20": ("100-tree forest, 20 features", "20-feature forest"),
    "hgb400": ("gradient boosting, 5 columns (a 400-value category)", "gradient boosting"),
}

TARGETS = {
    # p50 of one single-row request (1 client) at most 1.5x the in-process call plus 1 ms
    "serve_p50_factor": 1.5,
    "serve_p50_plus_ms": 1.0,
    # requests (or rows) per second at 16 clients at least 2x MLflow's
    "serve_throughput_vs_mlflow": 2.0,
    "serve_reload_errors": 0,
    # the prediction log on (the default) against --no-log, same server otherwise: p50 of one
    # single-row request (1 client) at most 1.10x, single-row requests per second (16 clients) at
    # least 0.90x
    "serve_log_p50_ratio": 1.10,
    "serve_log_throughput_ratio": 0.90,
    # a rollout's shadow candidate (every request predicted again off the request path, both logged)
    # against the same server without a candidate: the same two bounds
    "serve_shadow_p50_ratio": 1.10,
    "serve_shadow_throughput_ratio": 0.90,
    # issue 35's goals, every model served through its compiled form: p50 of one single-row request's
    # HTTP round trip (1 client), in ms; the server's own latency_ms of those requests (its prediction
    # log), p50, in ms; single-row requests per second at 16 clients (--workers 1 and 2); rows per
    # second of 1,000-row requests at 4 clients (--workers 1 and 2); the compiled path of one row
    # in-process (planned, then predicted with probabilities), p50, in ms
    "serve_one_p50_ms": 2.0,
    "serve_own_latency_p50_ms": 1.0,
    "serve_one_c16_requests_per_s": 1000.0,
    "serve_big_c4_rows_per_s": 200_000.0,
    "in_process_compiled_p50_ms": 0.5,
}
LOG_FLUSH_S = 1.0  # ml-platform serve's --log-flush-s, given explicitly (its default)


log = logger("bench serving", sys.stdout)


# -- models ------------------------------------------------------------------------------------
def forest(seed: int) -> dict:
    return {"n_estimators": 100, "max_depth": 10, "random_state": seed}


def model_specs(names: tuple[str, ...]) -> dict[str, tuple[pd.DataFrame, str, list[dict]]]:
    """Each bench model's table (the target in ``target``), estimator and the params of its versions."""
    from ml_platform.demo import breast_cancer_frame, synthetic_frame

    tables = {
        "demo": lambda: (breast_cancer_frame("target"), "random_forest", [forest(42), forest(7)]),
        "forest20": lambda: (
            synthetic_frame(5000, seed=0, target="target").drop(columns=["segment"]),
            "random_forest",
            [forest(42), forest(7)],
        ),
        "hgb400": lambda: (hgb_frame(), "hist_gradient_boosting", [{}]),
    }
    return {name: tables[name]() for name in names}


def hgb_frame(rows: int = HGB_ROWS, seed: int = 0) -> pd.DataFrame:
    """A table that looks real, for the gradient boosting model: ``amount`` (a skewed number, 8 %
    missing), ``visits`` (an int), ``city`` (400 text values, a few frequent and a long tail: the
    native encoding keeps the 254 most frequent, the rest share "(other)"), ``channel`` (4 values,
    10 % missing), ``member`` (a boolean); the binary ``target`` a noisy logistic function of all of
    them, the missing values included (a fitted model scores an AUC of about 0.75, not 1)."""
    rng = np.random.default_rng(seed)
    cities = np.array([f"city_{i:03d}" for i in range(400)], dtype=object)
    weights = 1.0 / np.arange(1, 401) ** 0.8
    city = rng.choice(400, size=rows, p=weights / weights.sum())
    amount, visits = rng.lognormal(3.5, 0.8, rows), rng.poisson(3, rows)
    channels = np.array(["web", "store", "phone", "partner"], dtype=object)
    channel = rng.choice(4, size=rows, p=[0.5, 0.3, 0.15, 0.05])
    member = rng.random(rows) < 0.35
    amount_missing, channel_missing = rng.random(rows) < 0.08, rng.random(rows) < 0.10
    score = (
        0.9 * (np.log(amount) - 3.5)
        + 0.25 * (visits - 3)
        + rng.normal(0, 0.8, 400)[city]
        + np.array([0.0, 0.4, -0.5, 0.8])[channel]
        + 0.6 * member
        + 0.7 * amount_missing
        - 0.4 * channel_missing
        - 0.3
    )
    return pd.DataFrame(
        {
            "amount": np.where(amount_missing, np.nan, amount.round(2)),
            "visits": visits.astype("int64"),
            "city": cities[city],
            "channel": np.where(channel_missing, None, channels[channel]),
            "member": member,
            "target": (rng.random(rows) < 1 / (1 + np.exp(-score))).astype("int64"),
        }
    )


def build_models(store_dir: Path, names: tuple[str, ...] = MODELS) -> dict[str, dict]:
    """The models ``names`` in a local model store, their first version promoted: demo and forest20
    have a second one (the same forest, seed 7: the reloads and the shadow candidate). Each version
    is fitted on 75 % of its table (stratified, seed 0) and records its parity (``compiled.parity_of``)
    on the other 25 %, the rows held out from its fit, as the pipeline records it on the test split:
    the server serves a version through its compiled form only when that answered them as
    scikit-learn did. The request bodies and the in-process calls draw from the whole table."""
    from sklearn.model_selection import train_test_split

    from ml_platform.backends.local import LocalModelStore

    store = LocalModelStore(root=str(store_dir))
    models = {}
    for name, (frame, estimator, params) in model_specs(names).items():
        x, y = frame.drop(columns=["target"]), frame["target"]
        fit_x, held_x, fit_y, _ = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
        versions = [save_fitted(store, name, estimator, p, (fit_x, fit_y), held_x) for p in params]
        store.promote(name, versions[0], reason="bench")
        models[name] = {"x": x, "versions": versions}
    return models


def save_fitted(store, name: str, estimator: str, params: dict, fit: tuple, held_x: pd.DataFrame) -> str:
    """One version of ``name`` fitted on ``fit`` (x, y), its parity checked on ``held_x``, stored."""
    from ml_platform.compiled import parity_of
    from ml_platform.ml import make_model
    from ml_platform.signature import infer_signature

    x, y = fit
    model = make_model("classification", estimator, params)
    model.fit(x, y)
    signature = infer_signature(x, "target", "classification", list(model.classes_))
    parity = parity_of(model, signature, held_x, classifier=True)
    metadata = {
        "task": "classification",
        "signature": signature.to_dict(),
        "metrics": {},
        "feature_columns": list(x.columns),
        "target": "target",
        "parity": parity.to_dict(),
    }
    version = store.save_version(name, model, metadata).version
    log(f"{name} {version}: serving path {parity.describe()}")
    return version


# -- load with wrk ---------------------------------------------------------------------------------
def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("installing wrk (Debian package)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "/usr/bin/wrk"


def wrk(url: str, body: bytes, clients: int, seconds: float, workdir: Path, headers: dict | None = None) -> dict:
    """One wrk run: POST ``body`` to ``url`` from ``clients`` keep-alive connections, for ``seconds``
    rounded to whole seconds (wrk takes no fraction), at least 1."""
    seconds = max(1, round(seconds))
    body_file = workdir / f"body-{abs(hash(body))}.json"
    body_file.write_bytes(body)
    script = workdir / "post.lua"
    header_lines = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    script.write_text(
        f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n{header_lines}'
    )
    threads = min(clients, 2)
    proc = subprocess.run(
        [
            ensure_wrk(),
            f"-t{threads}",
            f"-c{clients}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "30s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    result = parse_wrk(proc.stdout + proc.stderr)
    if result["p50_ms"] is None or result["requests_per_s"] is None:
        raise RuntimeError(f"wrk gave no figures (exit {proc.returncode}):\n{result['raw'][-3000:]}")
    return result


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> dict:
    result = {"raw": output}
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.M)
        result[f"p{pct}_ms"] = _ms(match.group(1)) if match else None
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    result["requests_per_s"] = float(match.group(1)) if match else None
    match = re.search(r"(\d+) requests in", output)
    result["requests"] = int(match.group(1)) if match else 0
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non_2xx"] = int(match.group(1)) if match else 0
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result["socket_errors"] = sum(map(int, match.groups())) if match else 0
    return result


# -- servers -------------------------------------------------------------------------------------
class Server:
    def __init__(
        self, command: list[str], port: int, env: dict, log_path: Path, ready_path: str, ready_body: bytes | None = None
    ):
        self.port, self.log_path = port, log_path
        self.process = subprocess.Popen(
            command, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[:3]} exited:\n{log_path.read_text()[-3000:]}")
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}{ready_path}",
                    data=ready_body,
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{command[:3]} not ready within 180 s:\n{log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def serve_command(store_dir: Path, port: int, *extra: str, models: tuple[str, ...] = MODELS) -> list[str]:
    """`ml-platform serve` of ``models`` from the bench's store (``extra``: e.g. ``--no-log``)."""
    named = [part for name in models for part in ("--model", name)]
    return [
        str(BIN / "ml-platform"),
        "serve",
        "--store-dir",
        str(store_dir),
        *named,
        "--port",
        str(port),
        "--reload-interval",
        "0.5",
        *extra,
    ]


def scrape(port: int, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The series of the metric ``name`` on a server's /metrics: labels -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    series = {}
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})?\s+(\S+)$", line)
        if match:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(1) or "")))
            series[labels] = float(match.group(2))
    return series


def metric(port: int, name: str, **labels: str) -> float:
    """The sum of the series of ``name`` that carry ``labels`` (0 when there is none)."""
    return sum(v for k, v in scrape(port, name).items() if set(labels.items()) <= set(k))


def log_counts(port: int, model: str) -> dict[str, float]:
    """What a server predicted for ``model`` and what its prediction log did with those rows."""
    return {
        "predicted": metric(port, "ml_platform_predicted_rows_total", model=model),
        "written": metric(port, "ml_platform_prediction_log_rows_total", model=model, outcome="written"),
        "dropped": metric(port, "ml_platform_prediction_log_rows_total", model=model, outcome="dropped"),
    }


def log_parts(store_dir: Path, model: str, pid: int) -> dict[str, int]:
    """The parquet parts of ``model``'s prediction log in the store written by the server process
    ``pid`` (one worker: the process itself; parts are named ``<UTC time>-<pid>-<n>.parquet``):
    path -> rows (parquet footer)."""
    import pyarrow.parquet as pq

    folder = store_dir / model / "prediction_log"
    return {
        str(path): pq.read_metadata(path).num_rows
        for path in sorted(folder.glob(f"*/*-{pid}-*.parquet"))
        if not path.name.startswith(".")  # the store's temporary files
    }


def settle_log(port: int, model: str, timeout_s: float = 120.0) -> float:
    """Wait until the prediction log of the server at ``port`` has written (or dropped) every row it
    predicted for ``model``; the seconds it took (after a load, what the log still had to write)."""
    started = time.monotonic()
    while True:
        counts = log_counts(port, model)
        if counts["written"] + counts["dropped"] >= counts["predicted"]:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"the prediction log of {model} did not catch up within {timeout_s:g} s: {counts}")
        time.sleep(0.1)


def mlflow_python() -> Path:
    """MLflow in its own venv (made once, kept in bench/.mlflow-venv)."""
    python = MLFLOW_VENV / "bin" / "python"
    import sklearn

    if python.exists():
        check = subprocess.run(
            [str(python), "-c", "import mlflow, sklearn; print(sklearn.__version__)"], capture_output=True, text=True
        )
        if check.returncode == 0 and check.stdout.strip() == sklearn.__version__:
            return python
        shutil.rmtree(MLFLOW_VENV)
    log(f"installing {MLFLOW_REQUIREMENT} in {MLFLOW_VENV} (its own venv; a few minutes, once)")
    subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
    # The same scikit-learn as the project's: the model pickle is loaded as it is.
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", MLFLOW_REQUIREMENT, f"scikit-learn=={sklearn.__version__}"],
        check=True,
    )
    return python


def mlflow_version(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import mlflow; print(mlflow.__version__)"], capture_output=True, text=True
    ).stdout.strip()


def mlflow_model(python: Path, artifact: Path, example: pd.DataFrame, out: Path) -> Path:
    """The same fitted Pipeline saved as an MLflow model (sklearn flavor, with a signature: MLflow
    then checks each request's schema, as ml-platform serve does)."""
    example_path = out.parent / f"{out.name}-example.parquet"
    example.to_parquet(example_path)
    code = (
        "import joblib, pandas as pd, mlflow.sklearn\n"
        "from mlflow.models import infer_signature\n"
        f"model = joblib.load({str(artifact)!r}); x = pd.read_parquet({str(example_path)!r})\n"
        "final = model.steps[-1][1]\n"
        "if 'n_jobs' in final.get_params(): final.set_params(n_jobs=1)\n"
        f"mlflow.sklearn.save_model(model, {str(out)!r}, signature=infer_signature(x, model.predict(x)),\n"
        "                         serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE)\n"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"saving the MLflow model failed:\n{done.stderr[-3000:]}")
    return out


# -- measures ------------------------------------------------------------------------------------
def timed_calls(calls: list[Callable[[], object]], seconds: float) -> dict:
    """Each of ``calls`` called again and again for ``seconds`` in a thread of its own (one client
    each): p50 and p99 of a call, calls per second."""
    latencies: list[list[float]] = [[] for _ in calls]
    deadline = time.perf_counter() + seconds

    def client(i: int) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            calls[i]()
            latencies[i].append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(calls))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    every = [v for part in latencies for v in part]
    return {
        "p50_ms": float(np.percentile(every, 50)),
        "p99_ms": float(np.percentile(every, 99)),
        "requests_per_s": len(every) / took,
        "requests": len(every),
    }


def in_process(model, x: pd.DataFrame, seconds: float, clients: int, rows: int) -> dict:
    """The limit as it was before compiled forms: the fitted Pipeline's predict of ``rows`` rows, in
    this process (``clients`` threads calling it)."""
    frames = [x.sample(rows, replace=True, random_state=i).reset_index(drop=True) for i in range(clients)]
    return timed_calls([functools.partial(model.predict, frame) for frame in frames], seconds)


def in_process_compiled(model, version, x: pd.DataFrame, seconds: float) -> dict:
    """One row through the compiled path in this process, as the server answers it: a JSON record
    (None for a missing value) planned by ``CheckedModel.checked``, then ``predict_planned`` with
    the probabilities (the server always asks a classifier for them: its log keeps them). The same
    row as ``in_process``'s single-row call. ``path`` says whether the compiled form answered."""
    from ml_platform.checked_model import CheckedModel
    from ml_platform.row_plan import PlannedRows

    checked = CheckedModel(model, version)
    rows = json.loads(x.sample(1, replace=True, random_state=0).to_json(orient="records"))
    planned, _ = checked.checked(rows)
    if not isinstance(planned, PlannedRows):
        return {"path": "scikit-learn", "reason": checked.compiled_problem or "the plan left the row to pandas"}

    def call() -> None:
        planned, _ = checked.checked(rows)
        checked.predict_planned(planned.matrix, proba=True)

    return {"path": "compiled", **timed_calls([call], seconds)}


def bodies(x: pd.DataFrame) -> dict[str, dict[str, bytes]]:
    one = x.head(1)
    big = x.sample(BIG_ROWS, replace=True, random_state=0)
    split = lambda f: json.loads(f.to_json(orient="split", index=False))  # noqa: E731
    return {
        "ours": {
            "one": json.dumps({"columns": split(one)["columns"], "data": split(one)["data"]}).encode(),
            "big": json.dumps({"columns": split(big)["columns"], "data": split(big)["data"]}).encode(),
        },
        "mlflow": {
            "one": json.dumps({"dataframe_split": split(one)}).encode(),
            "big": json.dumps({"dataframe_split": split(big)}).encode(),
        },
    }


def bench_serving(workdir: Path, seconds: float = 10.0, only: str | None = None) -> dict:
    """Every part of the section (``only="shadow"``: the shadow candidate's measure alone, without
    MLflow and the measures before it)."""
    from ml_platform.backends.local import LocalModelStore

    workdir.mkdir(parents=True, exist_ok=True)
    store_dir = workdir / "model_store"
    log("building the models")
    models = build_models(store_dir, LOG_SHADOW_MODELS if only == "shadow" else MODELS)
    store = LocalModelStore(root=str(store_dir))
    env = {**os.environ, "ML_PLATFORM_MODEL_STORE_DIR": str(store_dir)}
    env.pop("ML_PLATFORM_SERVE_TOKEN", None)
    results: dict = {"seconds_per_measure": seconds, "models": {}}
    if only != "shadow":
        results.update(against_mlflow(models, store, store_dir, env, workdir, seconds))
    # Last: MLflow and the servers above stopped.
    forests = {name: models[name] for name in LOG_SHADOW_MODELS}
    results["shadow"] = shadow_on_off(forests, store, store_dir, env, workdir, seconds)
    return results


def against_mlflow(models: dict, store, store_dir: Path, env: dict, workdir: Path, seconds: float) -> dict:
    """In-process, `ml-platform serve` and MLflow per model; `ml-platform serve --workers 2`; the
    log on / off; reloads under load."""
    python = mlflow_python()
    results: dict = {"models": {}, "mlflow": mlflow_version(python)}
    ours_port = free_port()
    # The prediction log on, as by default (--log-flush-s given: its default, as in log_on_off's servers).
    ours = Server(
        serve_command(store_dir, ours_port, "--log-flush-s", f"{LOG_FLUSH_S:g}", models=tuple(models)),
        ours_port,
        env,
        workdir / "serve.log",
        "/readyz",
    )
    try:
        for name, info in models.items():
            results["models"][name] = measure_model(name, info["x"], store, store_dir, python, ours, workdir, seconds)
        for name in models:
            settle_log(ours_port, name)  # the bench's server idle meanwhile, its log written
        for name, measured in two_workers(models, store_dir, env, workdir, seconds).items():
            results["models"][name].update(measured)
        forests = {name: models[name] for name in LOG_SHADOW_MODELS}
        results["log"] = log_on_off(forests, store_dir, env, workdir, seconds)
        results["reload"] = reload_under_load(store, models["demo"]["versions"], ours_port, workdir, seconds)
    finally:
        ours.stop()
    for measured in results["models"].values():
        for value in measured.values():
            if isinstance(value, dict):
                value.pop("raw", None)
    return results


def measure_model(
    name: str, x: pd.DataFrame, store, store_dir: Path, python: Path, ours: Server, workdir: Path, seconds: float
) -> dict:
    """One model in-process (the Pipeline; one row also through the compiled path), through
    `ml-platform serve` (``ours``, up) and through an MLflow scoring server started for it (left out,
    with why, when it cannot serve the model): single rows from 1 and 16 clients, ``BIG_ROWS``-row
    requests from ``BIG_CLIENTS``; the server's own latency of the 1-client single rows, read from
    its prediction log."""
    from ml_platform.serving.holder import for_requests

    sklearn_model, version = store.load(name)
    model = for_requests(sklearn_model)
    body = bodies(x)
    measured: dict = {"serving": served_path(ours.port, name)}
    mlflow = mlflow_for(name, python, store_dir / name / version.version / "model.joblib", x, workdir, body)
    if isinstance(mlflow, str):
        measured["mlflow_skipped"] = mlflow
    ours_url = f"http://127.0.0.1:{ours.port}/v1/models/{name}/predict"
    try:
        for kind, clients in (("one", 1), ("one", 16), ("big", BIG_CLIENTS)):
            log(f"{name}: {'single-row' if kind == 'one' else f'{BIG_ROWS}-row'} requests, {clients} client(s)")
            rows = 1 if kind == "one" else BIG_ROWS
            measured[f"limit_{kind}_c{clients}"] = in_process(model, x, seconds, clients, rows)
            if kind == "one" and clients == 1:
                measured["compiled_one_c1"] = in_process_compiled(model, version, x, seconds)
                measured["ours_one_c1"], measured["own_latency_one_c1"] = with_own_latency(
                    ours, name, store_dir, lambda: wrk(ours_url, body["ours"]["one"], 1, seconds, workdir)
                )
            else:
                measured[f"ours_{kind}_c{clients}"] = wrk(ours_url, body["ours"][kind], clients, seconds, workdir)
            if not isinstance(mlflow, str):
                url = f"http://127.0.0.1:{mlflow.port}/invocations"
                measured[f"mlflow_{kind}_c{clients}"] = wrk(url, body["mlflow"][kind], clients, seconds, workdir)
    finally:
        if not isinstance(mlflow, str):
            mlflow.stop()
    return measured


def served_path(port: int, name: str) -> dict:
    """How the server at ``port`` answers ``name``: its compiled form or scikit-learn, and why."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{name}", timeout=10) as response:
        serving = json.loads(response.read()).get("serving") or {}
    found = {k: serving.get(k) for k in ("path", "form", "reason")}
    log(f"{name}: ml-platform serve answers through {found['path']} ({found['form'] or found['reason']})")
    return found


def with_own_latency(server: Server, name: str, store_dir: Path, run: Callable[[], dict]) -> tuple[dict, dict]:
    """``run()`` (a wrk run on ``server``, one worker) and the server's own latency of the requests
    it answered meanwhile: the ``latency_ms`` of production's answered rows in the parquet parts its
    prediction log wrote for ``name`` during the run (the log settled before and after, so that those
    parts hold the run's rows and no others). ``latency_ms`` runs from the request's start in the
    server (its body not yet read) to its answer's predictions, logged before the answer is sent.
    The rows may outnumber wrk's requests by the few in flight when wrk stopped counting."""
    import pyarrow.parquet as pq

    settle_log(server.port, name)
    before = log_parts(store_dir, name, server.process.pid)
    measured = run()
    settle_log(server.port, name)
    parts = [path for path in log_parts(store_dir, name, server.process.pid) if path not in before]
    columns = ["role", "answered", "latency_ms"]
    frames = [pq.read_table(path, columns=columns).to_pandas() for path in parts]
    logged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    answered = logged.loc[(logged["role"] == "production") & logged["answered"].astype(bool), "latency_ms"]
    own = {"rows": len(answered), "parts": len(parts)}
    if len(answered):
        own.update(p50_ms=float(answered.quantile(0.5)), p99_ms=float(answered.quantile(0.99)))
    return measured, own


def mlflow_for(name: str, python: Path, artifact: Path, x: pd.DataFrame, workdir: Path, body: dict) -> Server | str:
    """An MLflow scoring server of the model stored at ``artifact``, or why there is none (saving it
    or starting it failed: MLflow is then left out for this model only, with the reason printed)."""
    try:
        # 500 rows: the missing values a column can hold are in the signature MLflow checks requests with.
        out = mlflow_model(python, artifact, x.head(500), workdir / f"mlflow-{name}")
        return start_mlflow(python, out, workdir, name, body["mlflow"]["one"])
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        log(f"{name}: MLflow left out for this model: {reason}")
        return reason


def two_workers(models: dict, store_dir: Path, env: dict, workdir: Path, seconds: float) -> dict:
    """`ml-platform serve --workers 2` (the same command and flags as the bench's server otherwise;
    that one, one worker, idle meanwhile): per model, a 1-second warm-up (both workers loaded and
    answering), then single rows from 16 clients and ``BIG_ROWS``-row requests from ``BIG_CLIENTS``."""
    port = free_port()
    log("starting ml-platform serve --workers 2")
    server = Server(
        serve_command(store_dir, port, "--log-flush-s", f"{LOG_FLUSH_S:g}", "--workers", "2", models=tuple(models)),
        port,
        env,
        workdir / "serve-workers2.log",
        "/readyz",
    )
    results: dict = {}
    try:
        for name, info in models.items():
            body, url = bodies(info["x"])["ours"], f"http://127.0.0.1:{port}/v1/models/{name}/predict"
            wrk(url, body["one"], 16, 1.0, workdir)  # warm-up, not kept
            log(f"{name}: --workers 2, single-row requests from 16 clients, {BIG_ROWS}-row from {BIG_CLIENTS}")
            results[name] = {
                "workers2_one_c16": wrk(url, body["one"], 16, seconds, workdir),
                f"workers2_big_c{BIG_CLIENTS}": wrk(url, body["big"], BIG_CLIENTS, seconds, workdir),
            }
    finally:
        server.stop()
    return results


def start_mlflow(python: Path, model: Path, workdir: Path, name: str, ready_body: bytes) -> Server:
    """`mlflow models serve` of ``model`` on a free port (MLflow's venv, its local env manager)."""
    port = free_port()
    mlflow_env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": str(workdir / "mlruns"),
        "PATH": f"{python.parent}:{os.environ['PATH']}",
    }
    log(f"{name}: starting mlflow models serve")
    command = [str(python.parent / "mlflow"), "models", "serve", "-m", str(model), "-h", "127.0.0.1"]
    command += ["-p", str(port), "--env-manager", "local"]
    return Server(command, port, mlflow_env, workdir / f"mlflow-{name}.log", "/invocations", ready_body)


def log_on_off(models: dict, store_dir: Path, env: dict, workdir: Path, seconds: float) -> dict:
    """The prediction log's cost: single-row requests, from 1 and 16 clients, to two servers started
    for this measure from the bench's store, the same command and flags (``serve_command``), one with
    its log on (the default) and one with ``--no-log``: same models, same age, same warm-up (the
    bench's own server, up since the start, has answered far more, 1,000-row requests included, so
    it is not the one compared). MLflow is stopped by then; both servers are up, one is loaded at a
    time. Per model and client count: a 1-second warm-up of each, then four runs of ``seconds / 2``
    (whole seconds, at least 1) in the order on, off, off, on, so that a drift of the machine weighs
    on both alike; each variant's p50 is the mean of its two runs' p50, its requests/s the mean of
    its two runs'. After each run the bench waits until the log has written every row the logged
    server predicted (``drain_s``: the longest wait), so no run pays for the previous one's writes.
    Rows: the logged server's /metrics counters over the four runs (rows predicted, and the log's
    rows written and dropped) and the rows of the parquet parts that appeared under
    ``<model>/prediction_log/`` meanwhile; the --no-log server's written rows (0 expected)."""
    flags = ("--log-flush-s", f"{LOG_FLUSH_S:g}")
    on_port, off_port = free_port(), free_port()
    log("starting ml-platform serve (prediction log on) and ml-platform serve --no-log")
    command = functools.partial(serve_command, store_dir, models=tuple(models))
    on = Server(command(on_port, *flags), on_port, env, workdir / "serve-log-on.log", "/readyz")
    try:
        off = Server(
            command(off_port, *flags, "--no-log"),
            off_port,
            env,
            workdir / "serve-log-off.log",
            "/readyz",
        )
    except BaseException:
        on.stop()
        raise
    results: dict = {"flush_s": LOG_FLUSH_S}
    try:
        for name, info in models.items():
            body = bodies(info["x"])["ours"]["one"]
            measured: dict = {}
            for clients in (1, 16):
                measured.update(on_off(name, body, clients, on, off, store_dir, workdir, seconds))
            measured["since_start"] = log_counts(on_port, name)  # warm-ups included
            results[name] = measured
    finally:
        off.stop()
        on.stop()
    return results


def on_off(
    name: str, body: bytes, clients: int, on: Server, off: Server, store_dir: Path, workdir: Path, seconds: float
) -> dict:
    """One model and client count of ``log_on_off``: the warm-ups, the four runs alternated, the rows."""
    urls = {server.port: f"http://127.0.0.1:{server.port}/v1/models/{name}/predict" for server in (on, off)}
    for port in (on.port, off.port):
        wrk(urls[port], body, clients, 1.0, workdir)  # warm-up, not kept
    settle_log(on.port, name)
    before, parts_before = log_counts(on.port, name), log_parts(store_dir, name, on.process.pid)
    off_before = log_counts(off.port, name)
    log(f"{name}: prediction log on / off, single-row, {clients} client(s)")
    variants = {"on": urls[on.port], "off": urls[off.port]}
    runs, drain = alternate(variants, body, clients, workdir, seconds, lambda: settle_log(on.port, name))
    after, parts_after = log_counts(on.port, name), log_parts(store_dir, name, on.process.pid)
    off_after = log_counts(off.port, name)
    measured = {f"{variant}_one_c{clients}": mean_of_runs(done) for variant, done in runs.items()}
    measured[f"rows_c{clients}"] = {
        **{k: after[k] - before[k] for k in after},
        "parquet_rows": sum(v for k, v in parts_after.items() if k not in parts_before),
        "parquet_parts": len(set(parts_after) - set(parts_before)),
        "off_predicted": off_after["predicted"] - off_before["predicted"],
        "off_written": off_after["written"] - off_before["written"],
        "drain_s": drain,
    }
    return measured


def alternate(
    urls: dict[str, str], body: bytes, clients: int, workdir: Path, seconds: float, settle: Callable[[], float]
) -> tuple[dict[str, list[dict]], float]:
    """Four wrk runs of ``seconds / 2`` (whole seconds, at least 1) on the two variants of ``urls``
    in the order first, second, second, first (a drift of the machine weighs on both alike), each
    followed by ``settle()`` (what the servers still had to do; its longest wait is returned)."""
    first, second = urls
    runs: dict[str, list[dict]] = {first: [], second: []}
    drain = 0.0
    for variant in (first, second, second, first):
        run = wrk(urls[variant], body, clients, max(1, round(seconds / 2)), workdir)
        run.pop("raw", None)
        runs[variant].append(run)
        drain = max(drain, settle())
    return runs, drain


def mean_of_runs(done: list[dict]) -> dict:
    """A variant's figures over its runs: mean p50, p99 and requests/s; total requests and errors."""
    return {
        "p50_ms": float(np.mean([r["p50_ms"] for r in done])),
        "p99_ms": float(np.mean([r["p99_ms"] for r in done])),
        "requests_per_s": float(np.mean([r["requests_per_s"] for r in done])),
        "requests": sum(r["requests"] for r in done),
        "errors": sum(r["non_2xx"] + r["socket_errors"] for r in done),
        "runs": done,
    }


def reload_under_load(store, versions: list[str], port: int, workdir: Path, seconds: float) -> dict:
    """16 clients without pause while production moves between two versions ``RELOADS`` times."""
    from ml_platform.demo import breast_cancer_frame

    x = breast_cancer_frame("target").drop(columns=["target"])
    body = bodies(x)["ours"]["one"]
    moves: list[str] = []

    def move() -> None:
        time.sleep(1.0)
        for i in range(RELOADS):
            target = versions[(i + 1) % 2]
            store.promote("demo", target, reason="bench reload")
            moves.append(target)
            time.sleep(1.5)

    mover = threading.Thread(target=move)
    mover.start()
    load = wrk(f"http://127.0.0.1:{port}/v1/models/demo/predict", body, 16, 1.0 + 1.5 * RELOADS + 1.0, workdir)
    mover.join()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    loaded = sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('ml_platform_model_reloads_total{model="demo",outcome="loaded"}')
    )
    load.pop("raw", None)
    return {"moves": len(moves), "reloads_loaded": loaded, **load, "errors": load["non_2xx"] + load["socket_errors"]}


# -- a rollout's shadow candidate ----------------------------------------------------------------
SHADOW_PIPELINE = """  - name: bench_{model}
    landing: bench_{model}
    model_name: {model}
    monitoring: {{}}
{rollout}"""


def shadow_pipelines(workdir: Path, models: list[str], shadow: bool) -> Path:
    """A pipelines file with a pipeline per bench model (its ``model_name``, ``monitoring: {}``), with
    ``rollout: {strategy: shadow}`` or no rollout (direct: the candidate pointer is not followed)."""
    rollout = "    rollout: {strategy: shadow}\n" if shadow else ""
    path = workdir / f"pipelines-{'shadow' if shadow else 'direct'}.yaml"
    path.write_text("pipelines:\n" + "".join(SHADOW_PIPELINE.format(model=m, rollout=rollout) for m in models))
    return path


def shadow_on_off(models: dict, store, store_dir: Path, env: dict, workdir: Path, seconds: float) -> dict:
    """A shadow candidate's cost: each model's second version (same forest, seed 7) made its candidate
    (``store.promote(..., role="candidate")``), and two servers started from the store, the same
    command and flags (``serve_command``, the prediction log on), one given a pipelines file with
    ``rollout: {strategy: shadow}`` and one with no rollout (production alone: the same server
    without a candidate). Per model, single-row requests from 1 and 16 clients: a 1-second warm-up of
    each, then four runs alternated shadow, off, off, shadow (``alternate``); after each run the bench
    waits until the shadow server's candidate has predicted every request production answered and
    both logs have written every row (``drain_s``: the longest wait). The candidate is closed
    (aborted) at the end."""
    proposed: list[str] = []
    servers: dict[str, Server] = {}
    try:
        for name, info in models.items():
            first, second = info["versions"]
            if store.pointer(name).version != first:  # the reloads moved it: production is the first again
                store.promote(name, first, reason="bench: production for the shadow measure")
            store.promote(name, second, reason="bench: shadow candidate", role="candidate")
            proposed.append(name)
        for variant in ("shadow", "off"):
            port, pipelines = free_port(), shadow_pipelines(workdir, list(models), variant == "shadow")
            log(f"starting ml-platform serve ({'rollout: shadow' if variant == 'shadow' else 'no rollout'})")
            servers[variant] = Server(
                serve_command(store_dir, port, "--log-flush-s", f"{LOG_FLUSH_S:g}", models=tuple(models)),
                port,
                {**env, "ML_PLATFORM_PIPELINES": str(pipelines)},
                workdir / f"serve-{variant}.log",
                "/readyz",
            )
        results: dict = {"flush_s": LOG_FLUSH_S}
        for name, info in models.items():
            results[name] = {"candidate": wait_candidate(servers["shadow"].port, name, info["versions"][1])}
            for clients in (1, 16):
                results[name].update(
                    shadow_runs(name, bodies(info["x"])["ours"]["one"], clients, servers, workdir, seconds)
                )
    finally:
        for server in servers.values():
            server.stop()
        for name in proposed:
            store.close_candidate(name, "aborted", "bench: shadow measured")
    return results


def wait_candidate(port: int, model: str, version: str, timeout_s: float = 60.0) -> str:
    """Wait until the server at ``port`` serves ``version`` as ``model``'s candidate (it is never
    needed for /readyz, so it may load after)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{model}", timeout=10) as response:
            described = json.loads(response.read())
        candidate = described.get("candidate") or {}
        if candidate.get("version") == version:
            return version
        if time.monotonic() > deadline:
            raise RuntimeError(f"{model}'s candidate {version} not served within {timeout_s:g} s: {described}")
        time.sleep(0.2)


def shadow_counts(port: int, model: str) -> dict[str, float]:
    """What the server at ``port`` predicted for ``model`` by role, the requests its candidate failed
    on, and the rows its prediction log wrote and dropped (one scrape of each metric)."""
    predicted = scrape(port, "ml_platform_predicted_rows_total")
    logged = scrape(port, "ml_platform_prediction_log_rows_total")
    failed = scrape(port, "ml_platform_candidate_failures_total")

    def total(series: dict, **labels: str) -> float:
        return sum(v for k, v in series.items() if set({"model": model, **labels}.items()) <= set(k))

    return {
        "production": total(predicted, role="production"),
        "candidate": total(predicted, role="candidate"),
        "candidate_failed": total(failed),
        "written": total(logged, outcome="written"),
        "dropped": total(logged, outcome="dropped"),
    }


def settle_shadow(port: int, model: str, timeout_s: float = 120.0) -> float:
    """Wait until the candidate of the server at ``port`` has predicted (or failed on) every row
    production predicted for ``model`` and the log has written (or dropped) the rows of both; the
    seconds it took."""
    started = time.monotonic()
    while True:
        c = shadow_counts(port, model)
        shadowed = c["candidate"] + c["candidate_failed"] >= c["production"]
        if shadowed and c["written"] + c["dropped"] >= c["production"] + c["candidate"]:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"the shadow of {model} did not catch up within {timeout_s:g} s: {c}")
        time.sleep(0.1)


def shadow_runs(
    name: str, body: bytes, clients: int, servers: dict[str, Server], workdir: Path, seconds: float
) -> dict:
    """One model and client count of ``shadow_on_off``: the warm-ups, the four runs, the rows."""
    shadow, off = servers["shadow"], servers["off"]
    urls = {v: f"http://127.0.0.1:{server.port}/v1/models/{name}/predict" for v, server in servers.items()}
    for url in urls.values():
        wrk(url, body, clients, 1.0, workdir)  # warm-up, not kept

    def settle() -> float:
        return settle_shadow(shadow.port, name) + settle_log(off.port, name)

    settle()
    before, off_before = shadow_counts(shadow.port, name), shadow_counts(off.port, name)
    log(f"{name}: shadow candidate on / off, single-row, {clients} client(s)")
    runs, drain = alternate(urls, body, clients, workdir, seconds, settle)
    after, off_after = shadow_counts(shadow.port, name), shadow_counts(off.port, name)
    measured = {f"{variant}_one_c{clients}": mean_of_runs(done) for variant, done in runs.items()}
    measured[f"rows_c{clients}"] = {
        **{k: after[k] - before[k] for k in after},
        "off_candidate": off_after["candidate"] - off_before["candidate"],
        "drain_s": drain,
    }
    return measured


def table_rows(results: dict | None) -> list[Row]:
    if not results:
        return [
            (
                "serving: ml-platform serve (1 and 2 workers) vs in-process, MLflow, --no-log and a shadow candidate",
                "not run",
                "",
                "",
            )
        ]
    rows = [row for name, m in results.get("models", {}).items() for row in model_rows(name, m)]
    for name, m in results.get("log", {}).items():
        if isinstance(m, dict) and "on_one_c1" in m:
            rows += log_rows(name, m)
    for name, m in results.get("shadow", {}).items():
        if isinstance(m, dict) and "shadow_one_c1" in m:
            rows += shadow_rows(name, m)
    reload = results.get("reload")
    if reload:
        rows.append(
            (
                f"serving: {reload['moves']} production moves under 16 clients ({reload['requests']:,} requests,"
                f" {reload['reloads_loaded']:.0f} versions loaded)",
                f"{reload['errors']} failed requests",
                "0",
                "yes" if reload["errors"] == 0 and reload["reloads_loaded"] >= reload["moves"] else "NO",
            )
        )
    return rows


def model_rows(name: str, m: dict) -> list[Row]:
    """A model's rows: ml-platform serve beside the in-process call and MLflow, then issue 35's goals."""
    label = LABELS.get(name, (name,))[0]
    big = f"big_c{BIG_CLIENTS}"
    limit, ours = m["limit_one_c1"], m["ours_one_c1"]
    bound = TARGETS["serve_p50_factor"] * limit["p50_ms"] + TARGETS["serve_p50_plus_ms"]
    rows: list[Row] = [
        (
            f"serving {label}: single row, 1 client, p50 / p99: in-process (Pipeline) / ml-platform serve / MLflow",
            f"{p50_p99(limit)} | {p50_p99(ours)} | {mlflow_figure(m, 'mlflow_one_c1', p50_p99)}"
            f"{failed_note(ours, m.get('mlflow_one_c1'))}",
            f"p50 <= 1.5x in-process + 1 ms = {bound:.2f} ms",
            "yes" if ours["p50_ms"] <= bound and not errors(ours) else "NO",
        ),
        *goal_one_rows(label, m),
    ]
    rows.append(
        versus_mlflow(
            m,
            "one_c16",
            f"serving {label}: single row, 16 clients, p50 / p99 and requests/s:"
            " in-process / ml-platform serve / MLflow",
            lambda r: f"{r['p50_ms']:.1f}/{r['p99_ms']:.1f} ms {r['requests_per_s']:.0f}/s",
        )
    )
    rows.append(workers_row(label, m, "one_c16", "serve_one_c16_requests_per_s", 1))
    rows.append(
        versus_mlflow(
            m,
            big,
            f"serving {label}: {BIG_ROWS}-row requests, {BIG_CLIENTS} clients, rows/s:"
            " in-process / ml-platform serve / MLflow",
            lambda r: f"{r['requests_per_s'] * BIG_ROWS:,.0f}",
        )
    )
    rows.append(workers_row(label, m, big, "serve_big_c4_rows_per_s", BIG_ROWS))
    return rows


def p50_p99(run: dict) -> str:
    return f"{run['p50_ms']:.2f}/{run['p99_ms']:.2f} ms"


def errors(run: dict) -> int:
    return run.get("non_2xx", 0) + run.get("socket_errors", 0)


def failed_note(*runs: dict | None) -> str:
    """The figure's note "(N failed requests)" when a wrk run of ``runs`` (None: not run) had non-2xx
    answers or socket errors, else nothing."""
    failed = sum(errors(run) for run in runs if run)
    return f" ({failed:,} failed requests)" if failed else ""


def mlflow_figure(m: dict, key: str, shown: Callable[[dict], str]) -> str:
    return shown(m[key]) if key in m else "left out"


def versus_mlflow(m: dict, measure: str, label: str, shown: Callable[[dict], str]) -> Row:
    """In-process, ml-platform serve and MLflow on one measure; the target: at least 2x MLflow's
    requests per second (no verdict when MLflow was left out for the model)."""
    limit, ours, mlflow = m[f"limit_{measure}"], m[f"ours_{measure}"], m.get(f"mlflow_{measure}")
    figure = f"{shown(limit)} | {shown(ours)} | {mlflow_figure(m, f'mlflow_{measure}', shown)}"
    target = f">= {TARGETS['serve_throughput_vs_mlflow']:g}x MLflow"
    if mlflow is None:
        return label, f"{figure}{failed_note(ours)}", target, "not measured (MLflow left out)"
    ratio = ours["requests_per_s"] / mlflow["requests_per_s"]
    met = ratio >= TARGETS["serve_throughput_vs_mlflow"] and not errors(ours)
    return label, f"{figure} = {ratio:.2f}x MLflow{failed_note(ours, mlflow)}", target, "yes" if met else "NO"


def goal_one_rows(label: str, m: dict) -> list[Row]:
    """Issue 35's single-row goals at 1 client: the HTTP round trip, the server's own latency (its
    prediction log), the compiled path in-process beside the Pipeline's call."""
    ours, own, compiled, limit = m["ours_one_c1"], m["own_latency_one_c1"], m["compiled_one_c1"], m["limit_one_c1"]
    serving = m.get("serving") or {}
    round_trip = TARGETS["serve_one_p50_ms"]
    rows: list[Row] = [
        (
            f"serving {label}: single row, 1 client, HTTP round trip p50 (p99): ml-platform serve",
            f"{ours['p50_ms']:.2f} ({ours['p99_ms']:.2f}) ms, served by {serving.get('path')}{failed_note(ours)}",
            f"p50 <= {round_trip:g} ms",
            "yes" if ours["p50_ms"] <= round_trip and not errors(ours) else "NO",
        )
    ]
    bound = TARGETS["serve_own_latency_p50_ms"]
    own_figure = f"{own['p50_ms']:.2f} ({own['p99_ms']:.2f}) ms" if own.get("rows") else "no row logged"
    rows.append(
        (
            f"serving {label}: the server's own latency_ms p50 (p99), single row, 1 client"
            f" (its prediction log, {own.get('rows', 0):,} rows)",
            own_figure,
            f"p50 <= {bound:g} ms",
            "yes" if own.get("rows") and own["p50_ms"] <= bound else "NO",
        )
    )
    bound = TARGETS["in_process_compiled_p50_ms"]
    path_ok = compiled.get("path") == "compiled"
    compiled_figure = (
        f"{compiled['p50_ms']:.3f} ({compiled['p99_ms']:.3f}) ms" if path_ok else f"not compiled: {compiled['reason']}"
    )
    rows.append(
        (
            f"serving {label}: in-process, one row, p50 (p99): compiled path (checked + predict_planned)"
            " / the scikit-learn Pipeline's predict",
            f"{compiled_figure} / {limit['p50_ms']:.2f} ({limit['p99_ms']:.2f}) ms",
            f"compiled p50 <= {bound:g} ms",
            "yes" if path_ok and compiled["p50_ms"] <= bound else "NO",
        )
    )
    return rows


def workers_row(label: str, m: dict, measure: str, key: str, rows_per_request: int) -> Row:
    """One goal of issue 35 for `ml-platform serve --workers 1` (the bench's server) and `--workers 2`."""
    one, two = m[f"ours_{measure}"], m.get(f"workers2_{measure}")
    unit = "requests/s" if rows_per_request == 1 else "rows/s"
    what = "single row, 16 clients" if measure == "one_c16" else f"{BIG_ROWS}-row requests, {BIG_CLIENTS} clients"
    rates = [run["requests_per_s"] * rows_per_request if run else None for run in (one, two)]
    figure = " / ".join(f"{r:,.0f}" if r is not None else "not run" for r in rates)
    bound = TARGETS[key]
    met = ["yes" if r is not None and r >= bound and not errors(run) else "NO" for r, run in zip(rates, (one, two))]
    return (
        f"serving {label}: {what}, {unit}: ml-platform serve --workers 1 / --workers 2",
        f"{figure}{failed_note(one, two)}",
        f">= {bound:,.0f} {unit} (each)",
        " / ".join(met),
    )


def log_rows(name: str, m: dict) -> list[Row]:
    label = LABELS.get(name, (name, name))[1]
    return [
        *ratio_rows(
            m,
            "on",
            (f"serving {label}: prediction log on / --no-log", ""),
            "serve_log_p50_ratio",
            "serve_log_throughput_ratio",
        ),
        log_rows_row(label, [m["rows_c1"], m["rows_c16"]]),
    ]


def ratio_rows(m: dict, variant: str, said: tuple[str, str], p50_key: str, rate_key: str) -> list[Row]:
    """The two rows of a variant against the same server without it (``off``): the single-row p50 at 1
    client and the requests/s at 16, as ratios beside their bounds. ``said``: how the first row and
    the second name the comparison."""
    on, off = m[f"{variant}_one_c1"], m["off_one_c1"]
    p50_ratio, p50_target = on["p50_ms"] / off["p50_ms"], TARGETS[p50_key]
    on16, off16 = m[f"{variant}_one_c16"], m["off_one_c16"]
    rate_ratio, rate_target = on16["requests_per_s"] / off16["requests_per_s"], TARGETS[rate_key]
    first, detail = said
    return [
        (
            f"{first}{detail}, single row, 1 client, p50 (p99)",
            f"{on['p50_ms']:.2f} ({on['p99_ms']:.2f}) / {off['p50_ms']:.2f} ({off['p99_ms']:.2f}) ms"
            f" = {p50_ratio:.2f}x",
            f"p50 <= {p50_target:.2f}x",
            "yes" if p50_ratio <= p50_target else "NO",
        ),
        (
            f"{first}, single row, 16 clients, requests/s",
            f"{on16['requests_per_s']:.0f} / {off16['requests_per_s']:.0f}/s = {rate_ratio:.2f}x",
            f">= {rate_target:.2f}x",
            "yes" if rate_ratio >= rate_target else "NO",
        ),
    ]


def log_rows_row(label: str, rows_c: list[dict]) -> Row:
    """The prediction log's rows during the on runs (1 and 16 clients together)."""
    predicted = sum(r["predicted"] for r in rows_c)
    written = sum(r["written"] for r in rows_c)
    dropped = sum(r["dropped"] for r in rows_c)
    parquet = sum(r["parquet_rows"] for r in rows_c)
    off_written = sum(r["off_written"] for r in rows_c)
    return (
        f"serving {label}: prediction log during the on runs: rows predicted / written (metrics,"
        " parquet parts) / dropped; --no-log server's rows written",
        f"{predicted:,.0f} / {written:,.0f}, {parquet:,.0f} / {dropped:,.0f}; {off_written:,.0f}"
        f" (log caught up {max(r['drain_s'] for r in rows_c):.1f} s after a run)",
        "all written, 0 dropped; 0",
        "yes" if predicted > 0 and written == predicted == parquet and dropped == 0 and off_written == 0 else "NO",
    )


def shadow_rows(name: str, m: dict) -> list[Row]:
    label = LABELS.get(name, (name, name))[1]
    rows_c = [m["rows_c1"], m["rows_c16"]]
    production, candidate = sum(r["production"] for r in rows_c), sum(r["candidate"] for r in rows_c)
    failed, dropped = sum(r["candidate_failed"] for r in rows_c), sum(r["dropped"] for r in rows_c)
    written, off_candidate = sum(r["written"] for r in rows_c), sum(r["off_candidate"] for r in rows_c)
    return [
        *ratio_rows(
            m,
            "shadow",
            (f"serving {label}: shadow candidate / none", " (rollout: shadow vs direct)"),
            "serve_shadow_p50_ratio",
            "serve_shadow_throughput_ratio",
        ),
        (
            f"serving {label}: shadow runs: rows production / the candidate predicted, candidate failures,"
            " log rows written / dropped; the server without rollout's candidate rows",
            f"{production:,.0f} / {candidate:,.0f}, {failed:,.0f}, {written:,.0f} / {dropped:,.0f};"
            f" {off_candidate:,.0f}"
            f" (caught up {max(r['drain_s'] for r in rows_c):.1f} s after a run)",
            "all shadowed and written, 0; 0",
            "yes"
            if production > 0
            and candidate == production
            and failed == dropped == off_candidate == 0
            and written == production + candidate
            else "NO",
        ),
    ]


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load measure (default 10)")
    parser.add_argument(
        "--only", choices=["shadow"], help="only this part (shadow: the shadow candidate on / off, no MLflow)"
    )


def main(argv: list[str] | None = None) -> int:
    return run_section(
        "serving",
        __doc__.split("\n\n")[0],
        add_flags,
        lambda workdir, args: bench_serving(workdir, args.seconds, args.only),
        table_rows,
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
