"""Optional MLflow experiment tracking, free of Dagster: one MLflow run per training, with its
parameters, tags, metrics, the model's signature and the fitted model.

Tracking is a side record, never a reason for a pipeline step to fail or stall:

- MLflow is imported inside the methods, so ml_platform works without it (the client is the
  optional extra ``ml_platform[mlflow]``: ``mlflow-skinny``, no server and no Flask/SQLAlchemy pins);
- no method raises when the tracker is down (connection refused, timeout, 5xx) or refuses a value:
  each call is retried a few times, then ``warn`` gets one sentence naming the tracking URI and what
  was not recorded, and the method returns None or False;
- MLflow's own HTTP client retries for minutes by default (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` 7 with
  exponential backoff, ``MLFLOW_HTTP_REQUEST_TIMEOUT`` 120 s): around each call those variables are
  set from the tracker's own ``retries`` and ``timeout_s``, so a dead tracker costs about a second
  (connection refused) or ``2 * timeout_s`` (a server that accepts but never answers) per call;
- after a tracker failed to answer, every tracker in the process skips it for ``DOWN_FOR_S`` seconds,
  so a step that records five things does not wait five times.

Only our own errors (``MlPlatformError``, e.g. a stage's ``StageTimeoutError``) pass through.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, TypeVar

from ml_platform.errors import MlPlatformError

# MLflow's limits (mlflow.utils.validation): longer values are truncated here, not refused there.
MAX_PARAM_VALUE_CHARS = 6000
MAX_TAG_VALUE_CHARS = 8000
MAX_KEY_CHARS = 250
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
# How long a tracker that did not answer is skipped by every tracker in this process.
DOWN_FOR_S = 30.0
# Pause between two tries of one call (connection refused fails at once: the pause is the cost).
RETRY_DELAY_S = 0.5
MLFLOW_ENV = "MLFLOW_TRACKING_URI"

T = TypeVar("T")

# Tracking URI -> monotonic time until which it is skipped. The MLflow variables are process-wide:
# one lock around every call keeps two threads' calls from restoring each other's values.
_down_until: dict[str, float] = {}
_lock = threading.RLock()


def tracking_uri_from(pipeline_uri: str | None, environ: Mapping[str, str]) -> str | None:
    """The tracking URI to use: the pipeline's own, else MLflow's standard ``MLFLOW_TRACKING_URI``
    from ``environ``, else None (no tracking). Blank values count as unset."""
    for value in (pipeline_uri, environ.get(MLFLOW_ENV)):
        if value and value.strip():
            return value.strip()
    return None


class MlflowTracker:
    """The MLflow client calls the pipeline makes, each one guarded (see the module docstring).

    ``warn`` receives the one-sentence warnings (in a Dagster step: ``context.log.warning``);
    ``retries`` is how many times a call is tried again after a transient failure (while the call
    has taken less than ``timeout_s``); ``timeout_s`` is also MLflow's HTTP timeout per request
    (connect, and each read; whole seconds).
    """

    def __init__(
        self, tracking_uri: str, experiment: str, warn: Callable[[str], None], retries: int = 2, timeout_s: float = 5.0
    ):
        self.tracking_uri = tracking_uri.rstrip("/")
        self.experiment = experiment
        self.warn = warn
        self.retries = max(0, int(retries))
        self.timeout_s = max(1.0, float(timeout_s))
        self._experiment_ids: dict[str, str] = {}  # run_id -> experiment_id
        self._client_obj: Any = None

    # -- the calls ----------------------------------------------------------------------------

    def start_run(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str | None:
        """Create the run (and the experiment, when missing) with its parameters and tags; return
        its run_id, or None when nothing could be recorded."""

        def call() -> str:
            from mlflow.entities import Param

            client = self._client()
            experiment_id = self._experiment_id(client)
            run = client.create_run(
                experiment_id, run_name=run_name, tags={_key(k): _tag_value(v) for k, v in tags.items()}
            )
            run_id = run.info.run_id
            self._experiment_ids[run_id] = experiment_id
            items = [Param(_key(k), _param_value(v)) for k, v in params.items()]
            for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
                client.log_batch(run_id, params=chunk)
            return run_id

        return self._guarded(call, f"the run {run_name!r} of experiment {self.experiment!r} was not created")

    def log_metrics(self, run_id: str | None, metrics: Mapping[str, float], step: int = 0) -> bool:
        """Record metrics on the run (values that are not numbers are left out, with a warning)."""
        numbers: dict[str, float] = {}
        for key, value in metrics.items():
            try:
                numbers[_key(key)] = float(value)
            except (TypeError, ValueError):
                pass
        if len(numbers) < len(metrics) and run_id is not None:
            left_out = sorted(set(map(str, metrics)) - set(numbers))
            self.warn(
                f"MLflow tracking at {self.tracking_uri}: metrics that are not numbers were not "
                f"recorded: {', '.join(left_out)}."
            )

        def call() -> bool:
            from mlflow.entities import Metric

            client = self._client()
            now_ms = int(time.time() * 1000)
            items = [Metric(key, value, now_ms, step) for key, value in numbers.items()]
            for chunk in _chunks(items, MAX_METRICS_PER_BATCH):
                client.log_batch(run_id, metrics=chunk)
            return True

        return bool(self._guarded(call, f"the metrics of run {run_id} were not recorded", run_id))

    def set_tags(self, run_id: str | None, tags: Mapping[str, Any]) -> bool:
        """Set (or overwrite) tags on the run."""

        def call() -> bool:
            from mlflow.entities import RunTag

            items = [RunTag(_key(k), _tag_value(v)) for k, v in tags.items()]
            for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
                self._client().log_batch(run_id, tags=chunk)
            return True

        return bool(self._guarded(call, f"the tags of run {run_id} were not recorded", run_id))

    def log_dict(self, run_id: str | None, obj: Any, artifact_file: str) -> bool:
        """Store ``obj`` as a JSON (or YAML, by the file's extension) artifact of the run, e.g. the
        model's signature as ``signature.json``."""

        def call() -> bool:
            self._client().log_dict(run_id, obj, artifact_file)
            return True

        not_recorded = f"the artifact {artifact_file} of run {run_id} was not stored"
        return bool(self._guarded(call, not_recorded, run_id))

    def log_model(self, run_id: str | None, model: Any) -> str | None:
        """Store the fitted scikit-learn model (the object, or the path of its joblib file) and return
        its MLflow URI, or None.

        It is logged with ``mlflow.sklearn.log_model``, which works with ``mlflow-skinny`` (checked
        with 3.17.2 and our scikit-learn): an MLflow 3 *logged model* linked to the run as its
        output (``models:/<model_id>``, loadable with ``mlflow.sklearn.load_model`` or served by
        ``mlflow models serve``). Its files live under the logged model, not in the run's own
        artifact list. Serialized with cloudpickle: MLflow's default, skops, is not in the skinny
        client and refuses to load estimators outside its allow-list (LightGBM, custom transformers),
        while the platform trusts its own pickles already (the model store keeps joblib files). The
        pip requirements are named from the estimator's own packages: MLflow's inference of them
        starts a Python subprocess that costs seconds per model.

        When the flavor cannot be used (its import fails, or the model does not save as one),
        the joblib file is stored as a plain artifact under ``model/`` of the run instead
        (``runs:/<run_id>/model/<file>``).
        """

        def call() -> str:
            fitted = _load_joblib(model) if isinstance(model, (str, Path)) else model
            try:
                import mlflow.sklearn
                from mlflow.tracking._tracking_service.utils import _use_tracking_uri
            except ImportError:
                return self._log_joblib(run_id, model)
            try:
                # The fluent API reads the process-wide tracking URI: ours only for this call.
                with _use_tracking_uri(self.tracking_uri):
                    info = mlflow.sklearn.log_model(
                        fitted,
                        name="model",
                        run_id=run_id,
                        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                        pip_requirements=_requirements(fitted),
                    )
                return info.model_uri
            except Exception as exc:  # a model that does not save as the flavor
                if _transient(exc) or _own_error(exc) is not None:
                    raise
                return self._log_joblib(run_id, model)

        return self._guarded(call, f"the model of run {run_id} was not stored", run_id)

    def end_run(self, run_id: str | None, status: str = "FINISHED") -> bool:
        """Mark the run ended: FINISHED, FAILED or KILLED."""

        def call() -> bool:
            self._client().set_terminated(run_id, status=status)
            return True

        return bool(self._guarded(call, f"run {run_id} was not marked {status}", run_id))

    def run_url(self, run_id: str) -> str | None:
        """The run's page in the MLflow UI, ``<tracking_uri>/#/experiments/<id>/runs/<run_id>``, for an
        http(s) tracking URI (None for others, or when the run's experiment cannot be found)."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return None
        experiment_id = self._experiment_ids.get(run_id)
        if experiment_id is None:
            experiment_id = self._guarded(
                lambda: self._client().get_run(run_id).info.experiment_id,
                f"the link to run {run_id} is not known",
                run_id,
            )
            if experiment_id is None:
                return None
            self._experiment_ids[run_id] = experiment_id
        return f"{self.tracking_uri}/#/experiments/{experiment_id}/runs/{run_id}"

    # -- the guard ----------------------------------------------------------------------------

    def _guarded(self, call: Callable[[], T], not_recorded: str, run_id: object = "") -> T | None:
        """Run ``call`` with MLflow's HTTP retries off and its timeout ours; try again after
        transient failures while the time spent is under ``timeout_s``; warn and return None when it
        failed for good. A None ``run_id`` (the run was never created, already reported) is a no-op."""
        if run_id is None:
            return None
        with _lock:
            until = _down_until.get(self.tracking_uri, 0.0)
            if time.monotonic() < until:
                self.warn(
                    f"MLflow tracking at {self.tracking_uri} is skipped (it did not answer "
                    f"{DOWN_FOR_S - (until - time.monotonic()):.0f}s ago): {not_recorded}."
                )
                return None
            started = time.monotonic()
            attempt = 0
            while True:
                try:
                    with self._mlflow_http_settings():
                        result = call()
                    _down_until.pop(self.tracking_uri, None)
                    return result
                except Exception as exc:  # tracking never fails the step
                    if isinstance(exc, MlPlatformError):
                        raise
                    if (own := _own_error(exc)) is not None:
                        raise own from exc
                    if isinstance(exc, ImportError):
                        self.warn(
                            f"MLflow tracking at {self.tracking_uri} needs the MLflow client "
                            f"(pip install 'ml_platform[mlflow]'): {not_recorded}."
                        )
                        return None
                    transient = _transient(exc)
                    spent = time.monotonic() - started
                    if transient and attempt < self.retries and spent < self.timeout_s:
                        attempt += 1
                        time.sleep(RETRY_DELAY_S)
                        continue
                    if transient:
                        _down_until[self.tracking_uri] = time.monotonic() + DOWN_FOR_S
                        tries = f"{attempt + 1} {'try' if attempt == 0 else 'tries'}"
                        why = f"did not answer after {tries} in {spent:.1f}s ({_reason(exc)})"
                    else:
                        why = f"refused the call ({_reason(exc)})"
                    self.warn(f"MLflow tracking at {self.tracking_uri} {why}: {not_recorded}.")
                    return None

    @contextmanager
    def _mlflow_http_settings(self) -> Iterator[None]:
        """MLflow reads these at each request: no retries of its own (ours are short), our timeout."""
        values = {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(math.ceil(self.timeout_s)),
        }
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def _client(self) -> Any:
        if self._client_obj is None:
            from mlflow.tracking import MlflowClient

            self._client_obj = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client_obj

    def _experiment_id(self, client: Any) -> str:
        """The experiment's id, creating it when missing (another process may create it first)."""
        from mlflow.exceptions import MlflowException

        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(self.experiment)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
            found = client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def _log_joblib(self, run_id: str, model: Any) -> str:
        """The model's joblib file as a plain run artifact under ``model/``."""
        client = self._client()
        if isinstance(model, (str, Path)):
            client.log_artifact(run_id, str(model), "model")
            return f"runs:/{run_id}/model/{Path(model).name}"
        import joblib

        with tempfile.TemporaryDirectory(prefix="ml-platform-mlflow-") as tmp:
            path = Path(tmp) / "model.joblib"
            joblib.dump(model, path)
            client.log_artifact(run_id, str(path), "model")
        return f"runs:/{run_id}/model/model.joblib"


# -- helpers ----------------------------------------------------------------------------------


def _key(key: Any) -> str:
    return str(key)[:MAX_KEY_CHARS]


def _param_value(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return text[:MAX_PARAM_VALUE_CHARS]


def _tag_value(value: Any) -> str:
    return str(value)[:MAX_TAG_VALUE_CHARS]


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _load_joblib(path: str | Path) -> Any:
    import joblib

    return joblib.load(path)


def _requirements(model: Any) -> list[str]:
    """Pinned pip requirements for the model: scikit-learn, cloudpickle, and the distributions of
    the estimator's own classes (a Pipeline's steps included), e.g. lightgbm."""
    modules = {"sklearn", "cloudpickle"}
    objects = [model]
    if hasattr(model, "get_params"):
        try:
            objects += list(model.get_params(deep=True).values())
        except Exception:  # noqa: BLE001 - a half-compatible estimator: its own class still counts
            pass
    for obj in objects:
        modules.add(type(obj).__module__.split(".")[0])
    distributions = importlib_metadata.packages_distributions()
    pins = set()
    for module in modules:
        for dist in distributions.get(module, ()):
            try:
                pins.add(f"{dist}=={importlib_metadata.version(dist)}")
            except importlib_metadata.PackageNotFoundError:
                pass
    return sorted(pins)


def _own_error(exc: BaseException) -> MlPlatformError | None:
    """Our own error (e.g. a stage's StageTimeoutError raised by SIGALRM inside a request) that a
    network library wrapped on its way out: it must not be mistaken for a tracking failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, MlPlatformError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _transient(exc: BaseException) -> bool:
    """Worth another try: the tracker could not be reached or failed (5xx, 429), as opposed to a
    value refused by the client's validation or the server (4xx)."""
    try:
        from mlflow.exceptions import MlflowException, RestException
    except ImportError:
        return False
    if isinstance(exc, RestException):
        status = exc.get_http_status_code()
        return status >= 500 or status == 429
    if isinstance(exc, MlflowException):
        # A request that never got an answer is wrapped as INTERNAL_ERROR by MLflow's REST client.
        return exc.error_code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED")
    return isinstance(exc, OSError)  # requests' and urllib3's connection errors, timeouts


def _reason(exc: BaseException) -> str:
    """The exception in a few words (MLflow's messages repeat the whole URL and urllib3's chain)."""
    text = " ".join(str(exc).split())
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text:
        return "timed out"
    if status := re.search(r"too many (\d{3}) error responses", text):
        return f"HTTP {status.group(1)}"
    return f"{type(exc).__name__}: {text[:200]}"
