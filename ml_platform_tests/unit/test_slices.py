"""Slices: a model's scores per value of a column (or quantile bin of a number) equal
scikit-learn's own functions on those rows; the worst slices of the categorical features; the gate
that holds back a challenger worse on a slice with enough rows, naming it; old stored values load."""

import pickle

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as sk
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from ml_platform.checks.model_quality import SLICES_CHECK, evaluate_slices
from ml_platform.loading import pipelines_from_text
from ml_platform.ml import classification_metrics, predict_outputs
from ml_platform.model_metrics import ChampionComparison, ModelMetrics
from ml_platform.runtime import PipelineRuntime
from ml_platform.sensors.notifications import run_outcome
from ml_platform.settings import load_settings
from ml_platform.slices import MISSING, SliceComparison, scores_of_slices, slice_labels, worst_slices


def shop(rows: int, seed: int) -> pd.DataFrame:
    """Regions of very different sizes (one of 40 rows), 300 cities, missing ages; the label
    depends on x and, in the east, is mostly noise."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east", "tiny"], rows, p=[0.5, 0.3, 0.18, 0.02])
    x = rng.normal(size=rows)
    age = pd.Series(rng.integers(18, 90, rows).astype(float)).where(rng.random(rows) > 0.1)
    noise = np.where(region == "east", 3.0, 0.4)
    label = np.where(x + rng.normal(0, noise) > 0, "yes", "no")
    city = rng.choice([f"c{i}" for i in range(300)], rows)
    return pd.DataFrame({"region": region, "city": city, "x": x, "age": age, "y": label})


@pytest.fixture(scope="module")
def model_and_test():
    train, test = shop(3000, 0), shop(2000, 1)
    model = RandomForestClassifier(n_estimators=30, max_depth=5, random_state=0)
    model.fit(pd.get_dummies(train.drop(columns="y")).fillna(0), train["y"])
    columns = pd.get_dummies(train.drop(columns="y")).columns

    class Encoded:  # the forest on one-hot columns, as a model of raw rows
        classes_ = model.classes_

        def predict(self, frame):
            return model.predict(pd.get_dummies(frame).reindex(columns=columns, fill_value=0).fillna(0))

        def predict_proba(self, frame):
            return model.predict_proba(pd.get_dummies(frame).reindex(columns=columns, fill_value=0).fillna(0))

    return Encoded(), test


def test_each_slice_scores_as_scikit_learn_does_on_its_rows(model_and_test):
    model, test = model_and_test
    outputs = predict_outputs(model, test, "y", "classification")
    keys = list(ModelMetrics.of("classification", classification_metrics(model, test, "y", outputs)).scores)
    found = scores_of_slices(outputs, "region", slice_labels(test["region"], 4), keys)
    assert [s.value for s in found] == ["north", "south", "east", "tiny"]  # largest first
    for one in found:
        rows = test[test["region"] == one.value]
        predicted = model.predict(rows.drop(columns="y"))
        positive = model.predict_proba(rows.drop(columns="y"))[:, 1]
        assert one.rows == len(rows)
        assert one.scores["accuracy"] == pytest.approx(sk.accuracy_score(rows["y"], predicted), abs=1e-12)
        assert one.scores["f1"] == pytest.approx(sk.f1_score(rows["y"], predicted, average="weighted"), abs=1e-12)
        assert one.scores["recall_macro"] == pytest.approx(
            sk.recall_score(rows["y"], predicted, average="macro", zero_division=0), abs=1e-12
        )
        assert one.scores["roc_auc"] == pytest.approx(sk.roc_auc_score(rows["y"] == "yes", positive), abs=1e-12)
        assert one.scores["log_loss"] == pytest.approx(
            sk.log_loss(rows["y"], model.predict_proba(rows.drop(columns="y")), labels=["no", "yes"]), abs=1e-9
        )
    east = next(s for s in found if s.value == "east")
    north = next(s for s in found if s.value == "north")
    assert east.scores["accuracy"] < north.scores["accuracy"] - 0.1  # the noisy region is the worse slice


def test_numbers_are_binned_by_quantiles_and_missing_values_are_a_slice(model_and_test):
    _, test = model_and_test
    labels = slice_labels(test["age"], 4)
    assert labels[test["age"].isna()].eq(MISSING).all()
    bins = labels[test["age"].notna()].value_counts()
    assert len(bins) == 4 and bins.min() > 0.2 * test["age"].notna().sum()  # four bins of about a quarter
    assert all(b.startswith("(") and b.endswith("]") for b in bins.index)
    # A number declared categorical (a store id) is sliced by value.
    stores = pd.Series([101, 102, 101, 103, 104, 105, 101])
    assert list(slice_labels(stores, 4, "categorical")) == ["101", "102", "101", "103", "104", "105", "101"]


def test_the_worst_slices_of_the_categorical_features_with_enough_rows(model_and_test):
    model, test = model_and_test
    outputs = predict_outputs(model, test, "y", "classification")
    worst = worst_slices(outputs, test, ["region", "city"], "accuracy", True, min_rows=30)
    # No city has 30 of the 2000 rows: the four regions alone, the noisy one first.
    assert [s.column for s in worst] == ["region"] * 4 and worst[0].name == "region=east"
    assert [s.scores["accuracy"] for s in worst] == sorted(s.scores["accuracy"] for s in worst)
    small = worst_slices(outputs, test, ["region", "city"], "accuracy", True, min_rows=3)
    assert len(small) == 5 and all(s.column == "city" and s.rows >= 3 for s in small)  # a few rows, a low score
    log_loss = worst_slices(outputs, test, ["region"], "log_loss", False, min_rows=30)
    assert log_loss[0].name == "region=east"  # the largest error first


def metrics_with(slices: list[SliceComparison]) -> ModelMetrics:
    champion = ChampionComparison("v1", 1000, {"accuracy": 0.80}, {"accuracy": 0.82}, slices=slices)
    return ModelMetrics("classification", {"accuracy": 0.82}, 1000, champion=champion)


def test_the_slice_gate_names_each_slice_worse_beyond_the_margin():
    slices = [
        SliceComparison("region", "north", 600, {"accuracy": 0.85}, {"accuracy": 0.84}),
        SliceComparison("region", "east", 150, {"accuracy": 0.80}, {"accuracy": 0.60}),
        SliceComparison("region", "tiny", 20, {"accuracy": 0.90}, {"accuracy": 0.30}),
    ]
    held = evaluate_slices(metrics_with(slices), ["accuracy"], 100, 0.05, False)
    assert not held.passed
    assert held.description == (
        "worse than champion v1 by more than 0.05 on 1 slice value(s): region=east: accuracy 0.6000 vs champion"
        " 0.8000 (150 rows)"
    )
    assert held.metadata["Slices judged"].value == 2  # tiny has too few rows to be judged
    assert evaluate_slices(metrics_with(slices), ["accuracy"], 200, 0.05, False).passed  # east below support
    assert evaluate_slices(metrics_with(slices), ["accuracy"], 100, 0.25, True).passed  # 0.2 of 0.8 allowed
    first = evaluate_slices(metrics_with([]), ["accuracy"], 100, 0.05, False)
    assert first.passed and first.description.startswith("no slice of at least 100 fresh test rows is worse")
    alone = evaluate_slices(ModelMetrics("classification", {"accuracy": 0.8}, 10), ["accuracy"], 1, 0, False)
    assert alone.passed and alone.description == "no champion to compare the slices with"


def test_slices_survive_to_dict_and_values_stored_before_slices_load(model_and_test):
    model, test = model_and_test
    outputs = predict_outputs(model, test, "y", "classification")
    slices = scores_of_slices(outputs, "region", slice_labels(test["region"], 4), ["accuracy"])
    compared = [SliceComparison("region", "east", 150, {"accuracy": 0.8}, {"accuracy": 0.6})]
    metrics = metrics_with(compared).with_(slices=slices, worst_slices=slices[:1])
    again = ModelMetrics.from_dict(metrics.to_dict())
    assert again == metrics
    # A value pickled before slices existed (its __dict__ lacks them) loads with none.
    old = ModelMetrics("classification", {"accuracy": 0.8}, 10, champion=ChampionComparison("v1"))
    for value in (old, old.champion):
        del value.__dict__["slices"]
    del old.__dict__["worst_slices"]
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.slices == [] and loaded.worst_slices == [] and loaded.champion.slices == []


def test_a_regression_slice_is_its_rows_r2_and_mape():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=1500), "shop": rng.choice(["a", "b", "c"], 1500)})
    frame["price"] = 50 + 10 * frame["x"] + np.where(frame["shop"] == "c", rng.normal(0, 15, 1500), 1)
    model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(frame[["x"]], frame["price"])

    class OnX:
        def predict(self, rows):
            return model.predict(rows[["x"]])

    outputs = predict_outputs(OnX(), frame, "price", "regression")
    found = scores_of_slices(outputs, "shop", slice_labels(frame["shop"], 4), ["r2", "mape", "rmse"])
    for one in found:
        rows = frame[frame["shop"] == one.value]
        predicted = model.predict(rows[["x"]])
        assert one.scores["r2"] == pytest.approx(sk.r2_score(rows["price"], predicted), abs=1e-9)
        assert one.scores["mape"] == pytest.approx(sk.mean_absolute_percentage_error(rows["price"], predicted))
        assert one.scores["rmse"] == pytest.approx(sk.root_mean_squared_error(rows["price"], predicted))
    assert min(found, key=lambda s: s.scores["r2"]).value == "c"


def test_a_run_held_back_on_a_slice_says_so_in_its_notification():
    spec = pipelines_from_text(
        "pipelines:\n  - name: shop\n    target: y\n    evaluation: {slices: [region]}\n"
        "    gate: {min_accuracy: 0.6, slices: {min_support: 100}}\n",
        "pipelines.yaml",
        load_settings(environ={}),
    )[0]
    pipeline = PipelineRuntime(spec, load_settings(environ={}))
    key = pipeline.key("model_metrics")
    said = "worse than champion v1 by more than 0.05 on 1 slice value(s): region=east: accuracy 0.6000 vs ..."
    evaluations = [
        dg.AssetCheckEvaluation(key, "accuracy_above_threshold", True, {}, description="accuracy 0.82"),
        dg.AssetCheckEvaluation(key, SLICES_CHECK, False, {}, description=said),
    ]
    kind, outcome = run_outcome(pipeline, evaluations, {})
    assert kind == "held back" and outcome == f"held back by the gate (1 of 2 checks): {said}"
