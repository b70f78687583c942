"""`ml-platform serve`: the HTTP app (Starlette on uvicorn, the stack dagster-webserver installs).

Routes (JSON; CSV accepted for predict):

- ``POST /v1/models/{name}/predict`` rows as records or ``{"columns", "data"}`` (or CSV), ``?proba=true``
  for class probabilities: predictions, the version, sha256 and role that made them, and what the
  signature check reported;
- ``GET /v1/models``, ``GET /v1/models/{name}``: version, sha256, promoted_at, metrics, decision threshold,
  signature, and the rollout's candidate;
- ``GET /livez`` (the process answers), ``GET /readyz`` (every served model loaded and verified);
- the Open Inference Protocol (V2): ``POST /v2/models/{name}/infer``, ``GET /v2/models/{name}``,
  ``GET /v2/models/{name}/ready``, ``GET /v2/health/ready``, ``GET /v2/health/live``
  (ml_platform.serving.inference_protocol); predict also takes MLflow's scoring-server bodies;
- ``GET /metrics``: Prometheus text (requests by route and status, latency, rows, served versions).

Every client error is a 4xx with one JSON line ``{"error": "..."}``. Requests for one model that
arrive while it is predicting are scored together in its next predict call (adaptive batching).

During a rollout (``rollout.strategy`` shadow or canary) a model's candidate is served beside its
production version (``ml_platform.serving.rollout``): it predicts every request off the request
path (shadow), or answers a stable share of them (canary); a candidate's failure never reaches a
client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ml_platform import constants
from ml_platform.checked_model import CheckedModel, Probabilities
from ml_platform.clock import Clock
from ml_platform.clock import now as platform_time
from ml_platform.errors import PredictionError, SignatureError
from ml_platform.row_plan import PlannedRows
from ml_platform.serving.holder import ModelHolder
from ml_platform.serving.inference_protocol import infer_answer, infer_request, model_metadata
from ml_platform.serving.parsing import REQUEST_ID_HEADER, RequestError, content_type, flag, parse_rows, request_id_of
from ml_platform.serving.prediction_log import DEFAULT_FLUSH_S, Entry, LogSettings, PredictionLog
from ml_platform.serving.rollout import Rollout, routing_key, to_candidate

logger = logging.getLogger("ml_platform.serving")

CONFIG_ENV = "ML_PLATFORM_SERVE_CONFIG"  # the config, as JSON, for each worker process
TOKEN_ENV = "ML_PLATFORM_SERVE_TOKEN"
OPEN_ROUTES = ("/livez", "/readyz", "/v2/health/ready", "/v2/health/live")
DEFAULT_RELOAD_INTERVAL_S = constants.SERVE_RELOAD_INTERVAL_S
DEFAULT_MAX_BODY_BYTES = int(constants.SERVE_MAX_BODY_MB * 1024 * 1024)
DEFAULT_MAX_BATCH_ROWS = constants.SERVE_MAX_BATCH_ROWS


@dataclass
class ServeConfig:
    """What each worker needs to build the app (passed to workers through ``CONFIG_ENV``)."""

    models: list[str]
    store_dir: str | None = None  # a local store; None: the store of ML_PLATFORM_ENV
    reload_interval_s: float = DEFAULT_RELOAD_INTERVAL_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    # The prediction log per model (``serving.log`` of its pipeline: enabled, sample, exclude); a
    # model left out is logged whole. ``log_flush_s``: how often the log's parts are written.
    log: dict[str, dict[str, Any]] = field(default_factory=dict)
    log_flush_s: float = DEFAULT_FLUSH_S
    # The rollout per model (``rollout`` of its pipeline: strategy, share, route_by, mirror); a model
    # left out is served direct (production answers; no candidate is followed).
    rollout: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeConfig:
        return cls(**json.loads(os.environ[CONFIG_ENV]))

    def store(self):
        from ml_platform.backends.environment import model_store_of
        from ml_platform.settings import load_settings

        return model_store_of(load_settings(), self.store_dir)


# -- metrics ---------------------------------------------------------------------------------------
class Metrics:
    """Prometheus metrics; with several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set before
    the workers start) they are summed over the live workers."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        registry = None if self.multiprocess else CollectorRegistry()
        kwargs = {"registry": registry} if registry is not None else {}
        self.requests = Counter(
            "ml_platform_http_requests", "HTTP requests by route and status.", ["route", "status"], **kwargs
        )
        self.latency = Histogram(
            "ml_platform_http_request_duration_seconds",
            "Time from request to answer, by route.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            **kwargs,
        )
        self.rows = Counter(
            "ml_platform_predicted_rows",
            "Rows predicted, by model, version and role (production, or a rollout's candidate).",
            ["model", "version", "role"],
            **kwargs,
        )
        self.batches = Histogram(
            "ml_platform_batch_requests",
            "Requests scored in one predict call, by model and role.",
            ["model", "role"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            **kwargs,
        )
        self.served = Gauge(
            "ml_platform_served_version",
            "1 for the version a model is served with, by role (production, or a rollout's candidate).",
            ["model", "version", "sha256", "role"],
            multiprocess_mode="livemax",
            **kwargs,
        )
        self.ready = Gauge(
            "ml_platform_model_ready",
            "1 when the model is loaded and verified.",
            ["model"],
            multiprocess_mode="livemin",
            **kwargs,
        )
        self.reloads = Counter(
            "ml_platform_model_reloads", "Versions loaded or refused, by model.", ["model", "outcome"], **kwargs
        )
        self.candidate_failures = Counter(
            "ml_platform_candidate_failures",
            "Requests a rollout's candidate failed on (refused: its signature check; error: its predict raised),"
            " by model; production answered them.",
            ["model", "kind"],
            **kwargs,
        )
        self.log_rows = Counter(
            "ml_platform_prediction_log_rows",
            "Rows of the prediction log, by model and outcome (written, or dropped: a full queue, a failed write).",
            ["model", "outcome"],
            **kwargs,
        )
        self._registry = registry

    def text(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if not self.multiprocess:
            return generate_latest(self._registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)

    def swapped(self, holder: ModelHolder, previous: CheckedModel | None) -> None:
        if previous is not None:
            self.served.labels(holder.model_name, previous.version.version, previous.version.sha256, holder.role).set(0)
        if holder.current is not None:
            current = holder.current.version
            self.served.labels(holder.model_name, current.version, current.sha256, holder.role).set(1)
        if holder.role == "production":  # readiness is production's: a candidate is never needed
            self.ready.labels(holder.model_name).set(1 if holder.current is not None else 0)

    def close(self) -> None:
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


# -- adaptive batching -------------------------------------------------------------------------
@dataclass
class _Pending:
    model: CheckedModel
    frame: pd.DataFrame | PlannedRows
    proba: bool
    future: asyncio.Future = field(repr=False)
    call_ms: float = 0.0  # how long the predict call that scored it took
    batch_rows: int = 0  # the rows that call scored (its own and the other requests')


class Batcher:
    """One model's predict calls, one at a time off the event loop. Requests that arrive while a
    call runs wait for the next, which scores them all at once (and the answers are split again):
    a lone request is scored at once, many requests share the fixed cost of a predict call."""

    def __init__(
        self, model_name: str, max_rows: int, metrics: Metrics, role: str = "production", linger_s: float = 0.0
    ):
        self.model_name = model_name
        self.role = role  # whose predict calls: production's, or a rollout's candidate's
        self.max_rows = max_rows
        self.metrics = metrics
        # Off the request path only: wait this long before each call, so that it scores many requests.
        self.linger_s = linger_s
        self._queue: list[_Pending] = []
        self._draining = False

    async def predict(self, model: CheckedModel, frame: pd.DataFrame, proba: bool):
        return (await self.predict_timed(model, frame, proba))[0]

    async def predict_timed(self, model: CheckedModel, frame: pd.DataFrame, proba: bool):
        """The outputs, and how long the predict call that made them took (ms)."""
        pending = _Pending(model, frame, proba, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await pending.future, pending.call_ms, pending.batch_rows

    def _take(self) -> list[_Pending]:
        """The next batch: queued requests for the same model object (a swap may sit between
        them), up to ``max_rows`` rows (at least one request)."""
        first = self._queue[0]
        batch, rows = [], 0
        planned = isinstance(first.frame, PlannedRows)
        for pending in self._queue:
            if (
                pending.model is not first.model
                or isinstance(pending.frame, PlannedRows) is not planned
                or (batch and rows + len(pending.frame) > self.max_rows)
            ):
                break
            batch.append(pending)
            rows += len(pending.frame)
        del self._queue[: len(batch)]
        return batch

    async def _drain(self) -> None:
        try:
            while self._queue:
                if self.linger_s:
                    await asyncio.sleep(self.linger_s)
                batch = self._take()
                try:
                    results = await _timed_score(batch)
                except Exception as exc:  # noqa: BLE001 - the requests get the error, each its own
                    await self._failed(batch, exc)
                    continue
                self.metrics.batches.labels(self.model_name, self.role).observe(len(batch))
                for pending, result in zip(batch, results):
                    _settle(pending, result)
        finally:
            self._draining = False

    async def _failed(self, batch: list[_Pending], error: Exception) -> None:
        """A predict call that raised: a lone request gets the error; a batch is scored again in
        halves (and their halves), so that one request's rows never fail the others and a few bad
        requests among many cost a few calls, not one per request."""
        if len(batch) == 1:
            _settle(batch[0], error=error)
            return
        middle = len(batch) // 2
        for half in (batch[:middle], batch[middle:]):
            try:
                results = await _timed_score(half)
            except Exception as exc:  # noqa: BLE001 - this half's own error
                await self._failed(half, exc)
                continue
            for pending, result in zip(half, results):
                _settle(pending, result)


# Planned rows up to this many in one call are answered on the event loop: the compiled form takes a
# fraction of a millisecond for them, less than handing them to a thread costs.
INLINE_ROWS = 16


async def _timed_score(batch: list[_Pending]) -> list[tuple[np.ndarray, pd.DataFrame | None]]:
    """``_score`` off the event loop (a few planned rows on it), each request told how long the call took."""
    started = time.perf_counter()
    if isinstance(batch[0].frame, PlannedRows) and sum(len(p.frame) for p in batch) <= INLINE_ROWS:
        results = _score(batch)
    else:
        results = await asyncio.to_thread(_score, batch)
    call_ms = (time.perf_counter() - started) * 1000
    rows = sum(len(p.frame) for p in batch)
    for pending in batch:
        pending.call_ms, pending.batch_rows = call_ms, rows
    return results


def _settle(pending: _Pending, result: Any = None, error: Exception | None = None) -> None:
    if pending.future.done():  # the request went away meanwhile
        return
    if error is not None:
        pending.future.set_exception(error)
    else:
        pending.future.set_result(result)


def _score(batch: list[_Pending]) -> list[tuple[np.ndarray, pd.DataFrame | Probabilities | None]]:
    model = batch[0].model
    proba = any(p.proba for p in batch)
    if isinstance(batch[0].frame, PlannedRows):
        predictions, probabilities = _planned(model, batch, proba)
    elif len(batch) == 1:
        return [_predicted(model, batch[0].frame, batch[0].proba)]
    else:
        frame = pd.concat([p.frame for p in batch], ignore_index=True)
        predictions, probabilities = _predicted(model, frame, proba)
    results, start = [], 0
    for pending in batch:
        end = start + len(pending.frame)
        part = None
        if pending.proba and probabilities is not None:
            part = (
                Probabilities(probabilities.values[start:end], probabilities.columns)
                if isinstance(probabilities, Probabilities)
                else probabilities.iloc[start:end]
            )
        results.append((predictions[start:end], part))
        start = end
    return results


def _planned(model: CheckedModel, batch: list[_Pending], proba: bool) -> tuple[np.ndarray, Any]:
    """Planned rows answered by the compiled form. Should it fail (it answered the test split as
    scikit-learn did, so it should not), scikit-learn answers the same checked rows, and the log says so."""
    matrix = np.vstack([p.frame.matrix for p in batch]) if len(batch) > 1 else batch[0].frame.matrix
    try:
        predictions, values = model.compiled.form.outputs(matrix, proba)
    except Exception as exc:  # noqa: BLE001 - the compiled form's fault is never the client's
        what = f"{model.version.model_name} {model.version.version}"
        logger.error(f"{what}: its compiled form failed ({type(exc).__name__}: {exc}); scikit-learn answered")
        return _predicted(model, pd.concat([p.frame.frame() for p in batch], ignore_index=True), proba)
    return predictions, (Probabilities(values, model.class_columns) if values is not None else None)


def _predicted(model: CheckedModel, frame: pd.DataFrame, proba: bool) -> tuple[np.ndarray, pd.DataFrame | None]:
    """``model.predict_checked``; with probabilities, the transforming steps of a Pipeline run once for
    both calls of its final estimator (whose ``predict`` stays the model's: a decision threshold
    inside it holds). The server asks a classifier for both on every request (the log keeps the
    probabilities); measured on a model with the platform's encoder (400 categories) and a 60-tree
    forest, one row: predict alone 15 ms, predict and predict_proba as two calls 35 ms, sharing the
    transform 23 ms."""
    steps = getattr(model.sklearn_model, "steps", None)
    if not proba or not steps or len(steps) < 2:
        return model.predict_checked(frame, proba)
    final = steps[-1][1]
    try:
        features = model.sklearn_model[:-1].transform(frame)
        predictions = np.asarray(final.predict(features))
        probabilities = pd.DataFrame(final.predict_proba(features), index=frame.index, columns=model.class_columns)
    except (ValueError, TypeError) as exc:
        # As predict_checked: only a version stored before signatures gets here with bad rows.
        what = f"{model.version.model_name} {model.version.version}"
        raise PredictionError(f"{what} cannot predict these rows: {exc}") from exc
    return predictions, probabilities


# -- the app -------------------------------------------------------------------------------------
class _Answer(JSONResponse):
    """A prediction's answer, written by orjson (a 1,000-row answer in a fifth of json's time); what
    orjson cannot write is written by Starlette's json."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:
            return super().render(content)


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _plain(values: np.ndarray) -> list:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise RequestError(400, f"Content-Length {declared!r} is not a number") from None
        if length > limit:
            raise RequestError(413, f"the body is {length} bytes; the limit is {limit} (--max-body-mb)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is over the limit of {limit} bytes (--max-body-mb)")
        chunks.append(chunk)
    return b"".join(chunks)


# Off the request path, each predict call waits this long for the requests that arrive meanwhile. A
# forest's call costs nearly the same for 1 row as for 200 and holds the GIL: a shadow that predicts
# each request again doubled production's single-row p50 and halved its 16-client throughput
# (docs/performance.md); calls made rare and large cost production little.
OFF_PATH_LINGER_S = 0.5
SHUTDOWN_WAIT_S = 20.0  # a stopping worker's wait for the predictions still running off the request path


@dataclass
class Asked:
    """One request, as every model that predicts it sees it: the model's name, the rows as parsed, the
    request's id, when it started, and the log's draw (both models' rows are kept or left out together)."""

    name: str
    rows: Any
    request_id: str
    started: float
    kept: bool


@dataclass
class Answer:
    """What a request was answered with: the model and its role, the predictions, the class
    probabilities (whenever the model has them: the log keeps them; the client gets them when it
    asks), and the signature check's report."""

    model: CheckedModel
    role: str
    predictions: np.ndarray
    probabilities: pd.DataFrame | Probabilities | None
    report: Any


def _row_count(rows: Any) -> int:
    if isinstance(rows, pd.DataFrame | list):
        return len(rows)
    if isinstance(rows, dict) and isinstance(rows.get("data"), list):
        return len(rows["data"])
    return 1


class Service:
    """What one worker serves, and the work of each route as a plain method (parse -> check ->
    predict -> answer), as MLflow's scoring server keeps its work apart from its web framework: the
    Starlette app of ``create_app`` only reads requests, calls these and writes the answers.
    ``clock`` says when a request was answered: the day of the log it goes to.

    A model whose rollout is shadow or canary has a second holder following its candidate pointer
    (``candidates``), with batchers of its own: the candidate's predict calls, and production's off
    the request path (a canary's mirror), never queue before production's answers."""

    def __init__(self, config: ServeConfig, clock: Clock = platform_time):
        self.config = config
        self.clock = clock
        self.holders = {name: ModelHolder(name, config.store()) for name in config.models}
        self.rollouts = {name: Rollout.of(config.rollout.get(name)) for name in config.models}
        self.candidates = {
            name: ModelHolder(name, self.holders[name].store, "candidate")
            for name, rollout in self.rollouts.items()
            if rollout.uses_candidate
        }
        self.metrics = Metrics()
        rows = config.max_batch_rows
        self.batchers = {name: Batcher(name, rows, self.metrics) for name in config.models}
        self.candidate_batchers = {name: Batcher(name, rows, self.metrics, "candidate") for name in self.candidates}
        # Off the request path (a shadow, a canary's mirror) predict calls are made rare and large:
        # see OFF_PATH_LINGER_S.
        linger = OFF_PATH_LINGER_S
        self.shadow_batchers = {
            name: Batcher(name, rows, self.metrics, "candidate", linger) for name in self.candidates
        }
        self.mirror_batchers = {name: Batcher(name, rows, self.metrics, linger_s=linger) for name in self.candidates}
        self.background: set[asyncio.Task] = set()  # predictions off the request path, until they end
        self.token = os.environ.get(TOKEN_ENV, "").strip() or None
        self.wake = asyncio.Event()  # SIGHUP: look at the pointers now
        self.log: PredictionLog | None = None  # started with the worker (lifespan)
        self._warned_at: dict[str, float] = {}
        self._same_signatures: dict[str, tuple[CheckedModel, CheckedModel, bool]] = {}

    # -- following the pointers -------------------------------------------------------------------
    def followed(self) -> list[ModelHolder]:
        """Every holder: each model's production, then the candidates of its rollouts."""
        return [*self.holders.values(), *self.candidates.values()]

    def refresh_all(self) -> None:
        for holder in self.followed():
            previous = holder.current
            swap = holder.refresh()
            if swap.outcome in ("loaded", "refused"):
                self.metrics.reloads.labels(holder.model_name, swap.outcome).inc()
            self.metrics.swapped(holder, previous if holder.current is not previous else None)

    async def follow_pointers(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.config.reload_interval_s)
            if self.wake.is_set():
                self.wake.clear()
                logger.info("SIGHUP: looking at the pointers now")
                for holder in self.followed():
                    holder.forget_pointer()
            try:
                await asyncio.to_thread(self.refresh_all)
            except Exception:  # the poller must outlive a bad refresh
                logger.exception("refreshing the served models failed")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette):
        """The worker's life: the models loaded before the first request, the pointers followed
        (and SIGHUP heard) until it stops; then the predictions still running off the request path
        end (``SHUTDOWN_WAIT_S`` at most) before the log writes what is queued."""
        await asyncio.to_thread(self.refresh_all)
        self.log = self.start_log()
        poller = asyncio.get_running_loop().create_task(self.follow_pointers())
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.wake.set)
        try:
            yield
        finally:
            poller.cancel()
            await self.settle()
            if self.log is not None:
                await asyncio.to_thread(self.log.close)  # what is queued is written before the worker ends
            self.metrics.close()

    async def settle(self, timeout_s: float = SHUTDOWN_WAIT_S) -> None:
        """Wait for the predictions running off the request path (bounded), so that the log holds
        both models' rows of every answered request."""
        pending = list(self.background)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=timeout_s)
        if late:
            logger.warning(f"{len(late)} prediction(s) off the request path still running after {timeout_s:g} s")

    def start_log(self) -> PredictionLog | None:
        """The prediction log of this worker, into the model store it serves from; None when every
        served model's log is off."""
        settings = {name: LogSettings.of(self.config.log.get(name)) for name in self.config.models}
        if not self.holders or not any(s.enabled for s in settings.values()):
            return None
        store = next(iter(self.holders.values())).store

        def counted(model: str, outcome: str, rows: int) -> None:
            self.metrics.log_rows.labels(model, outcome).inc(rows)

        return PredictionLog(
            store.write_bytes,
            settings,
            counted,
            flush_s=self.config.log_flush_s,
            list_children=store.list_children,
            delete_tree=store.delete_tree,
            clock=self.clock,
        )

    # -- the prediction log -----------------------------------------------------------------------
    def log_predicted(
        self,
        asked: Asked,
        model: CheckedModel,
        role: str,
        answered: bool,
        started: float,
        frame,
        outputs,
        latency_ms: float | None = None,
    ) -> None:
        """Put a model's predictions of a request on the prediction log (``outputs``: predictions,
        probabilities); ``answered``: they were the request's answer. ``latency_ms``: since
        ``started``, unless given."""
        if self.log is None:
            return
        predictions, probabilities = outputs
        if latency_ms is None:
            latency_ms = (time.perf_counter() - started) * 1000
        version, now = model.version.version, self.clock()
        entry = Entry(asked.name, version, asked.request_id, now, latency_ms, frame, predictions, probabilities)
        entry.role, entry.answered = role, answered
        self.log.record(entry, asked.kept)

    def log_refused(
        self, asked: Asked, model: CheckedModel, role: str, answered: bool, started: float, reason: str
    ) -> None:
        """Put a request a model refused (its signature check) or failed on on the log: its row count and why."""
        if self.log is None:
            return
        latency_ms = (time.perf_counter() - started) * 1000
        count, version, now = _row_count(asked.rows), model.version.version, self.clock()
        entry = Entry.refusal(asked.name, version, asked.request_id, now, latency_ms, count, reason, role, answered)
        self.log.record(entry, asked.kept)

    def failed(self, asked: Asked, model: CheckedModel, role: str, started: float, exc: Exception) -> None:
        """A model that was not the answer failed on a request (a candidate; production as a canary's
        mirror): logged as refused with why, counted for a candidate; the answer never changes."""
        kind = "refused" if isinstance(exc, SignatureError) else "error"
        reason = str(exc) if kind == "refused" else f"{type(exc).__name__}: {exc}"
        if role == "candidate":
            self.metrics.candidate_failures.labels(asked.name, kind).inc()
        now = time.monotonic()
        if now - self._warned_at.get(f"{asked.name}/{role}", -60.0) >= 10:  # at most every 10 s
            self._warned_at[f"{asked.name}/{role}"] = now
            logger.warning(f"{asked.name}: the {role} {model.version.version} failed on a request ({reason})")
        self.log_refused(asked, model, role, False, started, reason)

    # -- the routes' work ---------------------------------------------------------------------
    def authorized(self, authorization: str) -> bool:
        """Whether a request may use a protected route (always, when no token is set)."""
        return self.token is None or hmac.compare_digest(authorization.encode(), f"Bearer {self.token}".encode())

    def holder(self, name: str) -> ModelHolder:
        holder = self.holders.get(name)
        if holder is None:
            raise RequestError(404, f"unknown model {name!r}; served: {', '.join(self.holders)}")
        return holder

    def ready_model(self, name: str) -> tuple[ModelHolder, CheckedModel]:
        """The holder of ``name`` and the model a request starts with (whatever a swap does meanwhile)."""
        holder = self.holder(name)
        model = holder.current
        if model is None:
            raise RequestError(503, f"model {holder.model_name!r} is not ready: {holder.problem}")
        return holder, model

    async def answer_rows(
        self, holder: ModelHolder, model: CheckedModel, rows: Any, request_id: str, started: float
    ) -> Answer:
        """A request's answer. Its rows must meet production's signature (the client's contract; a
        refusal is a 422). Production answers, or the candidate for a canary's share of requests; a
        candidate that fails leaves the answer to production. The model that did not answer predicts
        the rows off the request path when the rollout says so (shadow; canary with mirror)."""
        name = holder.model_name
        asked = Asked(name, rows, request_id, started, self.log.draw(name) if self.log is not None else False)
        try:
            frame, report = model.checked(rows)
        except SignatureError as exc:
            self.log_refused(asked, model, "production", True, started, str(exc))
            raise
        rollout = self.rollouts[name]
        candidate = self.candidates[name].current if name in self.candidates else None
        if candidate is not None and rollout.strategy == "canary":
            if to_candidate(routing_key(rows, rollout.route_by, request_id), rollout.share):
                answer = await self.candidate_answer(asked, candidate)
                if answer is not None:
                    if rollout.mirror:
                        self.off_path(asked, model, "production", frame)
                    return answer
                candidate = None  # it failed on this request: production answers, and nothing is mirrored
        answer = await self.production_answer(asked, model, frame, report)
        if candidate is not None and (rollout.strategy == "shadow" or rollout.mirror):
            # The same signature: production's checked rows are the candidate's (no second check; planned
            # rows are encoded again by the candidate's own encoder).
            same = self.same_signature(name, model, candidate)
            self.off_path(asked, candidate, "candidate", frame if same else None)
        return answer

    def same_signature(self, name: str, model: CheckedModel, other: CheckedModel) -> bool:
        """Whether a model's production and candidate take the same rows: compared once per pair loaded
        (11 us a request otherwise); only the current pair is kept, so a reload frees the old models."""
        kept = self._same_signatures.get(name)
        if kept is None or kept[0] is not model or kept[1] is not other:
            kept = self._same_signatures[name] = (model, other, model.signature == other.signature)
        return kept[2]

    async def production_answer(self, asked: Asked, model: CheckedModel, frame: pd.DataFrame, report) -> Answer:
        """Production's answer: the checked rows predicted in a batch with the requests that arrive
        with them (probabilities too, for a classifier: the log keeps them), then logged."""
        outputs = await self.batchers[asked.name].predict(model, frame, model.is_classifier)
        self.metrics.rows.labels(asked.name, model.version.version, "production").inc(len(frame))
        self.log_predicted(asked, model, "production", True, asked.started, frame, outputs)
        return Answer(model, "production", *outputs, report)

    async def candidate_answer(self, asked: Asked, candidate: CheckedModel) -> Answer | None:
        """The candidate's answer to a canary request, or None when it refuses or fails (logged)."""
        try:
            frame, report = candidate.checked(asked.rows)
            outputs = await self.candidate_batchers[asked.name].predict(candidate, frame, candidate.is_classifier)
        except Exception as exc:  # noqa: BLE001 - the candidate's fault is never the client's: production answers
            self.failed(asked, candidate, "candidate", asked.started, exc)
            return None
        self.metrics.rows.labels(asked.name, candidate.version.version, "candidate").inc(len(frame))
        self.log_predicted(asked, candidate, "candidate", True, asked.started, frame, outputs)
        return Answer(candidate, "candidate", *outputs, report)

    def off_path(self, asked: Asked, model: CheckedModel, role: str, frame: pd.DataFrame | None = None) -> None:
        """Have ``model`` predict the request off the request path (a task the answer never waits for)."""
        task = asyncio.get_running_loop().create_task(self._predict_off_path(asked, model, role, frame))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _predict_off_path(self, asked: Asked, model: CheckedModel, role: str, frame: pd.DataFrame | None):
        """The rows as ``model``'s own check sees them (production's ``frame`` when the signatures
        are the same), predicted in its own lingering batcher, logged as not answered with its own
        latency: what answering would have cost, without the wait that batches it (its check, and
        its predict call; for a compiled form, its rows' share of the call, which costs in
        proportion to its rows where scikit-learn's costs nearly the same for one row as for
        hundreds); a failure is logged as refused."""
        started = time.perf_counter()
        batcher = self.shadow_batchers[asked.name] if role == "candidate" else self.mirror_batchers[asked.name]
        try:
            if frame is None:
                frame, _ = model.checked(asked.rows)
            elif isinstance(frame, PlannedRows) and role == "candidate":
                frame = model.rows_of(frame, asked.rows)
            checked_ms = (time.perf_counter() - started) * 1000
            outputs, call_ms, batch_rows = await batcher.predict_timed(model, frame, model.is_classifier)
        except Exception as exc:  # noqa: BLE001 - off the request path a failure is logged, never raised
            self.failed(asked, model, role, started, exc)
            return
        if isinstance(frame, PlannedRows) and batch_rows:
            call_ms *= len(frame) / batch_rows
        self.metrics.rows.labels(asked.name, model.version.version, role).inc(len(frame))
        self.log_predicted(asked, model, role, False, started, frame, outputs, latency_ms=checked_ms + call_ms)

    async def predict(self, name: str, proba_flag: str | None, kind: str, read_body, request_id: str) -> dict[str, Any]:
        """POST /v1/models/{name}/predict: the rows of the body, checked against the signature of the
        model this request started with, predicted (in a batch with the requests that arrive with
        it), answered with the version (and role) that produced the answer and the request's id."""
        started = time.perf_counter()
        holder, model = self.ready_model(name)
        proba = flag(proba_flag, "proba")
        if proba:
            model.refuse_proba()
        rows = parse_rows(await read_body(self.config.max_body_bytes), kind, model.signature)
        answer = await self.answer_rows(holder, model, rows, request_id, started)
        result = {
            "request_id": request_id,
            "model": holder.model_name,
            "version": answer.model.version.version,
            "sha256": answer.model.version.sha256,
            "role": answer.role,
            "predictions": _plain(answer.predictions),
            "report": answer.report.to_dict(),
        }
        if proba and answer.probabilities is not None:
            result["classes"] = [str(c) for c in answer.probabilities.columns]
            result["probabilities"] = answer.probabilities.to_numpy().tolist()
        return result

    async def infer(self, name: str, read_body, request_id: str) -> dict[str, Any]:
        """POST /v2/models/{name}/infer (the Open Inference Protocol): the same check, batching, model
        and log as predict, in the protocol's tensors; the body's ``id`` is the request's id when given."""
        started = time.perf_counter()
        holder, model = self.ready_model(name)
        body = await read_body(self.config.max_body_bytes)
        rows, given, wanted = infer_request(body, model.signature)
        if "predict_proba" in wanted:
            model.refuse_proba()
        answer = await self.answer_rows(holder, model, rows, given or request_id, started)
        version, outputs = answer.model.version.version, (answer.predictions, answer.probabilities)
        return infer_answer(holder.model_name, version, given, wanted, *outputs, role=answer.role)

    def metadata_v2(self, name: str) -> dict[str, Any]:
        """GET /v2/models/{name}: the protocol's model metadata."""
        holder, model = self.ready_model(name)
        return model_metadata(holder.model_name, model.version.version, model.signature, model.is_classifier)

    def describe(self, name: str) -> dict[str, Any]:
        """GET /v1/models/{name}: production's version and the rollout's candidate (None without one)."""
        holder = self.holder(name)
        rollout = self.rollouts[holder.model_name]
        described = {**holder.describe(), "rollout": rollout.to_dict(), "candidate": None}
        candidate = self.candidates.get(holder.model_name)
        if candidate is not None and (candidate.current is not None or candidate.problem):
            described["candidate"] = {**candidate.describe(), "strategy": rollout.strategy}
        return described

    def models(self) -> dict[str, Any]:
        return {"models": [self.describe(name) for name in self.holders]}

    def readiness(self) -> tuple[dict[str, Any], int]:
        """Ready when every production version is loaded; a rollout's candidate is never needed."""
        models = {h.model_name: {"version": h.version, "problem": h.problem} for h in self.holders.values()}
        for name, candidate in self.candidates.items():
            models[name]["candidate"] = candidate.version
        ready = all(h.current is not None for h in self.holders.values())
        return {"ready": ready, "models": models}, 200 if ready else 503


def _logging() -> None:
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _endpoint(service: Service, route: str, work: Callable[[Request], Awaitable[Response]], protected: bool = True):
    """A route of the app: the token, then ``work``; every failure one JSON line with its status
    (a 4xx for the client's mistakes), never a traceback; latency and status counted."""

    async def wrapped(request: Request) -> Response:
        started = time.perf_counter()
        try:
            if protected and not service.authorized(request.headers.get("authorization", "")):
                response = _error(
                    401, "missing or wrong bearer token (Authorization: Bearer …)", {"WWW-Authenticate": "Bearer"}
                )
            else:
                response = await work(request)
        except RequestError as exc:
            response = _error(exc.status, str(exc))
        except SignatureError as exc:
            response = _error(422, str(exc))
        except PredictionError as exc:
            response = _error(400, str(exc))
        except Exception as exc:  # never a traceback on the wire
            logger.exception(f"{request.method} {request.url.path} failed")
            response = _error(500, f"the server failed: {type(exc).__name__}: {exc}")
        finally:
            service.metrics.latency.labels(route).observe(time.perf_counter() - started)
        service.metrics.requests.labels(route, str(response.status_code)).inc()
        return response

    return wrapped


def _inference_protocol_routes(service: Service) -> dict[str, tuple[Callable, list[str], bool]]:
    """The Open Inference Protocol (V2) of KServe, Triton and MLServer clients: path -> (work,
    methods, protected)."""

    async def infer(request: Request) -> Response:
        request_id = request_id_of(request.headers)
        answer = await service.infer(request.path_params["name"], lambda limit: _read_body(request, limit), request_id)
        return _Answer(answer, headers={REQUEST_ID_HEADER: answer.get("id", request_id)})

    async def metadata(request: Request) -> Response:
        return JSONResponse(service.metadata_v2(request.path_params["name"]))

    async def server_ready(request: Request) -> Response:
        payload, status = service.readiness()
        return JSONResponse({"ready": payload["ready"]}, status_code=status)

    async def model_ready(request: Request) -> Response:
        holder = service.holder(request.path_params["name"])
        ready = holder.current is not None
        return JSONResponse({"name": holder.model_name, "ready": ready}, status_code=200 if ready else 503)

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    return {
        "/v2/models/{name}/infer": (infer, ["POST"], True),
        "/v2/models/{name}/ready": (model_ready, ["GET"], True),
        "/v2/models/{name}": (metadata, ["GET"], True),
        "/v2/health/ready": (server_ready, ["GET"], False),
        "/v2/health/live": (live, ["GET"], False),
    }


def create_app(config: ServeConfig | None = None, clock: Clock = platform_time) -> Starlette:
    """The app of one worker: the models of ``config`` (default: from ``CONFIG_ENV``), answering on
    ``clock``'s time. It reads the requests and writes the answers; the work is the ``Service``'s."""
    _logging()
    service = Service(config or ServeConfig.from_env(), clock)

    async def predict(request: Request) -> Response:
        request_id = request_id_of(request.headers)
        answer = await service.predict(
            request.path_params["name"],
            request.query_params.get("proba"),
            content_type(request.headers),
            lambda limit: _read_body(request, limit),
            request_id,
        )
        return _Answer(answer, headers={REQUEST_ID_HEADER: request_id})

    async def readyz(request: Request) -> Response:
        payload, status = service.readiness()
        return JSONResponse(payload, status_code=status)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        service.metrics.requests.labels("other", str(exc.status_code)).inc()
        message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        return _error(exc.status_code, message.get(exc.status_code, str(exc.detail)))

    async def list_models(request: Request) -> Response:
        return JSONResponse(service.models())

    async def model_info(request: Request) -> Response:
        return JSONResponse(service.describe(request.path_params["name"]))

    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def metrics_text(request: Request) -> Response:
        return Response(service.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    works = {
        "/v1/models/{name}/predict": (predict, ["POST"], True),
        "/v1/models": (list_models, ["GET"], True),
        "/v1/models/{name}": (model_info, ["GET"], True),
        "/livez": (livez, ["GET"], False),
        "/readyz": (readyz, ["GET"], False),
        "/metrics": (metrics_text, ["GET"], True),
        **_inference_protocol_routes(service),
    }
    routes = [
        Route(path, _endpoint(service, path, work, protected), methods=methods)
        for path, (work, methods, protected) in works.items()
    ]
    app = Starlette(routes=routes, lifespan=service.lifespan, exception_handlers={HTTPException: http_error})
    app.state.holders = service.holders
    return app
