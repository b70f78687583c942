"""The served version of one model, following one of its pointers (hot reload): ``production``, or a
rollout's ``candidate`` (shadow, canary).

A new version is loaded and its sha256 verified *beside* the one serving, then swapped in with one
reference assignment: a request keeps the model object it started with, so requests in flight
finish on their version. A version that cannot be loaded or does not verify is refused: the old
production version keeps serving, and ``problem`` says why (``/readyz``, the log).

The candidate holder follows the open candidate (``ModelStore.candidate``: a candidate pointer that
is not closed and does not name production's version). Without one it is empty, which is no
problem. A candidate that cannot be loaded is refused and the holder emptied (an older candidate is
no candidate any more); production never depends on it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Any

from ml_platform.checked_model import CheckedModel
from ml_platform.errors import MlPlatformError, StorageUnavailableError

logger = logging.getLogger("ml_platform.serving")


@dataclass(frozen=True)
class Swap:
    """What one refresh did: ``loaded`` a new version, or ``refused`` one (with why)."""

    model_name: str
    outcome: str  # "loaded" | "refused" | "unchanged" | "missing"
    version: str | None = None
    previous: str | None = None
    reason: str | None = None


def for_requests(sklearn_model: Any) -> Any:
    """The model as a server should call it: one thread per predict call. Measured on 2 cores
    (bench/serving.py): a 100-tree forest answers 1 row in 25 ms with n_jobs=-1 (threads started per
    call) and 6.6 ms with n_jobs=1; 1,000 rows in 25 vs 9 ms. Concurrency comes from requests
    (batching, workers) instead."""
    final = sklearn_model.steps[-1][1] if hasattr(sklearn_model, "steps") else sklearn_model
    if "n_jobs" in getattr(final, "get_params", dict)():
        final.set_params(n_jobs=1)
    return sklearn_model


ROLES = ("production", "candidate")


class ModelHolder:
    def __init__(self, model_name: str, store: Any, role: str = "production"):
        if role not in ROLES:
            raise ValueError(f"a holder follows the production or the candidate pointer, not {role!r}")
        self.model_name = model_name
        self.store = store
        self.role = role
        self.current: CheckedModel | None = None
        self.problem: str | None = "not loaded yet" if role == "production" else None
        self.promoted_at: str | None = None
        self.loaded_at: str | None = None
        self._token: str | None = None  # the pointer state last acted on
        self._lock = threading.Lock()  # one refresh at a time (poller and SIGHUP)

    def forget_pointer(self) -> None:
        """Make the next refresh look at the pointer again even if it has not moved (SIGHUP):
        a version refused for a missing or changed file is tried again."""
        self._token = None

    @property
    def label(self) -> str:
        """How the log names this holder: the model, and ``(candidate)`` for a candidate."""
        return self.model_name if self.role == "production" else f"{self.model_name} (candidate)"

    def _pointer_state(self) -> tuple[Any, str | None]:
        """The pointer this holder follows and a token of its state. A candidate's state is its pointer's
        and production's (production moving onto the candidate's version ends the candidate)."""
        if self.role == "production":
            return self.store.pointer_state(self.model_name)
        candidate, candidate_token = self.store.pointer_state(self.model_name, "candidate")
        production, production_token = self.store.pointer_state(self.model_name)
        token = None if candidate_token is None else f"{candidate_token}/{production_token}"
        if candidate is None or candidate.closed is not None:
            return None, token
        if production is not None and production.version == candidate.version:
            return None, token  # ModelStore.candidate: a promotion a crash left unclosed
        return candidate, token

    def refresh(self) -> Swap:
        """Follow the pointer: load, verify and swap in a new version; keep the old production
        version if the new one is refused. Runs off the event loop (it reads the store)."""
        with self._lock:
            try:
                pointer, token = self._pointer_state()
            except (MlPlatformError, OSError, ValueError) as exc:
                return self._refuse(None, f"the {self.role} pointer cannot be read: {exc}", None)
            if token is not None and token == self._token:
                return Swap(self.model_name, "unchanged", self.version)
            if pointer is None:
                return self._missing(token)
            target = pointer.version
            if self.current is not None and self.current.version.version == target:
                self._token, self.promoted_at = token, pointer.promoted_at
                return Swap(self.model_name, "unchanged", target)
            try:
                model = self._load(pointer)
            except StorageUnavailableError as exc:
                # Not the version's fault: try again at the next poll.
                return self._refuse(target, str(exc), None)
            except Exception as exc:  # noqa: BLE001 - whatever stops a version loading refuses it
                return self._refuse(target, f"{type(exc).__name__}: {exc}", token)
            previous = self.version
            self.current = model  # the swap: one reference assignment
            self._token, self.problem = token, None
            self.promoted_at = pointer.promoted_at
            self.loaded_at = dt.datetime.now(dt.UTC).isoformat()
            path = "its compiled form" if model.compiled is not None else f"scikit-learn ({model.compiled_problem})"
            was = f" (was {previous})" if previous else ""
            logger.info(f"{self.label}: serving {target}{was} through {path}")
            return Swap(self.model_name, "loaded", target, previous)

    def _load(self, pointer: Any) -> CheckedModel:
        sklearn_model, version = self.store.load(self.model_name, version=pointer.version)  # verifies the sha256
        if pointer.sha256 and pointer.sha256 != version.sha256:
            raise MlPlatformError(
                f"the pointer names sha256 {pointer.sha256[:12]}…, the version records {version.sha256[:12]}…"
            )
        return CheckedModel(for_requests(sklearn_model), version)

    def _missing(self, token: str | None) -> Swap:
        """No version to follow: production keeps what it serves (not ready before its first
        version); a candidate holder empties (no open candidate is no problem)."""
        self._token = token
        if self.role == "production":
            if self.current is None:
                self.problem = f"model {self.model_name!r} has no production version yet"
            return Swap(self.model_name, "missing")
        previous = self.version
        self.current, self.problem, self.promoted_at = None, None, None
        if previous is not None:
            logger.info(f"{self.label}: {previous} is no candidate any more")
            return Swap(self.model_name, "unloaded", None, previous)
        return Swap(self.model_name, "missing")

    def _refuse(self, version: str | None, reason: str, token: str | None) -> Swap:
        # The token is kept so that a refused state is not retried at every poll (SIGHUP retries it).
        if token is not None:
            self._token = token
        previous = self.version
        if self.role == "candidate" and version is not None:
            # The pointer names another candidate: the one loaded is no candidate any more.
            self.current = None
        serving = f"; still serving {self.version}" if self.current else ""
        self.problem = f"refused {version or 'the new version'}: {reason}{serving}"
        logger.error(f"{self.label}: {self.problem}")
        return Swap(self.model_name, "refused", version, previous, reason)

    @property
    def version(self) -> str | None:
        return self.current.version.version if self.current else None

    def describe(self) -> dict[str, Any]:
        """What GET /v1/models/{name} answers."""
        model = self.current
        if model is None:
            return {"name": self.model_name, "role": self.role, "ready": False, "problem": self.problem}
        record = model.version.record
        return {
            "name": self.model_name,
            "role": self.role,
            "ready": True,
            "version": model.version.version,
            "sha256": model.version.sha256,
            "promoted_at": self.promoted_at,
            "loaded_at": self.loaded_at,
            "task": record.recipe.task,
            "metrics": record.metrics,
            # A binary classifier's threshold on the positive class (None: it predicts at 0.5).
            "decision_threshold": record.decision_threshold,
            "data_as_of": record.fit.data_as_of,
            "signature": model.signature.to_dict(),
            # Through its compiled form or scikit-learn, with the parity's evidence (ml_platform.compiled).
            "serving": model.serving_path(),
            "problem": self.problem,
        }
