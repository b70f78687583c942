"""The decision threshold of a binary classifier (ml_platform.decision): scikit-learn's
FixedThresholdClassifier / TunedThresholdClassifierCV inside the model, so predict decides at it;
a floor of precision or recall met (or the closest threshold used, saying so); the positive class;
refused for more than two classes; part of the model's recipe; an old version record loads."""

import joblib
import numpy as np
import pandas as pd
import pytest

from ml_platform.decision import decision_of, describe, inner_estimator
from ml_platform.errors import DataValidationError
from ml_platform.ml import classification_metrics, feature_importances, fit_with_progress, make_model, split
from ml_platform.version_record import VersionRecord
from ml_platform_tests.support.realistic import rare_churn_day

PARAMS = {"n_estimators": 25, "max_depth": 8, "n_jobs": 1}


@pytest.fixture(scope="module")
def churn():
    frame = pd.concat([rare_churn_day("d", 3000, i) for i in range(3)], ignore_index=True).drop(columns="customer_id")
    return split(frame, "churned", 0.25, 42)[:2]


def fitted(train: pd.DataFrame, decision: dict | None):
    model = deciding(decision, list(train["churned"].unique()))
    return fit_with_progress(model, train.drop(columns="churned"), train["churned"], lambda done, total: None)


def test_predict_decides_at_the_threshold_and_probabilities_stay_the_estimators(churn, tmp_path):
    train, test = churn
    plain, at_02 = fitted(train, None), fitted(train, {"threshold": 0.2})
    x = test.drop(columns="churned")
    assert decision_of(plain) is None
    assert decision_of(at_02) == {"threshold": 0.2, "positive_class": "yes", "chosen": False}
    proba = at_02.predict_proba(x)[:, list(at_02.classes_).index("yes")]
    assert np.allclose(at_02.predict_proba(x), plain.predict_proba(x), atol=1e-12)  # the same forest underneath
    assert (at_02.predict(x) == np.where(proba >= 0.2, "yes", "no")).all()
    joblib.dump(at_02, tmp_path / "model.joblib")  # stored with the model: the threshold comes back
    assert (joblib.load(tmp_path / "model.joblib").predict(x) == at_02.predict(x)).all()
    # The counting metrics are at the threshold and say so; the ranking ones do not change.
    low, half = classification_metrics(at_02, test, "churned"), classification_metrics(plain, test, "churned")
    assert low["report"]["yes"]["recall"] > half["report"]["yes"]["recall"]
    assert low["roc_auc"] == pytest.approx(half["roc_auc"], abs=1e-9) and low["decision"]["threshold"] == 0.2
    assert "decision" not in half
    assert [n for n, _ in feature_importances(at_02)] == [n for n, _ in feature_importances(plain)]
    assert type(inner_estimator(at_02)).__name__ == "RandomForestClassifier"


def test_a_threshold_chosen_on_the_train_split_meets_its_floor(churn):
    train, test = churn
    found, measured = {}, {}
    for rule, floor in (("min_precision", 0.8), ("min_recall", 0.9)):
        model = fitted(train, {rule: floor, "validation_size": 0.25})
        found[rule] = decision_of(model)
        assert found[rule]["chosen"] is True and found[rule]["floor_met"] is True, found[rule]
        measured[rule] = classification_metrics(model, test, "churned")["report"]["yes"]
    # Met on the validation rows; on the test rows (80 churners) the two floors pull apart as they should.
    assert found["min_precision"]["threshold"] > found["min_recall"]["threshold"]
    assert measured["min_precision"]["precision"] > measured["min_recall"]["precision"]
    assert measured["min_recall"]["recall"] > measured["min_precision"]["recall"]
    assert measured["min_recall"]["recall"] >= 0.8
    maximized = decision_of(fitted(train, {"maximize": "f1", "validation_size": 0.25}))
    assert maximized["threshold"] < 0.5  # about 3 % churn: F1 wants a lower cut-off
    said = describe(maximized, {"maximize": "f1", "validation_size": 0.25})
    assert said.startswith("predicts yes when P(yes) >= 0.") and said.endswith(
        "(maximize f1, chosen on 25% of the train split)"
    )


@pytest.mark.parametrize("reachable", [False, True], ids=["unreachable", "reachable"])
def test_a_floor_no_threshold_reaches_uses_the_closest_and_says_so(reachable):
    # Unreachable: ten values of ``signal``, 40 rows each, of which 10 % to 32 % churn: whatever the
    # threshold, the rows it predicts yes are whole groups with about 3 "no" for each "yes" among
    # their validation rows, so no precision comes near 1. Reachable: ``signal`` is the label itself.
    group = np.repeat(np.arange(10), 40)
    churned = np.where(np.tile(np.arange(40), 10) < 4 + group, "yes", "no")
    signal = (churned == "yes").astype(float) if reachable else group.astype(float)
    train = pd.DataFrame({"signal": signal, "churned": churned})
    found = decision_of(fitted(train, {"min_precision": 1.0, "validation_size": 0.25}))
    said = describe(found, {"min_precision": 1.0, "validation_size": 0.25})
    assert found["chosen"] is True and found["floor_met"] is reachable, found
    if reachable:
        assert found["validation_score"] == 1.0  # recall 1 at precision 1
        assert said.startswith("predicts yes when P(yes) >= ") and "no threshold met" not in said
    else:
        # The closest: the best precision a threshold reaches, minus 1.
        assert -1.0 < found["validation_score"] < 0.6 - 1.0
        assert said.endswith(
            "(min_precision 1.0, chosen on 25% of the train split); no threshold met the floor on the"
            " validation rows: the one closest to it is used"
        )


def deciding(decision: dict, classes: list):
    """An unfitted forest deciding at ``decision``, for a target of ``classes``."""
    return make_model("classification", "random_forest", PARAMS, None, None, decision, classes)


def test_the_positive_class_and_more_than_two_classes():
    with pytest.raises(DataValidationError, match=r"is for two classes; the target has 3 \(bronze, gold, silver\)"):
        deciding({"maximize": "f1"}, ["gold", "silver", "bronze"])
    with pytest.raises(DataValidationError, match=r"'maybe' is not a class of the target \(its classes: no, yes\)"):
        deciding({"threshold": 0.3, "positive_class": "maybe"}, ["yes", "no"])
    with pytest.raises(DataValidationError, match="YAML reads unquoted yes/no"):  # positive_class: yes, unquoted
        deciding({"threshold": 0.3, "positive_class": "True"}, ["yes", "no"])
    assert deciding({"threshold": 0.3, "positive_class": "no"}, ["yes", "no"])[-1].pos_label == "no"


def test_the_decision_is_part_of_the_recipe_and_old_records_load():
    from ml_platform.recipe import Recipe

    recipe = dict(
        data_fingerprint="sha256:x",
        params=PARAMS,
        target="churned",
        feature_columns=["a"],
        task="classification",
        estimator="random_forest",
        pipeline_version=None,
        feature_transform=None,
        requirements=[],
    )
    plain = Recipe(**recipe).identity
    assert Recipe(**recipe, decision=None).identity == plain  # models without one keep their identity
    assert Recipe(**recipe, decision={"threshold": 0.3}).identity != plain
    assert (
        Recipe(**recipe, decision={"threshold": 0.3}).identity != Recipe(**recipe, decision={"threshold": 0.4}).identity
    )
    old = VersionRecord.from_dict({"task": "classification", "metrics": {"accuracy": 0.9}})
    assert old.recipe.decision is None and old.decision_threshold is None
    new = VersionRecord.from_dict({"decision_threshold": {"threshold": 0.3, "positive_class": "yes"}})
    assert new.decision_threshold["threshold"] == 0.3
