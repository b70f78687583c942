"""Retries of raw_data: transient storage errors are retried (RetryPolicy from the settings), bad
input is not. The transient errors come from a real landing-zone RESOURCE that fails its first N
reads; nothing in Dagster is patched."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.backends.local import LocalLandingZone, LocalModelStore
from ml_platform.constants import PRODUCTION_POINTER
from ml_platform.errors import StorageUnavailableError
from ml_platform.resources import LandingFile
from ml_platform.settings import load_settings
from ml_platform_tests.support.constants import DAYS
from ml_platform_tests.support.notifications import (
    body_text,
    evaluate_failure_sensor,
    notifier_for,
)
from ml_platform_tests.support.pipelines import ALL_DEFS
from ml_platform_tests.support.platform import Platform
from ml_platform_tests.support.results import materialized, step_errors
from ml_platform_tests.support.servers import SmtpServer, WebhookServer

DAY = DAYS[-1]
TRANSIENT = "transient storage error"


class FlakyLandingZone(LocalLandingZone):
    """A local landing zone whose first `failures` reads fail like a storage outage.

    The number of reads so far is kept in `state_file`, on disk, so it survives Dagster building
    the resource again for a retried step.
    """

    state_file: str
    failures: int

    def reads(self) -> int:
        path = Path(self.state_file)
        return int(path.read_text()) if path.exists() else 0

    def read_bytes(self, landing_file: LandingFile) -> bytes:
        count = self.reads() + 1
        Path(self.state_file).write_text(str(count))
        if count <= self.failures:
            raise ConnectionError(TRANSIENT)
        return super().read_bytes(landing_file)


def flaky_zone(platform: Platform, failures: int) -> FlakyLandingZone:
    return FlakyLandingZone(root=str(platform.landing), state_file=str(platform.root / "reads.txt"), failures=failures)


def materialize_raw_data(platform: Platform, zone: LocalLandingZone, day: str) -> dg.ExecuteInProcessResult:
    resources = {**platform.resources, "landing_zone": zone}
    return dg.materialize(
        ALL_DEFS,
        selection="key:demo/raw_data",
        partition_key=day,
        instance=platform.instance,
        resources=resources,
        raise_on_error=False,
    )


def step_events(result: dg.ExecuteInProcessResult, event_type: dg.DagsterEventType, step: str = "demo__raw_data"):
    return [e for e in result.all_events if e.event_type == event_type and e.step_key == step]


def test_transient_errors_are_retried_until_the_read_succeeds(seeded: Platform):
    if load_settings().storage_retries < 2:
        pytest.skip("ML_PLATFORM_STORAGE_RETRIES < 2: two failures cannot be retried away")
    zone = flaky_zone(seeded, failures=2)

    result = materialize_raw_data(seeded, zone, DAY)

    assert result.success
    assert materialized(result) == {"raw_data"}
    # In-process, an attempt is one STEP_START and then one STEP_RESTARTED per retry.
    assert len(step_events(result, dg.DagsterEventType.STEP_START)) == 1
    assert len(step_events(result, dg.DagsterEventType.STEP_RESTARTED)) == 2
    assert len(step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == 2
    assert step_events(result, dg.DagsterEventType.STEP_FAILURE) == []
    assert zone.reads() == 3
    # Each retry says why: the transient error is visible in the run's events.
    for event in step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY):
        error = event.event_specific_data.error
        messages = []
        while error is not None:
            messages.append(error.message)
            error = error.cause
        assert any(TRANSIENT in m for m in messages)
    # The third attempt stored the day's data, exactly as it is in the landing file.
    expected = pd.read_parquet(seeded.landing / f"{DAY}.parquet")
    pd.testing.assert_frame_equal(
        result.output_for_node("demo__raw_data").reset_index(drop=True), expected.reset_index(drop=True)
    )
    [materialization] = result.get_asset_materialization_events()
    assert materialization.materialization.partition == DAY
    assert materialization.materialization.metadata["dagster/row_count"].value == len(expected)


def test_persistent_storage_error_fails_after_all_retries_and_is_announced(
    seeded: Platform, webhook: WebhookServer, smtp: SmtpServer
):
    attempts = 1 + load_settings().storage_retries
    zone = flaky_zone(seeded, failures=1000)

    result = materialize_raw_data(seeded, zone, DAY)

    assert not result.success
    assert "raw_data" not in materialized(result)
    assert len(step_events(result, dg.DagsterEventType.STEP_START)) == 1
    assert len(step_events(result, dg.DagsterEventType.STEP_RESTARTED)) == attempts - 1
    assert len(step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == attempts - 1
    assert len(step_events(result, dg.DagsterEventType.STEP_FAILURE)) == 1
    assert zone.reads() == attempts
    assert TRANSIENT in step_errors(result)

    evaluate_failure_sensor(seeded.instance, result.run_id, notifier_for(webhook, smtp))

    assert len(webhook.bodies) == 1
    fields = webhook.bodies[0]["fields"]
    assert fields["Run id"] == result.run_id
    assert fields["Failing step"] == "demo__raw_data"
    assert TRANSIENT in fields["Error"]
    assert "raw_data" in webhook.bodies[0]["text"]
    assert TRANSIENT in webhook.bodies[0]["text"]
    assert len(smtp.messages) == 1
    assert TRANSIENT in body_text(smtp.messages[0])


def _remove(path: Path) -> None:
    path.unlink()


def _corrupt(path: Path) -> None:
    path.write_bytes(b"this is not a parquet file")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("spoil", "message", "reads"),
    [
        (_remove, f"no landing file for {DAY}", 0),
        (_corrupt, "cannot be read", 1),
        (_empty, "is empty (0 bytes)", 1),
    ],
    ids=["missing", "corrupt", "empty"],
)
def test_bad_input_is_not_retried(seeded: Platform, spoil, message: str, reads: int):
    spoil(seeded.landing / f"{DAY}.parquet")
    zone = flaky_zone(seeded, failures=0)  # storage itself is healthy

    result = materialize_raw_data(seeded, zone, DAY)

    assert not result.success
    assert message in step_errors(result)
    assert len(step_events(result, dg.DagsterEventType.STEP_START)) == 1
    assert step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    assert step_events(result, dg.DagsterEventType.STEP_RESTARTED) == []
    assert len(step_events(result, dg.DagsterEventType.STEP_FAILURE)) == 1
    assert zone.reads() == reads  # read once at most: never again after the error


def test_bad_config_of_a_training_step_is_not_retried(seeded: Platform):
    """Only unreachable storage is retried in the training chain: a bad hyperparameter fails once."""
    assert all(r.success for r in seeded.ingest())
    result = seeded.train(run_config={"ops": {"demo__trained_model": {"config": {"n_estimators": 0}}}})
    assert not result.success
    assert "n_estimators" in step_errors(result)
    assert step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY, "demo__trained_model") == []
    assert len(step_events(result, dg.DagsterEventType.STEP_FAILURE, "demo__trained_model")) == 1


class FlakyModelStore(LocalModelStore):
    """A local model store whose first `failures` reads of the production pointer fail as an
    unreachable store does (the count kept on disk, across the step's retries)."""

    state_file: str
    failures: int

    def reads(self) -> int:
        path = Path(self.state_file)
        return int(path.read_text()) if path.exists() else 0

    def read_bytes(self, key: str) -> bytes:
        if key.endswith(PRODUCTION_POINTER):
            count = self.reads() + 1
            Path(self.state_file).write_text(str(count))
            if count <= self.failures:
                raise StorageUnavailableError(f"{TRANSIENT}: {key}")
        return super().read_bytes(key)


def test_the_train_stage_retries_an_unreachable_store_though_it_has_no_retry_policy(seeded: Platform):
    """train has no RetryPolicy by default (a failed fit is not worth repeating), yet its reads of
    the model store (the production version that pins the columns' kinds) retry an outage."""
    assert all(r.success for r in seeded.ingest())
    first = seeded.train()  # a production version, so that the next model reads it
    assert first.success, step_errors(first)
    store = FlakyModelStore(root=str(seeded.store_dir), state_file=str(seeded.root / "store-reads.txt"), failures=1)
    result = dg.materialize(
        ALL_DEFS,
        selection="key:demo/trained_model",
        partition_key=DAY,
        instance=seeded.instance,
        resources={**seeded.resources, "model_store": store},
        run_config={"ops": {"demo__trained_model": {"config": {"refit": True}}}},
        raise_on_error=False,
    )
    assert result.success, step_errors(result)
    assert len(step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY, "demo__trained_model")) == 1
    assert store.reads() >= 2
