"""Serving benchmark: `ml-platform serve` beside the limit (the same predict call in-process) and
MLflow's scoring server (`mlflow models serve`) on the same models, in one run; and `ml-platform
serve` with its prediction log on (the default) against the same server with `--no-log`.

Models (built as the pipeline builds them, `ml_platform.ml.make_model`): the demo model (a 100-tree
forest, max_depth 10, over the 30 breast cancer features) and a 100-tree forest over 20 synthetic
features. Load: wrk (Debian's package; installed when missing), keep-alive connections, 1 and 16
concurrent clients, single-row requests and 1,000-row requests. MLflow is installed by this bench
in its own venv (bench/.mlflow-venv, gitignored), never into the project.

`ml-platform serve` runs as a user starts it, so with its prediction log on: every answered request's
rows are written as parquet parts under `<model>/prediction_log/` of the model store it serves from
(flushed every `--log-flush-s`, 1 s by default); the two bench models are not in pipelines.yaml, so
they are logged whole. Its cost is measured on its own: the same single-row requests to two servers
started for it, one as above (log on) and one with `--no-log` (same store, models and flags
otherwise), the two alternated on, off, off, on, with the rows the log wrote meanwhile counted (its /metrics counter and
the parquet parts) to show the log was on and dropped nothing.

A rollout's shadow candidate (issue 34): each model gets a second version (the same forest fitted
with another seed on the same data) as its candidate pointer, and two servers are started from the
store with a pipelines file naming both models (`monitoring: {}`): one with `rollout: {strategy:
shadow}` (production answers, the candidate predicts every request off the request path, both are
logged) and one without a rollout (production alone, the candidate pointer ignored); single-row
requests from 1 and 16 clients alternated shadow, off, off, shadow, as for the log.

Run alone: `.venv/bin/python bench/serving.py [--seconds 10] [--only shadow] [--keep]`; `make bench` runs it
as the section "serving" (every part).
"""

from __future__ import annotations

import argparse
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
RELOADS = 10

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
}
LOG_FLUSH_S = 1.0  # ml-platform serve's --log-flush-s, given explicitly (its default)


log = logger("bench serving", sys.stdout)


# -- models ------------------------------------------------------------------------------------
def build_models(store_dir: Path) -> dict[str, dict]:
    """The two models in a local model store (promoted), and a second demo version for reloads."""
    from ml_platform.backends.local import LocalModelStore
    from ml_platform.demo import breast_cancer_frame, synthetic_frame
    from ml_platform.ml import make_model
    from ml_platform.signature import infer_signature

    store = LocalModelStore(root=str(store_dir))
    frames = {
        "demo": breast_cancer_frame("target"),
        "forest20": synthetic_frame(5000, seed=0, target="target").drop(columns=["segment"]),
    }
    models = {}
    for name, frame in frames.items():
        x, y = frame.drop(columns=["target"]), frame["target"]
        versions = []
        for seed in (42, 7):
            model = make_model(
                "classification", "random_forest", {"n_estimators": 100, "max_depth": 10, "random_state": seed}
            )
            model.fit(x, y)
            signature = infer_signature(x, "target", "classification", list(model.classes_))
            metadata = {
                "task": "classification",
                "signature": signature.to_dict(),
                "metrics": {},
                "feature_columns": list(x.columns),
                "target": "target",
            }
            versions.append(store.save_version(name, model, metadata).version)
        store.promote(name, versions[0], reason="bench")
        models[name] = {"x": x, "versions": versions}
    return models


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


def serve_command(store_dir: Path, port: int, *extra: str) -> list[str]:
    """`ml-platform serve` of both models from the bench's store (``extra``: e.g. ``--no-log``)."""
    return [
        str(BIN / "ml-platform"),
        "serve",
        "--store-dir",
        str(store_dir),
        "--model",
        "demo",
        "--model",
        "forest20",
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
        "model.steps[-1][1].set_params(n_jobs=1)\n"
        f"mlflow.sklearn.save_model(model, {str(out)!r}, signature=infer_signature(x, model.predict(x)),\n"
        "                         serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE)\n"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"saving the MLflow model failed:\n{done.stderr[-3000:]}")
    return out


# -- measures ------------------------------------------------------------------------------------
def in_process(model, x: pd.DataFrame, seconds: float, clients: int, rows: int) -> dict:
    """The limit: the same predict call, in this process (``clients`` threads calling it)."""
    frames = [x.sample(rows, replace=True, random_state=i).reset_index(drop=True) for i in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    deadline = time.perf_counter() + seconds

    def call(i: int) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            model.predict(frames[i])
            latencies[i].append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(clients)]
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
    models = build_models(store_dir)
    store = LocalModelStore(root=str(store_dir))
    env = {**os.environ, "ML_PLATFORM_MODEL_STORE_DIR": str(store_dir)}
    env.pop("ML_PLATFORM_SERVE_TOKEN", None)
    results: dict = {"seconds_per_measure": seconds, "models": {}}
    if only != "shadow":
        results.update(against_mlflow(models, store, store_dir, env, workdir, seconds))
    # Last: MLflow and the servers above stopped.
    results["shadow"] = shadow_on_off(models, store, store_dir, env, workdir, seconds)
    return results


def against_mlflow(models: dict, store, store_dir: Path, env: dict, workdir: Path, seconds: float) -> dict:
    """In-process, `ml-platform serve` and MLflow per model; the log on / off; reloads under load."""
    python = mlflow_python()
    results: dict = {"models": {}, "mlflow": mlflow_version(python)}
    ours_port = free_port()
    # The prediction log on, as by default (--log-flush-s given: its default, as in log_on_off's servers).
    ours = Server(
        serve_command(store_dir, ours_port, "--log-flush-s", f"{LOG_FLUSH_S:g}"),
        ours_port,
        env,
        workdir / "serve.log",
        "/readyz",
    )
    try:
        for name, info in models.items():
            results["models"][name] = measure_model(
                name, info["x"], store, store_dir, python, ours_port, workdir, seconds
            )
        for name in models:
            settle_log(ours_port, name)  # the bench's server idle meanwhile, its log written
        results["log"] = log_on_off(models, store_dir, env, workdir, seconds)
        results["reload"] = reload_under_load(store, models["demo"]["versions"], ours_port, workdir, seconds)
    finally:
        ours.stop()
    for measured in results["models"].values():
        for value in measured.values():
            value.pop("raw", None)
    return results


def measure_model(
    name: str, x: pd.DataFrame, store, store_dir: Path, python: Path, ours_port: int, workdir: Path, seconds: float
) -> dict:
    """One model in-process, through `ml-platform serve` (up, at ``ours_port``) and through an
    MLflow scoring server started for it: single rows from 1 and 16 clients, big requests from 16."""
    from ml_platform.serving.holder import for_requests

    sklearn_model, version = store.load(name)
    model = for_requests(sklearn_model)
    body = bodies(x)
    out = mlflow_model(
        python, store_dir / name / version.version / "model.joblib", x.head(50), workdir / f"mlflow-{name}"
    )
    mlflow = start_mlflow(python, out, workdir, name, body["mlflow"]["one"])
    ours_url = f"http://127.0.0.1:{ours_port}/v1/models/{name}/predict"
    mlflow_url = f"http://127.0.0.1:{mlflow.port}/invocations"
    measured: dict = {}
    try:
        for clients in (1, 16):
            log(f"{name}: single-row, {clients} client(s)")
            measured[f"limit_one_c{clients}"] = in_process(model, x, seconds, clients, 1)
            measured[f"ours_one_c{clients}"] = wrk(ours_url, body["ours"]["one"], clients, seconds, workdir)
            measured[f"mlflow_one_c{clients}"] = wrk(mlflow_url, body["mlflow"]["one"], clients, seconds, workdir)
        log(f"{name}: {BIG_ROWS}-row requests, 16 clients")
        measured["limit_big_c16"] = in_process(model, x, seconds, 16, BIG_ROWS)
        measured["ours_big_c16"] = wrk(ours_url, body["ours"]["big"], 16, seconds, workdir)
        measured["mlflow_big_c16"] = wrk(mlflow_url, body["mlflow"]["big"], 16, seconds, workdir)
    finally:
        mlflow.stop()
    return measured


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
    on = Server(serve_command(store_dir, on_port, *flags), on_port, env, workdir / "serve-log-on.log", "/readyz")
    try:
        off = Server(
            serve_command(store_dir, off_port, *flags, "--no-log"),
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
                serve_command(store_dir, port, "--log-flush-s", f"{LOG_FLUSH_S:g}"),
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
            ("serving: ml-platform serve vs in-process, MLflow, --no-log and a shadow candidate", "not run", "", "")
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
    label = "demo model (100 trees, 30 features)" if name == "demo" else "100-tree forest, 20 features"
    limit, ours, mlflow = m["limit_one_c1"], m["ours_one_c1"], m["mlflow_one_c1"]
    bound = TARGETS["serve_p50_factor"] * limit["p50_ms"] + TARGETS["serve_p50_plus_ms"]
    rows: list[Row] = [
        (
            f"serving {label}: single row, 1 client, p50 / p99: in-process / ml-platform serve / MLflow",
            f"{limit['p50_ms']:.2f}/{limit['p99_ms']:.2f} ms | {ours['p50_ms']:.2f}/{ours['p99_ms']:.2f} ms"
            f" | {mlflow['p50_ms']:.2f}/{mlflow['p99_ms']:.2f} ms",
            f"p50 <= 1.5x in-process + 1 ms = {bound:.2f} ms",
            "yes" if ours["p50_ms"] <= bound else "NO",
        )
    ]
    limit, ours, mlflow = m["limit_one_c16"], m["ours_one_c16"], m["mlflow_one_c16"]
    ratio = ours["requests_per_s"] / mlflow["requests_per_s"]
    rows.append(
        (
            f"serving {label}: single row, 16 clients, p50 / p99 and requests/s:"
            " in-process / ml-platform serve / MLflow",
            f"{limit['p50_ms']:.1f}/{limit['p99_ms']:.1f} ms {limit['requests_per_s']:.0f}/s |"
            f" {ours['p50_ms']:.1f}/{ours['p99_ms']:.1f} ms {ours['requests_per_s']:.0f}/s |"
            f" {mlflow['p50_ms']:.1f}/{mlflow['p99_ms']:.1f} ms {mlflow['requests_per_s']:.0f}/s"
            f" = {ratio:.2f}x MLflow",
            ">= 2x MLflow",
            "yes" if ratio >= 2 else "NO",
        )
    )
    limit, ours, mlflow = m["limit_big_c16"], m["ours_big_c16"], m["mlflow_big_c16"]
    ratio = ours["requests_per_s"] / mlflow["requests_per_s"]
    rows.append(
        (
            f"serving {label}: {BIG_ROWS}-row requests, 16 clients, rows/s: in-process / ml-platform serve / MLflow",
            f"{limit['requests_per_s'] * BIG_ROWS:,.0f} | {ours['requests_per_s'] * BIG_ROWS:,.0f} |"
            f" {mlflow['requests_per_s'] * BIG_ROWS:,.0f} = {ratio:.2f}x MLflow",
            ">= 2x MLflow",
            "yes" if ratio >= 2 else "NO",
        )
    )
    return rows


def log_rows(name: str, m: dict) -> list[Row]:
    label = "demo model" if name == "demo" else "20-feature forest"
    on, off = m["on_one_c1"], m["off_one_c1"]
    p50_ratio, p50_target = on["p50_ms"] / off["p50_ms"], TARGETS["serve_log_p50_ratio"]
    on16, off16 = m["on_one_c16"], m["off_one_c16"]
    rate_ratio, rate_target = on16["requests_per_s"] / off16["requests_per_s"], TARGETS["serve_log_throughput_ratio"]
    return [
        (
            f"serving {label}: prediction log on / --no-log, single row, 1 client, p50 (p99)",
            f"{on['p50_ms']:.2f} ({on['p99_ms']:.2f}) / {off['p50_ms']:.2f} ({off['p99_ms']:.2f}) ms"
            f" = {p50_ratio:.2f}x",
            f"p50 <= {p50_target:.2f}x",
            "yes" if p50_ratio <= p50_target else "NO",
        ),
        (
            f"serving {label}: prediction log on / --no-log, single row, 16 clients, requests/s",
            f"{on16['requests_per_s']:.0f} / {off16['requests_per_s']:.0f}/s = {rate_ratio:.2f}x",
            f">= {rate_target:.2f}x",
            "yes" if rate_ratio >= rate_target else "NO",
        ),
        log_rows_row(label, [m["rows_c1"], m["rows_c16"]]),
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
    label = "demo model" if name == "demo" else "20-feature forest"
    on, off = m["shadow_one_c1"], m["off_one_c1"]
    p50_ratio, p50_target = on["p50_ms"] / off["p50_ms"], TARGETS["serve_shadow_p50_ratio"]
    on16, off16 = m["shadow_one_c16"], m["off_one_c16"]
    rate_ratio = on16["requests_per_s"] / off16["requests_per_s"]
    rate_target = TARGETS["serve_shadow_throughput_ratio"]
    rows_c = [m["rows_c1"], m["rows_c16"]]
    production, candidate = sum(r["production"] for r in rows_c), sum(r["candidate"] for r in rows_c)
    failed, dropped = sum(r["candidate_failed"] for r in rows_c), sum(r["dropped"] for r in rows_c)
    written, off_candidate = sum(r["written"] for r in rows_c), sum(r["off_candidate"] for r in rows_c)
    return [
        (
            f"serving {label}: shadow candidate / none (rollout: shadow vs direct), single row, 1 client, p50 (p99)",
            f"{on['p50_ms']:.2f} ({on['p99_ms']:.2f}) / {off['p50_ms']:.2f} ({off['p99_ms']:.2f}) ms"
            f" = {p50_ratio:.2f}x",
            f"p50 <= {p50_target:.2f}x",
            "yes" if p50_ratio <= p50_target else "NO",
        ),
        (
            f"serving {label}: shadow candidate / none, single row, 16 clients, requests/s",
            f"{on16['requests_per_s']:.0f} / {off16['requests_per_s']:.0f}/s = {rate_ratio:.2f}x",
            f">= {rate_target:.2f}x",
            "yes" if rate_ratio >= rate_target else "NO",
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
