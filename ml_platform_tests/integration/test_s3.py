"""ML_PLATFORM_ENV=prod against a real S3-compatible server (SeaweedFS on 127.0.0.1): the landing
zone, the IO managers and the model store on S3, through dagster-aws; the pipeline end to end
with dg.materialize and the real CLI; wrong credentials."""

import io
import json
import subprocess

import dagster as dg
import pandas as pd
import pytest
from dagster_aws.s3 import S3Resource

from ml_platform import constants
from ml_platform.backends.s3 import S3LandingZone, S3ModelStore
from ml_platform.errors import StorageAccessError
from ml_platform.serving import load_production_model
from ml_platform.signature import Signature
from ml_platform_tests.support.constants import (
    BIN,
    DAYS,
    END_DAY,
    MODEL_NAME,
    ROOT,
    TARGET,
)
from ml_platform_tests.support.pipelines import ALL_DEFS, DEMO
from ml_platform_tests.support.platform import project_env
from ml_platform_tests.support.results import materialized, step_errors
from ml_platform_tests.support.s3 import s3_platform  # noqa: F401
from ml_platform_tests.support.s3_server import REGION, SECRET_KEY


def test_prod_resources_are_the_s3_backends(s3_platform):
    resources = s3_platform.resources
    assert type(resources["landing_zone"]).__name__ == "S3LandingZone"
    assert type(resources["model_store"]).__name__ == "S3ModelStore"
    assert type(resources["io_manager"]).__name__ == "S3ParquetIOManager"
    assert type(resources["model_io_manager"]).__name__ == "S3JoblibIOManager"


def test_pipeline_end_to_end_on_s3(s3_platform, demo_frame):
    s3_platform.seed()
    ingest = s3_platform.ingest_range(DAYS)
    assert ingest.success, step_errors(ingest)
    result = s3_platform.train()
    assert result.success, step_errors(result)
    assert "deployed_model" in materialized(result)

    keys = {o.key for o in s3_platform.bucket.objects("")}
    assert {f"assets/demo/raw_data/{day}.parquet" for day in DAYS} <= keys
    assert f"assets/demo/trained_model/{END_DAY}.joblib" in keys
    pointer = json.loads(s3_platform.bucket.get(f"model_store/{MODEL_NAME}/production.json"))
    assert f"model_store/{MODEL_NAME}/{pointer['version']}/model.joblib" in keys
    assert f"model_store/{MODEL_NAME}/{pointer['version']}/metadata.json" in keys
    # Nothing was written to the local folders.
    assert not s3_platform.assets_dir.exists() and not s3_platform.store_dir.exists()

    model, version = s3_platform.store.load(MODEL_NAME)  # sha256 verified
    assert version.version == pointer["version"]
    # The signature the model was trained with comes back from the bucket as it was recorded.
    stored = json.loads(s3_platform.bucket.get(f"model_store/{MODEL_NAME}/{version.version}/metadata.json"))
    trained = result.asset_value(["demo", "trained_model"])
    assert Signature.from_dict(stored["signature"]) == trained.fit.signature
    assert Signature.of_version(version.metadata).columns == list(demo_frame.drop(columns=[TARGET]).columns)
    assert (
        version.location == f"s3://{s3_platform.server.bucket}/{s3_platform.prefix}/model_store/"
        f"{MODEL_NAME}/{version.version}"
    )
    predictions = model.predict(demo_frame.drop(columns=[TARGET]).head(20))
    assert len(predictions) == 20


def test_landing_zone_on_s3_reads_and_fingerprints_by_etag(s3_platform, demo_frame):
    zone: S3LandingZone = s3_platform.resources["landing_zone"]
    s3_platform.write_day(END_DAY, demo_frame.head(30))
    (listed,) = zone.list_files()
    assert listed.day == END_DAY and listed.fingerprint.startswith("etag:")
    frame, read = zone.read(END_DAY)
    assert len(frame) == 30 and read.location.endswith(f"/landing/{END_DAY}.parquet")
    with pytest.raises(Exception, match=f"no landing file for {DAYS[0]}"):
        zone.read(DAYS[0])


def _tick(platform, cursor=None):
    with dg.build_sensor_context(
        instance=platform.instance,
        cursor=cursor,
        resources={"landing_zone": platform.resources["landing_zone"]},
    ) as context:
        result = DEMO.sensor("landing_zone_sensor")(context)
    ingests = [
        r for r in result.run_requests or [] if r.tags[constants.TRIGGER_TAG] == constants.LANDING_INGEST_TRIGGER
    ]
    return ingests, result.cursor


def test_landing_sensor_over_an_s3_prefix(s3_platform, demo_frame):
    s3_platform.write_day(END_DAY, demo_frame.head(50))
    requests, cursor = _tick(s3_platform)
    assert [r.partition_key for r in requests] == [END_DAY]
    assert requests[0].tags[constants.FINGERPRINT_TAG].startswith("etag:")

    requests, cursor = _tick(s3_platform, cursor)
    assert requests == []  # same object: nothing new

    s3_platform.write_day(END_DAY, demo_frame.head(60))  # a corrected file: new ETag
    requests, _ = _tick(s3_platform, cursor)
    assert [r.partition_key for r in requests] == [END_DAY]


def test_wrong_credentials_give_a_clear_error(s3_server, s3_platform, demo_frame):
    wrong = S3Resource(
        endpoint_url=s3_server.endpoint,
        region_name=REGION,
        aws_access_key_id="not-the-key",
        aws_secret_access_key="not-the-secret",
    )
    store = S3ModelStore(s3=wrong, bucket=s3_server.bucket, prefix=f"{s3_platform.prefix}/model_store")
    with pytest.raises(StorageAccessError, match="refused access.*InvalidAccessKeyId.*credentials"):
        store.list_versions(MODEL_NAME)

    # In a run: raw_data fails at once (no retries for refused credentials), naming the cause.
    s3_platform.write_day(END_DAY, demo_frame.head(50))
    resources = {
        **s3_platform.resources,
        "landing_zone": S3LandingZone(s3=wrong, bucket=s3_server.bucket, prefix=f"{s3_platform.prefix}/landing"),
    }
    result = dg.materialize(
        ALL_DEFS,
        selection="key:demo/raw_data",
        partition_key=END_DAY,
        instance=s3_platform.instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    assert "refused access" in step_errors(result) and "credentials" in step_errors(result)
    restarts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
    assert restarts == []


def test_cli_in_prod_mode_against_s3(s3_platform, tmp_path):
    env = {**project_env(tmp_path / "cli"), **s3_platform.server.env(s3_platform.prefix)}
    s3_platform.seed()

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([*args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    env["ML_PLATFORM_SMTP_PASSWORD"] = "smtp-secret-never-printed"
    dagster = [str(BIN / "dagster"), "asset", "materialize", "-m", "ml_platform.definitions"]
    outputs = [
        run(*dagster, "--select", "key:demo/raw_data", "--partition-range", f"{DAYS[0]}...{DAYS[-1]}"),
        run(*dagster, "--select", "key:demo/training_data+", "--partition", END_DAY),
    ]
    # Secrets stay in the environment: not in the output, not in the event log.
    secrets = (SECRET_KEY, "smtp-secret-never-printed")
    for proc in outputs:
        assert not any(secret in proc.stdout + proc.stderr for secret in secrets)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for record in instance.get_runs():
            for entry in instance.all_logs(record.run_id):
                assert not any(secret in str(entry) for secret in secrets)
    info = json.loads(run(str(BIN / "ml-platform"), "production", "--json").stdout)
    assert info["location"].startswith(f"s3://{s3_platform.server.bucket}/{s3_platform.prefix}/")
    assert info["sha256_verified"] is True and info["metrics"]["accuracy"] >= 0.9
    assert not (tmp_path / "cli" / "model_store").exists()
    # The suggested contract reads the ingested days from the bucket too.
    suggested = run(str(BIN / "ml-platform"), "contract", "--model", "demo", "--days", "30").stdout
    assert f"as all its {len(DAYS)} ingested days meet it" in suggested
    assert f"({DAYS[0]} … {DAYS[-1]}: {len(DAYS)} days spanned," in suggested
    assert "      columns:" in suggested and "target: {allowed: [0, 1]}" in suggested


def test_load_production_model_follows_ml_platform_env(s3_platform, monkeypatch):
    s3_platform.seed()
    assert s3_platform.ingest_range(DAYS).success
    assert s3_platform.train().success
    for key, value in s3_platform.server.env(s3_platform.prefix).items():
        monkeypatch.setenv(key, value)
    model, version = load_production_model()
    assert version.location.startswith("s3://") and hasattr(model, "predict")


def test_failed_gate_keeps_the_production_model_on_s3(s3_platform):
    s3_platform.seed()
    assert s3_platform.ingest_range(DAYS).success
    assert s3_platform.train().success
    before = s3_platform.bucket.get(f"model_store/{MODEL_NAME}/production.json")

    # The same days with shuffled labels: valid data, a model no better than chance.
    for day in DAYS:
        frame = pd.read_parquet(io.BytesIO(s3_platform.bucket.get(f"landing/{day}.parquet")))
        frame[TARGET] = frame[TARGET].sample(frac=1.0, random_state=1).to_numpy()
        s3_platform.write_day(day, frame)
    assert s3_platform.ingest_range(DAYS).success
    result = s3_platform.train()
    assert not result.success and "deployed_model" not in materialized(result)
    assert s3_platform.bucket.get(f"model_store/{MODEL_NAME}/production.json") == before
    assert len(s3_platform.store.list_versions(MODEL_NAME)) == 1
