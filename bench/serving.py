"""Serving benchmark: `ml-platform serve` beside the limit (the same predict call in-process) and
MLflow's scoring server (`mlflow models serve`) on the same models, in one run.

Models (built as the pipeline builds them, `ml_platform.ml.make_model`): the demo model (a 100-tree
forest, max_depth 10, over the 30 breast cancer features) and a 100-tree forest over 20 synthetic
features. Load: wrk (Debian's package; installed when missing), keep-alive connections, 1 and 16
concurrent clients, single-row requests and 1,000-row requests. MLflow is installed by this bench
in its own venv (bench/.mlflow-venv, gitignored), never into the project.

Run alone: `.venv/bin/python bench/serving.py [--seconds 10] [--keep]`; `make bench` runs it as the
section "serving".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BIN = Path(sys.executable).parent
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
}


def log(message: str) -> None:
    print(f"[bench serving {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    """One wrk run: POST ``body`` to ``url`` from ``clients`` keep-alive connections."""
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
            f"-d{seconds:g}s",
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
    return parse_wrk(proc.stdout + proc.stderr)


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


def bench_serving(workdir: Path, seconds: float = 10.0) -> dict:
    from ml_platform.backends.local import LocalModelStore
    from ml_platform.serving.holder import for_requests

    workdir.mkdir(parents=True, exist_ok=True)
    store_dir = workdir / "model_store"
    log("building the models")
    models = build_models(store_dir)
    store = LocalModelStore(root=str(store_dir))
    python = mlflow_python()
    env = {**os.environ, "ML_PLATFORM_MODEL_STORE_DIR": str(store_dir)}
    env.pop("ML_PLATFORM_SERVE_TOKEN", None)
    results: dict = {"seconds_per_measure": seconds, "models": {}, "mlflow": mlflow_version(python)}
    ours_port = free_port()
    ours = Server(
        [
            str(BIN / "ml-platform"),
            "serve",
            "--store-dir",
            str(store_dir),
            "--model",
            "demo",
            "--model",
            "forest20",
            "--port",
            str(ours_port),
            "--reload-interval",
            "0.5",
        ],
        ours_port,
        env,
        workdir / "serve.log",
        "/readyz",
    )
    try:
        for name, info in models.items():
            x = info["x"]
            sklearn_model, version = store.load(name)
            model = for_requests(sklearn_model)
            body = bodies(x)
            out = mlflow_model(
                python, store_dir / name / version.version / "model.joblib", x.head(50), workdir / f"mlflow-{name}"
            )
            port = free_port()
            mlflow_env = {
                **os.environ,
                "MLFLOW_TRACKING_URI": str(workdir / "mlruns"),
                "PATH": f"{python.parent}:{os.environ['PATH']}",
            }
            log(f"{name}: starting mlflow models serve")
            mlflow = Server(
                [
                    str(python.parent / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(out),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "--env-manager",
                    "local",
                ],
                port,
                mlflow_env,
                workdir / f"mlflow-{name}.log",
                "/invocations",
                body["mlflow"]["one"],
            )
            measured: dict = {}
            try:
                for clients in (1, 16):
                    log(f"{name}: single-row, {clients} client(s)")
                    measured[f"limit_one_c{clients}"] = in_process(model, x, seconds, clients, 1)
                    measured[f"ours_one_c{clients}"] = wrk(
                        f"http://127.0.0.1:{ours_port}/v1/models/{name}/predict",
                        body["ours"]["one"],
                        clients,
                        seconds,
                        workdir,
                    )
                    measured[f"mlflow_one_c{clients}"] = wrk(
                        f"http://127.0.0.1:{port}/invocations", body["mlflow"]["one"], clients, seconds, workdir
                    )
                log(f"{name}: {BIG_ROWS}-row requests, 16 clients")
                measured["limit_big_c16"] = in_process(model, x, seconds, 16, BIG_ROWS)
                measured["ours_big_c16"] = wrk(
                    f"http://127.0.0.1:{ours_port}/v1/models/{name}/predict", body["ours"]["big"], 16, seconds, workdir
                )
                measured["mlflow_big_c16"] = wrk(
                    f"http://127.0.0.1:{port}/invocations", body["mlflow"]["big"], 16, seconds, workdir
                )
            finally:
                mlflow.stop()
            results["models"][name] = measured
        results["reload"] = reload_under_load(store, models["demo"]["versions"], ours_port, workdir, seconds)
    finally:
        ours.stop()
    for measured in results["models"].values():
        for value in measured.values():
            value.pop("raw", None)
    return results


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


def table_rows(results: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, m in results.get("models", {}).items():
        label = "demo model (100 trees, 30 features)" if name == "demo" else "100-tree forest, 20 features"
        limit, ours, mlflow = m["limit_one_c1"], m["ours_one_c1"], m["mlflow_one_c1"]
        bound = TARGETS["serve_p50_factor"] * limit["p50_ms"] + TARGETS["serve_p50_plus_ms"]
        rows.append(
            (
                f"serving {label}: single row, 1 client, p50 / p99: in-process / ml-platform serve / MLflow",
                f"{limit['p50_ms']:.2f}/{limit['p99_ms']:.2f} ms | {ours['p50_ms']:.2f}/{ours['p99_ms']:.2f} ms"
                f" | {mlflow['p50_ms']:.2f}/{mlflow['p99_ms']:.2f} ms",
                f"p50 <= 1.5x in-process + 1 ms = {bound:.2f} ms",
                "yes" if ours["p50_ms"] <= bound else "NO",
            )
        )
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
                f"serving {label}: {BIG_ROWS}-row requests, 16 clients, rows/s: in-process / ml-platform serve"
                " / MLflow",
                f"{limit['requests_per_s'] * BIG_ROWS:,.0f} | {ours['requests_per_s'] * BIG_ROWS:,.0f} |"
                f" {mlflow['requests_per_s'] * BIG_ROWS:,.0f} = {ratio:.2f}x MLflow",
                ">= 2x MLflow",
                "yes" if ratio >= 2 else "NO",
            )
        )
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load measure (default 10)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (models, logs)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="ml_platform_bench_serving-"))
    try:
        results = bench_serving(workdir, args.seconds)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = table_rows(results)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    out = BENCH / "results" / f"serving-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({**results, "table": rows}, indent=2, default=str))
    print(f"raw: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
