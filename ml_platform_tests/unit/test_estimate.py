"""Performance estimated without labels (ml_platform.estimate, CBPE) on a year of real-looking shop
orders: two real models, trained on 30 days and calibrated on the labelled history of the next 10,
estimate a drifted day's accuracy within the error they state; the estimate follows a covariate
shift down; it does not see a concept change (its stated limitation); and it says when it cannot be
trusted."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml_platform.errors import DataValidationError
from ml_platform.estimate import (
    CONFIDENCE,
    MIN_REFERENCE_ROWS,
    Calibration,
    calibrated,
    estimate,
    fit_calibration,
)
from ml_platform_tests.support.realistic import FEATURES, TARGET, burst_days, days_of, shop_day

DAYS = days_of("2025-01-01", 365)
BURSTS = burst_days(DAYS)
TRAIN_DAYS = range(30)
REFERENCE_DAYS = range(35, 45)  # the labelled history the calibration learns from (day 44 has a burst)
LATER = 300  # the held-back day: prices have drifted up for 10 months since training
BINARY_METRICS = {"accuracy", "balanced_accuracy", "precision", "recall", "f1"}


def day(index: int, rows: int = 250, seed: int | None = None, burst: float | None = None) -> pd.DataFrame:
    share = (0.3 if DAYS[index] in BURSTS else 0.0) if burst is None else burst
    return shop_day(DAYS[index], rows, index if seed is None else seed, index, share)


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[FEATURES].astype({"member": float})


def model_of(estimator, numeric):
    categories = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, sparse_output=False)
    columns = ColumnTransformer(
        [
            ("categories", categories, ["region", "store", "product"]),
            ("numbers", numeric, ["price", "qty", "distance", "member"]),
        ]
    )
    return make_pipeline(columns, estimator)


def outputs(model, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """What the server logs: the class probabilities (proba columns named by class) and the prediction."""
    x = features(frame)
    return pd.DataFrame(model.predict_proba(x), columns=model.classes_), model.predict(x)


@pytest.fixture(scope="module")
def models() -> dict:
    """A gradient-boosted model and a weaker linear one, trained on 30 days (rows with a label)."""
    train = pd.concat([day(i) for i in TRAIN_DAYS], ignore_index=True).dropna(subset=[TARGET])
    x, y = features(train), train[TARGET]
    return {
        "boosted trees": model_of(HistGradientBoostingClassifier(max_iter=50, random_state=0), SimpleImputer()).fit(
            x, y
        ),
        "logistic regression": model_of(
            LogisticRegression(max_iter=1000), make_pipeline(SimpleImputer(), StandardScaler())
        ).fit(x, y),
    }


@pytest.fixture(scope="module")
def calibrations(models) -> dict:
    """Each model's calibration on its labelled history: 10 later days, the burst day's unlabelled rows dropped."""
    history = pd.concat([day(i) for i in REFERENCE_DAYS], ignore_index=True)
    return {name: fit_calibration(*outputs(model, history), history[TARGET], seed=0) for name, model in models.items()}


@pytest.fixture(scope="module")
def later_day() -> pd.DataFrame:
    """A held-back day 10 months on (prices drifted) with a burst: 30 % of distances missing, and no
    outcome on those rows (no delivery, no label)."""
    return day(LATER, rows=2000, seed=4242, burst=0.3)


def accuracy(predictions, labels) -> float:
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def test_each_models_estimate_is_within_its_stated_error(models, calibrations, later_day):
    """Estimated from the probabilities of the rows whose outcomes arrive later, compared with the
    accuracy those outcomes give: within the stated error for both models. The burst's rows never get
    an outcome, so they are in neither number; rows whose distance is imputed never appear in a
    labelled history either, so the calibration cannot vouch for them (see the module's docstring)."""
    labelled = later_day.dropna(subset=[TARGET]).reset_index(drop=True)
    assert 0.6 < len(labelled) / len(later_day) < 0.8 and labelled["price"].median() > 1.3 * day(0)["price"].median()
    for name, model in models.items():
        probabilities, predictions = outputs(model, labelled)
        found = estimate(calibrations[name], probabilities, predictions)
        actual = accuracy(predictions, labelled[TARGET])
        assert found.trusted and found.warnings == [], (name, found.warnings)
        assert abs(found.values["accuracy"] - actual) <= found.errors["accuracy"], (name, found, actual)
        assert 0 < found.errors["accuracy"] < 0.1 and set(found.values) == set(found.errors) == BINARY_METRICS


def test_the_estimate_follows_a_covariate_shift_down(models, calibrations):
    """Orders from further out, near the distance where non-members churn (a new delivery zone): a
    selection on a feature, so P(label | features) is as before, but the model is less sure, and
    rightly so. Estimate and real accuracy both fall below a normal day's."""
    pool = day(LATER, rows=12_000, seed=777, burst=0.0)
    shifted = pool[pool["distance"].between(8, 16)].head(2000).reset_index(drop=True)
    normal = day(LATER, rows=2000, seed=778, burst=0.0)
    model, calibration = models["boosted trees"], calibrations["boosted trees"]
    found, real = {}, {}
    for label, frame in (("normal", normal), ("shifted", shifted)):
        probabilities, predictions = outputs(model, frame)
        found[label] = estimate(calibration, probabilities, predictions)
        real[label] = accuracy(predictions, frame[TARGET])
    assert real["shifted"] < real["normal"] - 0.05
    assert found["shifted"].values["accuracy"] < found["normal"].values["accuracy"] - 0.05
    shifted_estimate = found["shifted"]
    assert abs(shifted_estimate.values["accuracy"] - real["shifted"]) <= shifted_estimate.errors["accuracy"]


def test_a_concept_change_is_invisible_to_the_estimate(models, calibrations, later_day):
    """The stated limitation: on the held-back day membership comes to mean the opposite (members'
    outcomes flipped: features the same, P(label | features) changed). The probabilities do not move,
    so the estimate stays where it was, far outside its error from the real accuracy, which falls.
    Only labels reveal it, which is why labels, not estimates, decide a promotion."""
    labelled = later_day.dropna(subset=[TARGET]).reset_index(drop=True)
    flipped = labelled[TARGET].where(~labelled["member"], labelled[TARGET].map({"yes": "no", "no": "yes"}))
    probabilities, predictions = outputs(models["boosted trees"], labelled)
    found = estimate(calibrations["boosted trees"], probabilities, predictions)
    before, after = accuracy(predictions, labelled[TARGET]), accuracy(predictions, flipped)
    assert after < before - 0.2
    assert found.trusted  # nothing in the probabilities says anything is wrong
    assert found.values["accuracy"] - after > found.errors["accuracy"]


def test_few_labelled_rows_are_not_trusted_and_say_how_many(models, later_day):
    model = models["boosted trees"]
    history = day(31).head(50)
    calibration = fit_calibration(*outputs(model, history), history[TARGET])
    assert calibration.reference_rows == 50 < MIN_REFERENCE_ROWS
    found = estimate(calibration, *outputs(model, later_day))
    assert not found.trusted and any("50 labelled rows" in warning for warning in found.warnings)
    few = estimate(calibration, *outputs(model, later_day.head(10)))
    assert any("Only 10 rows" in warning for warning in few.warnings)


def synthetic_calibration(rows: int = 1000, seed: int = 0) -> Calibration:
    """A model that was always between 60 % and 80 % sure (and right that often)."""
    rng = np.random.default_rng(seed)
    top = rng.uniform(0.6, 0.8, rows)
    says_yes = rng.random(rows) < 0.5
    yes = np.where(says_yes, top, 1 - top)
    labels = np.where(rng.random(rows) < yes, "yes", "no")
    return fit_calibration(pd.DataFrame({"no": 1 - yes, "yes": yes}), np.where(says_yes, "yes", "no"), labels)


@pytest.mark.parametrize(("top", "word"), [(0.97, "more sure"), (0.51, "less sure")])
def test_probabilities_outside_the_reference_range_are_not_trusted(top, word):
    calibration = synthetic_calibration()
    low, high = calibration.reference_confidence
    assert 0.6 <= low < 0.62 and 0.78 < high <= 0.8
    rows = 200
    yes = np.full(rows, top)
    yes[:10] = 0.7  # a few inside the range: 95 % outside
    found = estimate(calibration, pd.DataFrame({"no": 1 - yes, "yes": yes}), np.where(yes >= 0.5, "yes", "no"))
    assert not found.trusted and len(found.warnings) == 1
    assert "95% of the rows" in found.warnings[0] and f"95% {word}" in found.warnings[0]
    inside = estimate(calibration, pd.DataFrame({"no": [0.3] * rows, "yes": [0.7] * rows}), ["yes"] * rows)
    assert inside.trusted and inside.values["accuracy"] == pytest.approx(0.7, abs=0.05)


def test_a_class_nobody_is_predicted_has_its_precision_reported_as_zero_with_a_note():
    calibration = synthetic_calibration()
    found = estimate(calibration, pd.DataFrame({"no": [0.7] * 100, "yes": [0.3] * 100}), ["no"] * 100)
    assert found.trusted and found.values["precision"] == 0.0
    assert found.warnings == ["No row is predicted or expected to be yes: its precision is undefined, reported as 0."]


def test_a_calibration_round_trips_through_json_to_identical_estimates(models, calibrations, later_day):
    calibration = calibrations["logistic regression"]
    again = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert again == calibration
    probabilities, predictions = outputs(models["logistic regression"], later_day)
    first, second = estimate(calibration, probabilities, predictions), estimate(again, probabilities, predictions)
    assert json.dumps(first.to_dict()) == json.dumps(second.to_dict())
    assert first.to_dict()["confidence"] == CONFIDENCE and "concept drift" in first.to_dict()["caveat"]


def test_columns_in_another_order_are_matched_by_name(models, calibrations, later_day):
    probabilities, predictions = outputs(models["boosted trees"], later_day)
    found = estimate(calibrations["boosted trees"], probabilities, predictions)
    swapped = estimate(calibrations["boosted trees"], probabilities[["yes", "no"]], predictions)
    assert swapped == found


def test_the_maps_are_scikit_learns_isotonic_regression():
    rng = np.random.default_rng(1)
    yes = rng.beta(2, 2, 500)
    labels = np.where(rng.random(500) < yes**2, "yes", "no")  # the model is too sure of "yes"
    calibration = fit_calibration(pd.DataFrame({"no": 1 - yes, "yes": yes}), np.where(yes > 0.5, "yes", "no"), labels)
    new = rng.uniform(-0.1, 1.1, 300).clip(0, 1)
    matrix = np.column_stack([1 - new, new])
    expected = np.column_stack(
        [
            IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, labels == name).predict(column)
            for p, name, column in ((1 - yes, "no", 1 - new), (yes, "yes", new))
        ]
    )
    sums = expected.sum(axis=1, keepdims=True)
    expected = np.where(sums > 0, expected / np.where(sums > 0, sums, 1), matrix)
    assert np.allclose(calibrated(calibration.maps, calibration.classes, matrix), expected)


def test_the_stated_sampling_error_matches_outcomes_drawn_from_the_probabilities():
    """With a perfect calibration (identity maps, no calibration error), each metric's error is the
    sampling part alone: the spread of the metric when each row's class is drawn from its
    probabilities, as simulated."""
    rng = np.random.default_rng(3)
    rows = 1500
    yes = rng.beta(0.6, 1.2, rows)
    predictions = np.where(yes >= 0.5, "yes", "no")
    identity = {"x": [0.0, 1.0], "y": [0.0, 1.0]}
    no_error = dict.fromkeys(_metric_keys(), 0.0)
    exact = Calibration(("no", "yes"), {"no": identity, "yes": identity}, 1000, 0.0, (0.0, 1.0), no_error)
    found = estimate(exact, pd.DataFrame({"no": 1 - yes, "yes": yes}), predictions)
    draws = rng.random((400, rows)) < yes
    positive = predictions == "yes"
    tp = (draws & positive).sum(axis=1)
    simulated = {
        "accuracy": ((draws == positive).mean(axis=1)),
        "precision": tp / positive.sum(),
        "recall": tp / draws.sum(axis=1),
        "f1": 2 * tp / (positive.sum() + draws.sum(axis=1)),
        "balanced_accuracy": (tp / draws.sum(axis=1) + (~draws & ~positive).sum(axis=1) / (~draws).sum(axis=1)) / 2,
    }
    z = found.errors["accuracy"] / np.std(simulated["accuracy"])
    for metric, values in simulated.items():
        assert found.values[metric] == pytest.approx(np.mean(values), abs=0.01), metric
        assert found.errors[metric] / z == pytest.approx(np.std(values), rel=0.2), metric


def _metric_keys() -> list[str]:
    return ["balanced_accuracy"] + [f"{name}[{index}]" for index in (0, 1) for name in ("precision", "recall", "f1")]


def test_a_model_with_other_classes_is_an_error(calibrations, later_day, models):
    probabilities, predictions = outputs(models["boosted trees"], later_day)
    other = probabilities.rename(columns={"yes": "maybe"})
    with pytest.raises(DataValidationError, match="different model"):
        estimate(calibrations["boosted trees"], other, predictions)
    with pytest.raises(DataValidationError, match="different model"):
        estimate(calibrations["boosted trees"], probabilities.assign(maybe=0.0), predictions)


@pytest.mark.parametrize(
    ("probabilities", "predictions", "labels", "says"),
    [
        (pd.DataFrame({"no": [], "yes": []}), [], [], "no rows"),
        (pd.DataFrame({"no": [0.2, 0.9], "yes": [0.8, 0.1]}), ["yes"], ["yes", "no"], "do not line up"),
        (pd.DataFrame({"no": [0.2, 0.9], "yes": [0.8, 0.1]}), ["yes", "no"], ["yes", "maybe"], "maybe"),
        (pd.DataFrame({"yes": [1.0, 1.0]}), ["yes", "yes"], ["yes", "yes"], "at least 2 classes"),
        (pd.DataFrame({"no": [0.2, 0.9], "yes": [0.8, 0.1]}), ["yes", "no"], [None, np.nan], "no rows with a label"),
    ],
)
def test_unusable_history_is_refused_with_a_sentence(probabilities, predictions, labels, says):
    with pytest.raises(DataValidationError, match=says):
        fit_calibration(probabilities, predictions, labels)


def test_no_rows_to_estimate_is_an_error(calibrations):
    with pytest.raises(DataValidationError, match="no rows"):
        estimate(calibrations["boosted trees"], pd.DataFrame({"no": [], "yes": []}), [])


def test_int_labels_and_missing_ones_are_matched_to_the_columns():
    """Labels 0/1 with a missing one arrive as floats (1.0); the columns are the model's ints."""
    rng = np.random.default_rng(5)
    ones = rng.uniform(0, 1, 400)
    labels = pd.Series((rng.random(400) < ones).astype(float))
    labels[:40] = np.nan
    calibration = fit_calibration(pd.DataFrame({0: 1 - ones, 1: ones}), (ones > 0.5).astype(int), labels)
    assert calibration.classes == ("0", "1") and calibration.reference_rows == 360
    found = estimate(calibration, pd.DataFrame({0: 1 - ones, 1: ones}), (ones > 0.5).astype(int), positive=1)
    assert set(found.values) == BINARY_METRICS
