"""A version's record (metadata.json) as one typed value: written by deploy and the store, read by
every reader through VersionRecord.from_dict; files of older versions of the platform still load."""

import json
import pickle

import pandas as pd
from sklearn.linear_model import LogisticRegression

from ml_platform.backends.local import LocalModelStore
from ml_platform.ml import TrainedModel
from ml_platform.recipe import Fit, Recipe
from ml_platform.signature import infer_signature
from ml_platform.version_record import VersionRecord

SIGNATURE = infer_signature(pd.DataFrame({"x": [1.0, 2.0], "city": ["a", "b"]}), "target", "classification", [0, 1])
RECIPE = Recipe(
    data_fingerprint="sha256:rows",
    params={"n_estimators": 10},
    target="target",
    feature_columns=["x", "city"],
    task="classification",
    estimator="random_forest",
    requirements=[{"module": "features", "file": "features.py"}],
    encoding={"encoder": "TableEncoder/1", "kinds": {}, "max_categories": 50, "min_frequency": 5},
)


def test_a_record_round_trips_through_its_dict_and_json():
    record = VersionRecord(
        recipe=RECIPE,
        fit=Fit(classes=[0, 1], signature=SIGNATURE, data_as_of="2026-01-07", variant="deep", cv_score=0.8),
        metrics={"accuracy": 0.9},
        metric_intervals={"accuracy": [0.85, 0.94]},
        gate_metric="accuracy",
    )
    data = json.loads(json.dumps(record.to_dict()))
    again = VersionRecord.from_dict(data)
    assert again == record and again.fit.signature == SIGNATURE
    # The file keeps the layout every earlier platform wrote: the recipe's and fit's keys at the top.
    assert data["estimator"] == "random_forest" and data["data_as_of"] == "2026-01-07" and data["variant"] == "deep"
    assert "recipe" not in data and "fit" not in data


def test_a_trained_model_pickled_by_an_older_platform_loads_with_the_same_identity():
    """Before the Recipe record, a TrainedModel held its recipe's fields at the top level and the
    rest in an ``extra`` dict; a stored trained_model of then must load, and be the same recipe."""
    flat = {
        "model": LogisticRegression(),
        **RECIPE.to_dict(),
        "classes": [0, 1],
        "training_rows": 10,
        "data_fingerprint": RECIPE.data_fingerprint,
        "fit_seconds": 0.5,
        "data_as_of": "2026-01-07",
        "signature": SIGNATURE,
        "extra": {"variant": "deep", "cv_metric": "f1", "cv_score": 0.7, "mlflow_run_id": "r1", "reused": "v3"},
    }
    trained = TrainedModel.__new__(TrainedModel)
    trained.__setstate__(dict(flat))
    assert trained.recipe == RECIPE and trained.identity == RECIPE.identity
    assert trained.fit == Fit([0, 1], 10, 0.5, "2026-01-07", SIGNATURE, "deep", "f1", 0.7)
    assert (trained.mlflow_run_id, trained.reused, trained.train_row_hashes) == ("r1", "v3", None)
    again = pickle.loads(pickle.dumps(trained))
    assert again.recipe == RECIPE and again.fit == trained.fit


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
    assert record.recipe.task is None and record.recipe.encoding is None and record.extras == []
    assert record.fit.signature.columns == ["x", "y"] and record.fit.signature.kinds == {}  # names only
    assert record.metrics == {"accuracy": 0.8} and record.others == {"process": 3}
    assert record.metric_intervals == {}  # stored before intervals: none, and nothing fails
    assert record.to_dict()["process"] == 3


def test_the_store_writes_the_record_it_is_given_and_adds_its_own_fields(tmp_path):
    store = LocalModelStore(root=str(tmp_path))
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    version = store.save_version(
        "m",
        model,
        VersionRecord(recipe=Recipe(task="classification"), fit=Fit(data_as_of="2026-01-07", signature=SIGNATURE)),
        identity="sha256:recipe",
    )
    on_disk = json.loads((tmp_path / "m" / version.version / "metadata.json").read_text())
    assert on_disk["data_as_of"] == "2026-01-07" and on_disk["signature"] == SIGNATURE.to_dict()
    record = store.get_version("m", version.version).record
    assert (record.model_name, record.version, record.identity) == ("m", version.version, "sha256:recipe")
    assert record.sha256 == version.sha256 and record.size_bytes > 0 and record.created_at
