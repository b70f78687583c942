"""Storage that cannot be reached, turned into Dagster retries: one policy, one helper, everywhere.

The stages that touch storage throughout (ingest, deploy, score) have a ``RetryPolicy`` by default
(``retry_policy``: exponential backoff from ML_PLATFORM_RETRY_DELAY_S, with jitter); train and
evaluate have none unless ``stages.<stage>.retries`` says so, since a failed fit is not worth
repeating. Their reads of storage (the IO managers' loads, the production version, a stored
version or output to reuse) go through ``retried_when_unavailable``, which turns a
``StorageUnavailableError`` into a ``dg.RetryRequested`` with the same backoff for its attempt, so
an outage is retried in every stage. Only that error is retried; bad data or bad config fail at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dagster as dg

from ml_platform.errors import StorageUnavailableError
from ml_platform.settings import Settings, load_settings


def retry_policy(max_retries: int, delay_s: float) -> dg.RetryPolicy:
    """Exponential backoff from ``delay_s``, with jitter: 2 s, then 4 s, 8 s (± jitter) by default."""
    return dg.RetryPolicy(
        max_retries=max_retries, delay=delay_s, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )


def storage_retry_policy(settings: Settings | None = None) -> dg.RetryPolicy:
    """The policy of the steps that touch storage (ML_PLATFORM_STORAGE_RETRIES, ML_PLATFORM_RETRY_DELAY_S)."""
    settings = settings or load_settings()
    return retry_policy(settings.storage_retries, settings.retry_delay_s)


def attempt_of(context: Any) -> int | None:
    """The step's attempt number (1 for the first try) from any context of a step (asset, check,
    input or output), or None for a context built outside a run."""
    for read in (
        lambda: context.retry_number + 1,
        lambda: context.step_context.previous_attempt_count + 1,
    ):
        try:
            return int(read())
        except (AttributeError, dg.DagsterInvariantViolationError):
            continue
    return None


@contextlib.contextmanager
def retried_when_unavailable(context: Any, settings: Settings | None = None) -> Iterator[None]:
    """Unreachable storage fails the step into a retry, after the storage policy's delay for this
    attempt; outside a run (nothing to retry) the error is raised as it is."""
    try:
        yield
    except StorageUnavailableError as exc:
        attempt = attempt_of(context)
        if attempt is None:
            raise
        policy = storage_retry_policy(settings)
        raise dg.RetryRequested(
            max_retries=policy.max_retries, seconds_to_wait=policy.calculate_delay(attempt)
        ) from exc
