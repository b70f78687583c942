"""A version's record (metadata.json) as one typed value: written by deploy and the store, read by
every reader through VersionRecord.from_dict; files of older versions of the platform still load."""

import json

import pandas as pd
from sklearn.linear_model import LogisticRegression

from ml_platform.backends.local import LocalModelStore
from ml_platform.signature import infer_signature
from ml_platform.version_record import VersionRecord

SIGNATURE = infer_signature(pd.DataFrame({"x": [1.0, 2.0], "city": ["a", "b"]}), "target", "classification", [0, 1])


def test_a_record_round_trips_through_its_dict_and_json():
    record = VersionRecord(
        task="classification",
        estimator="random_forest",
        params={"n_estimators": 10},
        target="target",
        feature_columns=["x", "city"],
        signature=SIGNATURE,
        classes=[0, 1],
        metrics={"accuracy": 0.9},
        metric_intervals={"accuracy": [0.85, 0.94]},
        gate_metric="accuracy",
        data_as_of="2026-01-07",
        requirements=[{"module": "features", "file": "features.py"}],
        encoding={"encoder": "TableEncoder/1", "kinds": {}, "max_categories": 50, "min_frequency": 5},
    )
    again = VersionRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record and again.signature == SIGNATURE


def test_a_file_of_an_older_platform_loads_and_keeps_what_it_does_not_know():
    # As stored before signatures, encodings or tasks were recorded, with a key nobody reads now.
    old = {
        "model_name": "m",
        "version": "v1",
        "sha256": "ab" * 32,
        "feature_columns": ["x", "y"],
        "metrics": {"accuracy": 0.8},
        "params": {"n_estimators": 5},
        "process": 3,
        "classes": [0, 1],
    }
    record = VersionRecord.from_dict(old)
    assert record.task is None and record.encoding is None and record.extras == []
    assert record.signature.columns == ["x", "y"] and record.signature.kinds == {}  # names only
    assert record.metrics == {"accuracy": 0.8} and record.others == {"process": 3}
    assert record.metric_intervals == {}  # stored before intervals: none, and nothing fails
    assert record.to_dict()["process"] == 3


def test_the_store_writes_the_record_it_is_given_and_adds_its_own_fields(tmp_path):
    store = LocalModelStore(root=str(tmp_path))
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    version = store.save_version(
        "m",
        model,
        VersionRecord(task="classification", data_as_of="2026-01-07", signature=SIGNATURE),
        identity="sha256:recipe",
    )
    on_disk = json.loads((tmp_path / "m" / version.version / "metadata.json").read_text())
    assert on_disk["data_as_of"] == "2026-01-07" and on_disk["signature"] == SIGNATURE.to_dict()
    record = store.get_version("m", version.version).record
    assert (record.model_name, record.version, record.identity) == ("m", version.version, "sha256:recipe")
    assert record.sha256 == version.sha256 and record.size_bytes > 0 and record.created_at
