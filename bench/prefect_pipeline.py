"""The plain script's work as a Prefect 3 flow (make bench, "prefect" variant).

The same arguments, data, split, model, metrics, artifact and result.json as
bench/plain_pipeline.py, whose functions it calls: the work is literally the same. Each step is a
``@task`` of one ``@flow``, as a Prefect user writes it: tasks hand DataFrames and the model to
each other in memory, the default task runner, no result persistence (Prefect's default). Run
without PREFECT_API_URL, Prefect starts its temporary local API server (a uvicorn subprocess on
SQLite in PREFECT_HOME) and stops it at exit: what a user gets by default. No ml_platform or
dagster import. Runs in its own venv (bench/.prefect-venv, made by bench/run.py).

Writes ``<out>/model.joblib`` and ``<out>/result.json`` (the plain script's fields, plus the
Prefect version and the temporary server's peak RSS, a process of its own).
"""

import time

_T0 = time.perf_counter()

import os  # noqa: E402

# Set before prefect is imported (its settings are read then); run.py sets them too. No telemetry
# (client and server side); console logs at WARNING (the bench reads figures, not flow logs), while
# the flow's and tasks' logs still go to the API, as by default.
for _name, _value in (
    ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
    ("DO_NOT_TRACK", "1"),
    ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING"),
):
    os.environ.setdefault(_name, _value)

import resource  # noqa: E402

import plain_pipeline as plain  # noqa: E402  (bench/, the script's folder, is on sys.path)
from prefect import __version__ as prefect_version  # noqa: E402
from prefect import flow, task  # noqa: E402


@task
def load_days(landing: str, days: list[str]):
    return plain.load_days(landing, days)


@task
def split(frame, target: str, test_size: float, random_state: int):
    return plain.split(frame, target, test_size, random_state)


@task
def fit(train, target: str, n_estimators: int, max_depth: int, random_state: int, n_jobs: int):
    return plain.fit(train, target, n_estimators, max_depth, random_state, n_jobs)


@task
def evaluate(model, test, target: str) -> dict:
    return plain.evaluate(model, test, target)


@task
def save(model, out: str) -> str:
    return plain.dump(model, out)


@flow
def train_pipeline(
    landing: str,
    days: list[str],
    out: str,
    target: str,
    test_size: float,
    random_state: int,
    n_estimators: int,
    max_depth: int,
    n_jobs: int,
) -> dict:
    # Each task call as the plain script's phase of the same name; the time includes the task's
    # run, its states and their API calls.
    phases = {}
    t = time.perf_counter()
    frame = load_days(landing, days)
    phases["load"], t = time.perf_counter() - t, time.perf_counter()
    train, test = split(frame, target, test_size, random_state)
    phases["split"], t = time.perf_counter() - t, time.perf_counter()
    model = fit(train, target, n_estimators, max_depth, random_state, n_jobs)
    phases["fit"], t = time.perf_counter() - t, time.perf_counter()
    metrics = evaluate(model, test, target)
    phases["evaluate"], t = time.perf_counter() - t, time.perf_counter()
    sha256 = save(model, out)
    phases["dump"] = time.perf_counter() - t
    return {"metrics": metrics, "sha256": sha256, "rows": len(frame), "phases": phases}


def server_peak_rss_mb() -> float | None:
    """The temporary API server's peak RSS so far (VmHWM), read before it is stopped at exit."""
    from prefect.server.api.server import SubprocessASGIServer

    for server in SubprocessASGIServer._instances.values():
        if server.server_process is not None:
            try:
                with open(f"/proc/{server.server_process.pid}/status") as handle:
                    return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:")) / 1024
            except (OSError, StopIteration):
                return None
    return None


def main() -> None:
    args = plain.parse_args(__doc__.splitlines()[0])
    phases = {"imports": time.perf_counter() - _T0}
    started = time.perf_counter()
    result = train_pipeline(
        args.landing,
        args.days.split(","),
        args.out,
        args.target,
        args.test_size,
        args.random_state,
        args.n_estimators,
        args.max_depth,
        args.n_jobs,
    )
    flow_s = time.perf_counter() - started
    phases.update(result["phases"])
    # The rest of the flow call: starting the temporary server, the flow run and its states.
    phases["flow_other"] = flow_s - sum(result["phases"].values())
    result["phases"] = phases
    result["prefect"] = prefect_version
    result["api_server_max_rss_mb"] = server_peak_rss_mb()
    result["flow_process_max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    plain.write_result(args.out, result)
    # Exit: atexit stops the temporary server (SIGTERM, waited for).


if __name__ == "__main__":
    main()
