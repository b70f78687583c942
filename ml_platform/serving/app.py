"""`ml-platform serve`: the HTTP app (Starlette on uvicorn, the stack dagster-webserver installs).

Routes (JSON; CSV accepted for predict):

- ``POST /v1/models/{name}/predict`` rows as records or ``{"columns", "data"}`` (or CSV), ``?proba=true``
  for class probabilities: predictions, the version and sha256 that made them, and what the
  signature check reported;
- ``GET /v1/models``, ``GET /v1/models/{name}``: version, sha256, promoted_at, metrics, decision threshold,
  signature;
- ``GET /livez`` (the process answers), ``GET /readyz`` (every served model loaded and verified);
- the Open Inference Protocol (V2): ``POST /v2/models/{name}/infer``, ``GET /v2/models/{name}``,
  ``GET /v2/models/{name}/ready``, ``GET /v2/health/ready``, ``GET /v2/health/live``
  (ml_platform.serving.inference_protocol); predict also takes MLflow's scoring-server bodies;
- ``GET /metrics``: Prometheus text (requests by route and status, latency, rows, served versions).

Every client error is a 4xx with one JSON line ``{"error": "..."}``. Requests for one model that
arrive while it is predicting are scored together in its next predict call (adaptive batching).
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
import pandas as pd
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ml_platform import constants
from ml_platform.checked_model import CheckedModel
from ml_platform.clock import Clock
from ml_platform.clock import now as platform_time
from ml_platform.errors import PredictionError, SignatureError
from ml_platform.serving.holder import ModelHolder
from ml_platform.serving.inference_protocol import infer_answer, infer_request, model_metadata
from ml_platform.serving.parsing import REQUEST_ID_HEADER, RequestError, content_type, flag, parse_rows, request_id_of
from ml_platform.serving.prediction_log import DEFAULT_FLUSH_S, Entry, LogSettings, PredictionLog

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
            "ml_platform_predicted_rows", "Rows predicted, by model and version.", ["model", "version"], **kwargs
        )
        self.batches = Histogram(
            "ml_platform_batch_requests",
            "Requests scored in one predict call.",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            **kwargs,
        )
        self.served = Gauge(
            "ml_platform_served_version",
            "1 for the version a model is served with.",
            ["model", "version", "sha256"],
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
            self.served.labels(holder.model_name, previous.version.version, previous.version.sha256).set(0)
        if holder.current is not None:
            current = holder.current.version
            self.served.labels(holder.model_name, current.version, current.sha256).set(1)
        self.ready.labels(holder.model_name).set(1 if holder.current is not None else 0)

    def close(self) -> None:
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


# -- adaptive batching -------------------------------------------------------------------------
@dataclass
class _Pending:
    model: CheckedModel
    frame: pd.DataFrame
    proba: bool
    future: asyncio.Future = field(repr=False)


class Batcher:
    """One model's predict calls, one at a time off the event loop. Requests that arrive while a
    call runs wait for the next, which scores them all at once (and the answers are split again):
    a lone request is scored at once, many requests share the fixed cost of a predict call."""

    def __init__(self, model_name: str, max_rows: int, metrics: Metrics):
        self.model_name = model_name
        self.max_rows = max_rows
        self.metrics = metrics
        self._queue: list[_Pending] = []
        self._draining = False

    async def predict(self, model: CheckedModel, frame: pd.DataFrame, proba: bool):
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(model, frame, proba, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _take(self) -> list[_Pending]:
        """The next batch: queued requests for the same model object (a swap may sit between
        them), up to ``max_rows`` rows (at least one request)."""
        first = self._queue[0]
        batch, rows = [], 0
        for pending in self._queue:
            if pending.model is not first.model or (batch and rows + len(pending.frame) > self.max_rows):
                break
            batch.append(pending)
            rows += len(pending.frame)
        del self._queue[: len(batch)]
        return batch

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                try:
                    results = await asyncio.to_thread(_score, batch)
                except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    continue
                self.metrics.batches.labels(self.model_name).observe(len(batch))
                for pending, result in zip(batch, results):
                    if not pending.future.done():
                        pending.future.set_result(result)
        finally:
            self._draining = False


def _score(batch: list[_Pending]) -> list[tuple[np.ndarray, pd.DataFrame | None]]:
    model = batch[0].model
    proba = any(p.proba for p in batch)
    if len(batch) == 1:
        return [model.predict_checked(batch[0].frame, batch[0].proba)]
    frame = pd.concat([p.frame for p in batch], ignore_index=True)
    predictions, probabilities = model.predict_checked(frame, proba)
    results, start = [], 0
    for pending in batch:
        end = start + len(pending.frame)
        part = probabilities.iloc[start:end] if (pending.proba and probabilities is not None) else None
        results.append((predictions[start:end], part))
        start = end
    return results


# -- the app -------------------------------------------------------------------------------------
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


class Service:
    """What one worker serves, and the work of each route as a plain method (parse -> check ->
    predict -> answer), as MLflow's scoring server keeps its work apart from its web framework: the
    Starlette app of ``create_app`` only reads requests, calls these and writes the answers.
    ``clock`` says when a request was answered: the day of the log it goes to."""

    def __init__(self, config: ServeConfig, clock: Clock = platform_time):
        self.config = config
        self.clock = clock
        self.holders = {name: ModelHolder(name, config.store()) for name in config.models}
        self.metrics = Metrics()
        self.batchers = {name: Batcher(name, config.max_batch_rows, self.metrics) for name in config.models}
        self.token = os.environ.get(TOKEN_ENV, "").strip() or None
        self.wake = asyncio.Event()  # SIGHUP: look at the pointers now
        self.log: PredictionLog | None = None  # started with the worker (lifespan)

    # -- following the production pointers ---------------------------------------------------
    def refresh_all(self) -> None:
        for holder in self.holders.values():
            previous = holder.current
            swap = holder.refresh()
            if swap.outcome in ("loaded", "refused"):
                self.metrics.reloads.labels(holder.model_name, swap.outcome).inc()
            self.metrics.swapped(holder, previous if swap.outcome == "loaded" else None)

    async def follow_pointers(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.config.reload_interval_s)
            if self.wake.is_set():
                self.wake.clear()
                logger.info("SIGHUP: looking at the production pointers now")
                for holder in self.holders.values():
                    holder.forget_pointer()
            try:
                await asyncio.to_thread(self.refresh_all)
            except Exception:  # the poller must outlive a bad refresh
                logger.exception("refreshing the served models failed")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette):
        """The worker's life: the models loaded before the first request, the pointers followed
        (and SIGHUP heard) until it stops."""
        await asyncio.to_thread(self.refresh_all)
        self.log = self.start_log()
        poller = asyncio.get_running_loop().create_task(self.follow_pointers())
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.wake.set)
        try:
            yield
        finally:
            poller.cancel()
            if self.log is not None:
                await asyncio.to_thread(self.log.close)  # what is queued is written before the worker ends
            self.metrics.close()

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

    def log_answer(self, holder: ModelHolder, model: CheckedModel, request_id: str, started: float, frame, answered):
        """Put an answered request on the prediction log (``answered``: predictions, probabilities)."""
        if self.log is None:
            return
        predictions, probabilities = answered
        now = self.clock()
        latency_ms = (time.perf_counter() - started) * 1000
        name, version = holder.model_name, model.version.version
        self.log.record(Entry(name, version, request_id, now, latency_ms, frame, predictions, probabilities))

    def log_refusal(self, holder: ModelHolder, model: CheckedModel, request_id: str, started: float, rows, exc):
        """Put a request the signature check refused on the prediction log (its row count and why)."""
        if self.log is None:
            return
        count = len(rows) if isinstance(rows, pd.DataFrame | list) else 1
        latency_ms = (time.perf_counter() - started) * 1000
        name, version, now = holder.model_name, model.version.version, self.clock()
        entry = Entry.refusal(name, version, request_id, now, latency_ms, count, str(exc))
        self.log.record(entry)

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

    async def predict_rows(
        self, holder: ModelHolder, model: CheckedModel, rows: Any, proba: bool, request_id: str, started: float
    ) -> tuple[np.ndarray, pd.DataFrame | None, Any]:
        """Rows checked against the model's signature and predicted in a batch with the requests
        that arrive with them, then put on the prediction log: (predictions, probabilities, the
        signature check's report)."""
        try:
            frame, report = model.check(rows)
        except SignatureError as exc:
            self.log_refusal(holder, model, request_id, started, rows, exc)
            raise
        predictions, probabilities = await self.batchers[holder.model_name].predict(model, frame, proba)
        self.metrics.rows.labels(holder.model_name, model.version.version).inc(len(frame))
        self.log_answer(holder, model, request_id, started, frame, (predictions, probabilities))
        return predictions, probabilities, report

    async def predict(self, name: str, proba_flag: str | None, kind: str, read_body, request_id: str) -> dict[str, Any]:
        """POST /v1/models/{name}/predict: the rows of the body, checked against the signature of the
        model this request started with, predicted (in a batch with the requests that arrive with
        it), answered with the version that produced the answer and the request's id."""
        started = time.perf_counter()
        holder, model = self.ready_model(name)
        proba = flag(proba_flag, "proba")
        if proba:
            model.refuse_proba()
        rows = parse_rows(await read_body(self.config.max_body_bytes), kind, model.signature)
        predictions, probabilities, report = await self.predict_rows(holder, model, rows, proba, request_id, started)
        answer = {
            "request_id": request_id,
            "model": holder.model_name,
            "version": model.version.version,
            "sha256": model.version.sha256,
            "predictions": _plain(predictions),
            "report": report.to_dict(),
        }
        if probabilities is not None:
            answer["classes"] = [str(c) for c in probabilities.columns]
            answer["probabilities"] = probabilities.to_numpy().tolist()
        return answer

    async def infer(self, name: str, read_body, request_id: str) -> dict[str, Any]:
        """POST /v2/models/{name}/infer (the Open Inference Protocol): the same check, batching, model
        and log as predict, in the protocol's tensors; the body's ``id`` is the request's id when given."""
        started = time.perf_counter()
        holder, model = self.ready_model(name)
        body = await read_body(self.config.max_body_bytes)
        rows, given, wanted = infer_request(body, model.signature)
        if "predict_proba" in wanted:
            model.refuse_proba()
        proba = "predict_proba" in wanted
        answered = await self.predict_rows(holder, model, rows, proba, given or request_id, started)
        return infer_answer(holder.model_name, model.version.version, given, wanted, *answered[:2])

    def metadata_v2(self, name: str) -> dict[str, Any]:
        """GET /v2/models/{name}: the protocol's model metadata."""
        holder, model = self.ready_model(name)
        return model_metadata(holder.model_name, model.version.version, model.signature, model.is_classifier)

    def models(self) -> dict[str, Any]:
        return {"models": [h.describe() for h in self.holders.values()]}

    def readiness(self) -> tuple[dict[str, Any], int]:
        models = {h.model_name: {"version": h.version, "problem": h.problem} for h in self.holders.values()}
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
        return JSONResponse(answer, headers={REQUEST_ID_HEADER: answer.get("id", request_id)})

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
        return JSONResponse(answer, headers={REQUEST_ID_HEADER: request_id})

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
        return JSONResponse(service.holder(request.path_params["name"]).describe())

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
