"""The model store: versioned model artifacts plus atomically switched pointers: ``production``, and
a rollout's ``candidate`` beside it.

Layout under the store root (the same keys on every backend)::

    <model_name>/<version>/model.joblib     the model: the fitted scikit-learn object (joblib)
    <model_name>/<version>/metadata.json    metrics, params, data fingerprint, sha256, created_at
    <model_name>/production.json            the pointer: which version serves, since when, why
    <model_name>/history/<time>-<version>.json   one record per pointer move
    <model_name>/candidate.json             a rollout's candidate (shadow, canary): beside production
    <model_name>/candidate_history/<time>-<version>[-promoted|-aborted].json   its moves
    <model_name>/recipes/<sha256>.json      the recipe index: the newest version of one recipe identity

A version is complete only once its ``metadata.json`` exists; it is written after the artifact, and
the pointer is moved after both. Every write is atomic, so a crash leaves either the old state or
the new one. Loading verifies the artifact's sha256 against the metadata.

Only load artifacts from a store you trust: joblib files are pickles and run code when loaded.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import dagster as dg
import joblib

from ml_platform import constants, storage
from ml_platform.errors import (
    MlPlatformError,
    ModelDependencyError,
    ModelIntegrityError,
    ModelStoreError,
    ModelVersionNotFoundError,
    NoProductionModelError,
    PointerConflictError,
)
from ml_platform.pointer import Pointer
from ml_platform.user_code import check_requirements
from ml_platform.version_record import VersionRecord


@dataclass(frozen=True)
class ModelVersion:
    """A complete version in the store: where it is, and its metadata.json (``metadata``, as stored;
    ``record``, as every reader reads it)."""

    model_name: str
    version: str
    location: str
    metadata: dict[str, Any]

    @functools.cached_property
    def record(self) -> VersionRecord:
        return VersionRecord.from_dict(self.metadata)

    @property
    def sha256(self) -> str:
        return self.record.sha256


# The files a version keeps beside its model (``extras``), in one format for the writer (deploy)
# and every reader (champion / challenger, the drift checks, a reused model).
def encode_train_rows(hashes: Any) -> bytes:
    """The training rows' hashes (``ml.row_hashes``) as an .npy file (no pickles)."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, hashes, allow_pickle=False)
    return buffer.getvalue()


def decode_train_rows(data: bytes) -> Any:
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_drift_profile(profile: dict[str, Any]) -> bytes:
    """The training data's drift profile (``drift.profile``) as JSON."""
    return json.dumps(profile, sort_keys=True).encode()


def decode_drift_profile(data: bytes) -> dict[str, Any]:
    return json.loads(data)


def encode_calibration(calibration: dict[str, Any]) -> bytes:
    """A classifier's calibration (``estimate.Calibration.to_dict()``) as JSON."""
    return json.dumps(calibration, sort_keys=True).encode()


def decode_calibration(data: bytes) -> dict[str, Any]:
    return json.loads(data)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _pointer_file(role: str) -> str:
    try:
        return constants.POINTER_FILES[role]
    except KeyError:
        raise ModelStoreError(f"a model has a production and a candidate pointer, not {role!r}") from None


def _history_folder(role: str) -> str:
    _pointer_file(role)
    return constants.POINTER_HISTORIES[role]


def check_segment(value: str, what: str) -> str:
    """A name of the store as a path segment (``storage.check_segment``); ModelStoreError otherwise."""
    return storage.check_segment(value, what, ModelStoreError)


class ModelStore(dg.ConfigurableResource, ABC):
    """Versioned model artifacts with a production pointer. Backends implement seven primitives: five
    for whole objects (write, read, exists, list, uri), ``swap_bytes``, the compare-and-swap the
    pointer moves by, and ``delete_tree`` for the prediction log's retention."""

    # -- primitives every backend implements -------------------------------------------------
    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Write a whole object atomically: readers see the old content or the new, never half."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Read a whole object; FileNotFoundError if it does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object exists."""

    @abstractmethod
    def list_children(self, prefix: str) -> list[str]:
        """Names directly under a prefix (folders and objects), sorted; ``""`` is the store root."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where a key lives, for people (a path or URL)."""

    @abstractmethod
    def delete_tree(self, prefix: str) -> None:
        """Delete a folder and everything under it (nothing there: nothing to do). Only the
        prediction log's retention deletes; versions and the pointer are never deleted."""

    # -- the contract ---------------------------------------------------------------------------
    def save_version(
        self,
        model_name: str,
        model: Any,
        record: VersionRecord | dict[str, Any],
        identity: str | None = None,
        extras: dict[str, bytes] | None = None,
    ) -> ModelVersion:
        """Store a model as a new version and return it. ``record`` is what the version records about
        the model (a VersionRecord; a dict is read as one); the store adds its name, version, identity,
        sha256, size, time and extras.

        ``identity`` names what the model was built from (data, params, code). A complete version
        with the same identity is returned instead of writing a duplicate: re-running a pipeline
        on unchanged input is idempotent. (Comparing artifact bytes would not do: two fits of the
        same forest predict the same but do not pickle to the same bytes.)

        The artifact (and ``extras``: more files of the version, by name) is written first and
        ``metadata.json`` last, so a crash in between leaves an incomplete version that every reader
        ignores.
        """
        check_segment(model_name, "model name")
        if identity is not None:
            existing = self.find_version(model_name, identity)
            if existing is not None:
                return existing

        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        artifact = buffer.getvalue()
        sha256 = hashlib.sha256(artifact).hexdigest()

        created_at = _utcnow()
        version = f"v{created_at:%Y%m%dT%H%M%S%f}Z-{sha256[:8]}"
        if not isinstance(record, VersionRecord):
            record = VersionRecord.from_dict(record)
        stored = record.stored(
            model_name=model_name,
            version=version,
            identity=identity,
            sha256=sha256,
            size_bytes=len(artifact),
            created_at=created_at.isoformat(),
            extras=sorted(extras or {}),
        ).to_dict()
        # Serialized before anything is written, so unserializable metadata leaves no orphan.
        encoded = json.dumps(stored, indent=2, sort_keys=True, default=str).encode()
        self.write_bytes(f"{model_name}/{version}/{constants.MODEL_FILENAME}", artifact)
        for name, data in (extras or {}).items():
            self.write_bytes(f"{model_name}/{version}/{check_segment(name, 'file name')}", data)
        self.write_bytes(f"{model_name}/{version}/{constants.METADATA_FILENAME}", encoded)
        if identity is not None:
            # After the version is complete: the index never names an incomplete version. (A crash
            # in between leaves a version the index misses: the same recipe may be stored twice.)
            self._index_recipe(model_name, identity, version)
        return ModelVersion(model_name, version, self.uri(f"{model_name}/{version}"), json.loads(encoded))

    def find_version(self, model_name: str, identity: str) -> ModelVersion | None:
        """The newest complete version built from the recipe ``identity`` (see ``save_version``), or None.

        One read of the recipe index (``<model>/recipes/<sha256 of identity>.json``, written by
        ``save_version`` after the version is complete) and one of the version it names, whatever
        the number of versions. A store whose versions predate the index is scanned once, and the
        scan indexes them (``recipes/INDEXED`` says it was done); a damaged or stale entry is
        settled by a scan too."""
        check_segment(model_name, "model name")
        try:
            entry = json.loads(self.read_bytes(self._recipe_key(model_name, identity)))
            found = self.get_version(model_name, check_segment(str(entry["version"]), "version"))
            if found.record.identity == identity:
                return found
        except FileNotFoundError:
            if self.exists(f"{model_name}/{constants.RECIPES_FOLDER}/{constants.RECIPES_INDEXED}"):
                return None
        except (ModelStoreError, ValueError, KeyError, TypeError):
            pass  # a damaged entry, or one naming another version: the scan below settles it
        return self._scan_for_recipe(model_name, identity)

    def _scan_for_recipe(self, model_name: str, identity: str) -> ModelVersion | None:
        """Every version's metadata read once: the newest of ``identity``, and the index written
        for all of them (best effort: a store this process may only read is still searched)."""
        found = None
        newest: dict[str, str] = {}
        for existing in self.list_versions(model_name):  # oldest first: the newest of a recipe wins
            recorded = existing.record.identity
            if recorded:
                newest[recorded] = existing.version
            if recorded == identity:
                found = existing
        try:
            for recorded, version in newest.items():
                self._index_recipe(model_name, recorded, version)
            self.write_bytes(
                f"{model_name}/{constants.RECIPES_FOLDER}/{constants.RECIPES_INDEXED}",
                json.dumps({"indexed_at": _utcnow().isoformat(), "versions": len(newest)}).encode(),
            )
        except (OSError, MlPlatformError):
            pass  # refused or unreachable: the next search scans again
        return found

    def _recipe_key(self, model_name: str, identity: str) -> str:
        return f"{model_name}/{constants.RECIPES_FOLDER}/{hashlib.sha256(identity.encode()).hexdigest()}.json"

    def _index_recipe(self, model_name: str, identity: str, version: str) -> None:
        self.write_bytes(
            self._recipe_key(model_name, identity), json.dumps({"identity": identity, "version": version}).encode()
        )

    def read_extra(self, version: ModelVersion, name: str) -> bytes | None:
        """A file saved with the version (``extras``), or None if it has none by that name."""
        if name not in version.record.extras:
            return None
        return self.read_bytes(f"{version.model_name}/{version.version}/{check_segment(name, 'file name')}")

    def get_version(self, model_name: str, version: str) -> ModelVersion:
        """A complete version; ModelVersionNotFoundError if absent or incomplete."""
        check_segment(model_name, "model name")
        check_segment(version, "version")
        key = f"{model_name}/{version}/{constants.METADATA_FILENAME}"
        try:
            record = json.loads(self.read_bytes(key))
        except FileNotFoundError:
            raise ModelVersionNotFoundError(
                f"model {model_name!r} has no complete version {version!r} in {self.uri(model_name)}"
            ) from None
        except json.JSONDecodeError as exc:
            raise ModelStoreError(f"{self.uri(key)} is not valid JSON: {exc}") from exc
        return ModelVersion(model_name, version, self.uri(f"{model_name}/{version}"), record)

    def list_models(self) -> list[str]:
        """The names of the models that have at least one complete version, sorted."""
        return [name for name in self.list_children("") if not name.startswith(".") and self.list_versions(name)]

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        """Complete versions, oldest first (version names sort by creation time)."""
        check_segment(model_name, "model name")
        versions = []
        for name in self.list_children(model_name):
            if not name.startswith("v"):
                continue
            try:
                versions.append(self.get_version(model_name, name))
            except ModelVersionNotFoundError:
                continue  # an interrupted write: ignored until cleaned up
        return versions

    def production(self, model_name: str) -> ModelVersion | None:
        """The version the production pointer names, or None before the first promotion."""
        check_segment(model_name, "model name")
        pointer = self.pointer(model_name)
        return self.get_version(model_name, pointer.version) if pointer is not None else None

    def pointer(self, model_name: str, role: str = "production") -> Pointer | None:
        """The pointer of ``role`` ("production" or "candidate"), as stored (a candidate's may be closed)."""
        return self.pointer_state(model_name, role)[0]

    def pointer_state(self, model_name: str, role: str = "production") -> tuple[Pointer | None, str | None]:
        """The pointer of ``role`` and a token of its exact state, for ``promote(expected=...)``."""
        check_segment(model_name, "model name")
        try:
            data = self.read_bytes(f"{model_name}/{_pointer_file(role)}")
        except FileNotFoundError:
            return None, None
        return Pointer.from_bytes(data), hashlib.sha256(data).hexdigest()

    def candidate(self, model_name: str) -> Pointer | None:
        """The open candidate of a rollout: the candidate pointer unless it is closed or names the
        version production serves (a promotion a crash left unclosed)."""
        pointer = self.pointer(model_name, "candidate")
        if pointer is None or pointer.closed is not None:
            return None
        production = self.pointer(model_name)
        return None if production is not None and production.version == pointer.version else pointer

    @abstractmethod
    def swap_bytes(self, key: str, data: bytes, expected: str | None) -> None:
        """Compare-and-swap: write ``data`` only if the object's sha256 is still ``expected``
        (None: only if it does not exist); otherwise raise PointerConflictError."""

    def promote(
        self,
        model_name: str,
        version: str,
        reason: str,
        actor: str | None = None,
        expected: str | None | object = ...,
        role: str = "production",
    ) -> Pointer:
        """Point ``role``'s pointer (production, or the rollout's candidate) at a complete version,
        atomically, and record who, when and why.

        The pointer moves by compare-and-swap: ``expected`` is the ``pointer_state`` token the
        caller decided on (default: the state read here). If another process moved the pointer in
        between, PointerConflictError is raised and nothing is written, so two deploys at once
        can never overwrite each other unseen.
        """
        target = self.get_version(model_name, version)  # refuses incomplete versions
        current, token = self._expected_state(model_name, role, expected)
        record = Pointer(
            version=target.version,
            sha256=target.sha256,
            promoted_at=_utcnow().isoformat(),
            previous=current.version if current and current.closed is None else None,
            reason=reason,
            actor=actor or "ml_platform",
        )
        return self._move(model_name, role, current, token, record)

    def close_candidate(
        self, model_name: str, closed: str, reason: str, actor: str | None = None, expected: str | None | object = ...
    ) -> Pointer:
        """End the open candidate: "promoted" (after production moved to it) or "aborted" (production
        never moved). The candidate pointer keeps its version, marked closed, by compare-and-swap;
        the move is in the candidate's history."""
        if closed not in ("promoted", "aborted"):
            raise ModelStoreError(f"a candidate is closed as promoted or aborted, not {closed!r}")
        current, token = self._expected_state(model_name, "candidate", expected)
        if current is None or current.closed is not None:
            raise ModelStoreError(f"model {model_name!r} has no open candidate to close")
        record = Pointer(
            version=current.version,
            sha256=current.sha256,
            promoted_at=_utcnow().isoformat(),
            previous=current.version,
            reason=reason,
            actor=actor or "ml_platform",
            closed=closed,
        )
        return self._move(model_name, "candidate", current, token, record)

    def _expected_state(self, model_name: str, role: str, expected: str | None | object):
        current, token = self.pointer_state(model_name, role)
        if expected is not ... and expected != token:
            raise PointerConflictError(
                f"the {role} pointer of {model_name!r} moved to {current.version if current else None} meanwhile"
            )
        return current, token

    def _move(self, model_name: str, role: str, current: Pointer | None, token: str | None, record: Pointer) -> Pointer:
        if current is not None:
            self.record_history(model_name, current, role)  # a move a crash left unrecorded
        self.swap_bytes(f"{model_name}/{_pointer_file(role)}", record.to_bytes(), token)
        self.record_history(model_name, record, role)
        return record

    def record_history(self, model_name: str, pointer: Pointer, role: str = "production") -> None:
        """Record a pointer move (a ``production.json`` or ``candidate.json`` record) in its history, once.

        The pointer moves first and its history record is written after it, so a process killed
        in between leaves one move unrecorded; the next deploy (or promote) records it. The key
        follows from the record itself, so recording it again is a no-op.
        """
        stamp = f"{pointer.promoted_time:%Y%m%dT%H%M%S%f}Z-{pointer.version}"
        key = f"{model_name}/{_history_folder(role)}/{stamp}{'-' + pointer.closed if pointer.closed else ''}.json"
        if not self.exists(key):
            self.write_bytes(key, pointer.to_bytes())

    def history(self, model_name: str, role: str = "production") -> list[Pointer]:
        """Every move of ``role``'s pointer, oldest first."""
        check_segment(model_name, "model name")
        folder = f"{model_name}/{_history_folder(role)}"
        return [
            Pointer.from_bytes(self.read_bytes(f"{folder}/{name}"))
            for name in self.list_children(folder)
            if name.endswith(".json")
        ]

    def load(self, model_name: str, version: str | None = None) -> tuple[Any, ModelVersion]:
        """Load a version (default: production) after verifying its sha256."""
        if version is None:
            model_version = self.production(model_name)
            if model_version is None:
                raise NoProductionModelError(
                    f"model {model_name!r} has no production version in {self.uri(model_name)}"
                )
        else:
            model_version = self.get_version(model_name, version)
        key = f"{model_name}/{model_version.version}/{constants.MODEL_FILENAME}"
        try:
            artifact = self.read_bytes(key)
        except FileNotFoundError:
            raise ModelVersionNotFoundError(f"{self.uri(key)} is missing") from None
        actual = hashlib.sha256(artifact).hexdigest()
        if actual != model_version.sha256:
            raise ModelIntegrityError(
                f"{self.uri(key)} has sha256 {actual}, but {model_version.sha256} was recorded"
                " when it was written: refusing to load a changed artifact"
            )
        what = f"model {model_name} {model_version.version}"
        check_requirements(model_version.record.recipe.requirements, what)
        try:
            return joblib.load(io.BytesIO(artifact)), model_version
        except (ModuleNotFoundError, AttributeError) as exc:
            # Pickles name their classes and functions by module; one that is gone here says so.
            raise ModelDependencyError(
                f"{what} cannot be loaded here: {exc} (the code it was trained with is missing or changed)"
            ) from None
