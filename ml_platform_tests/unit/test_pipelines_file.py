"""pipelines.yaml is validated when the code location loads: every mistake names the file, the
entry and the field, through the API and through `dagster definitions validate` / `dg check defs`."""

import textwrap

import pytest

from ml_platform.errors import ConfigError
from ml_platform.settings import load_settings
from ml_platform.spec import load_pipelines, parse_pipelines, pipelines_path
from ml_platform_tests.support.constants import ROOT

GOOD = """
pipelines:
  - name: churn
    landing: churn
    target: churned
    window_days: 14
    model: {estimator: random_forest, params: {n_estimators: 50, max_depth: 6}}
    gate: {min_accuracy: 0.75}
    schedule: {cron: "15 3 * * *", timezone: Europe/Berlin}
    stages:
      train: {timeout_s: 3600, retries: 1, resources: {cpu: 4, memory: 16Gi}}
      ingest: {timeout_s: 300, retries: 3}
    notifications: {on_failure: [webhook], on_deploy: [email]}
  - name: prices
    task: regression
    model: {estimator: ridge, params: {alpha: 0.5}}
    gate: {max_rmse: 12.5}
"""


def parse(text: str):
    return parse_pipelines(textwrap.dedent(text), "pipelines.yaml", load_settings(environ={}))


def test_a_valid_file_with_defaults_filled_in():
    churn, prices = parse(GOOD)
    assert (churn.name, churn.target, churn.window_days, churn.model_name) == ("churn", "churned", 14, "churn")
    assert churn.model.params == {"n_estimators": 50, "max_depth": 6, "min_samples_leaf": 1,
                                  "random_state": 42, "n_jobs": -1}
    assert churn.gate_metric == ("accuracy", 0.75, True)
    assert churn.schedule.timezone == "Europe/Berlin" and churn.stages.train.resources.memory == "16Gi"
    # Left out: the platform defaults (target column, window, time zone), the name as landing/model.
    assert (prices.target, prices.window_days, prices.landing, prices.schedule.timezone) == (
        "target", 7, "prices", "UTC")
    assert prices.gate_metric == ("rmse", 12.5, False)


def test_the_repository_file_declares_a_classification_and_a_regression_pipeline():
    specs = load_pipelines(load_settings(environ={}), ROOT / "pipelines.yaml")
    assert [(s.name, s.task) for s in specs] == [("demo", "classification"), ("diabetes", "regression")]


BAD = [
    ("unknown-key", "    windw_days: 3\n", "pipelines[0] (churn): windw_days: unknown key"),
    ("unknown-stage-key", "    stages: {train: {timeout: 5}}\n", "pipelines[0] (churn): stages.train.timeout: unknown key"),
    ("unknown-stage", "    stages: {fit: {timeout_s: 5}}\n", "pipelines[0] (churn): stages.fit: unknown key"),
    ("bad-cron", '    schedule: {cron: "0 25 * * *"}\n',
     "pipelines[0] (churn): schedule.cron: '0 25 * * *' is not a valid cron expression"),
    ("bad-timezone", "    schedule: {timezone: Mars/Olympus}\n",
     "pipelines[0] (churn): schedule.timezone: 'Mars/Olympus' is not an IANA time zone"),
    ("unknown-estimator", "    model: {estimator: xgboost}\n",
     "pipelines[0] (churn): model.estimator: unknown estimator 'xgboost' for classification; choose one of"
     " random_forest, hist_gradient_boosting, logistic_regression"),
    ("regression-only-estimator", "    model: {estimator: ridge}\n",
     "model.estimator: unknown estimator 'ridge' for classification"),
    ("unknown-param", "    model: {estimator: random_forest, params: {n_trees: 5}}\n",
     "pipelines[0] (churn): model.params.n_trees: unknown key (parameters of random_forest: n_estimators,"),
    ("bad-param", "    model: {estimator: random_forest, params: {n_estimators: 0}}\n",
     "model.params.n_estimators: Input should be greater than or equal to 1"),
    ("gate-of-other-task", "    gate: {min_r2: 0.5}\n",
     "pipelines[0] (churn): gate.min_r2: not a classification gate; use one of min_accuracy, min_f1,"),
    ("two-gates", "    gate: {min_accuracy: 0.5, min_f1: 0.5}\n", "gate: give one threshold, not 2"),
    ("gate-out-of-range", "    gate: {min_accuracy: 1.5}\n", "gate.min_accuracy: Input should be less than or equal to 1"),
    ("bad-name", "", "pipelines[1] (Bad-Name): name: 'Bad-Name' must be lower-case letters"),
    ("negative-timeout", "    stages: {train: {timeout_s: -1}}\n", "stages.train.timeout_s: Input should be greater than 0"),
    ("bad-memory", "    stages: {train: {resources: {memory: lots}}}\n",
     "stages.train.resources.memory: 'lots' is not a memory quantity"),
    ("unknown-channel", "    notifications: {on_failure: [pager]}\n", "notifications.on_failure.0: Input should be"),
    ("demo-data-of-other-task", "    demo_data: diabetes\n", "demo_data: diabetes is regression data"),
]


@pytest.mark.parametrize(("extra", "says"), [pytest.param(e, s, id=i) for i, e, s in BAD])
def test_each_mistake_is_named_with_file_entry_and_field(extra, says):
    second = "  - name: Bad-Name\n" if "Bad-Name" in says else "  - name: other\n"
    text = "pipelines:\n  - name: churn\n" + extra + second
    with pytest.raises(ConfigError) as raised:
        parse(text)
    message = str(raised.value)
    assert message.startswith("pipelines.yaml: "), message
    assert says in message, message


@pytest.mark.parametrize(("text", "says"), [
    ("pipelines:\n  - name: a\n  - name: a\n", "pipelines[1] (a): name: duplicate of pipelines[0]"),
    ("pipelines:\n  - name: a\n  - name: b\n    model_name: a\n",
     "pipelines[1] (b): model_name: 'a' is already the model of pipeline 'a'"),
    ("pipelines: []\n", "pipelines: List should have at least 1 item"),
    ("pipeline:\n  - name: a\n", "expected a mapping with a 'pipelines:' list"),
    ("pipelines:\n  - name: a\n    model: {estimator: [\n", "is not valid YAML"),
    ("pipelines:\n  - {}\n", "pipelines[0]: name: required"),
])
def test_file_level_mistakes(text, says):
    with pytest.raises(ConfigError, match=None) as raised:
        parse(text)
    assert says in str(raised.value), str(raised.value)


def test_a_missing_file_says_which_and_how_to_point_elsewhere(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_pipelines(load_settings(environ={}), tmp_path / "nope.yaml")
    assert "nope.yaml does not exist (set ML_PLATFORM_PIPELINES" in str(raised.value)


def test_the_file_comes_from_ml_platform_pipelines(tmp_path):
    assert pipelines_path({"ML_PLATFORM_PIPELINES": str(tmp_path / "p.yaml")}) == tmp_path / "p.yaml"
    assert pipelines_path({}).name == "pipelines.yaml"


def test_the_reference_page_is_what_the_schema_says():
    """docs/pipelines.md is generated from the schema's field descriptions (`ml-platform docs`): every
    field has one, and the committed page is current."""
    from ml_platform.reference import PAGE, pipelines_reference, undocumented

    assert undocumented() == []
    assert PAGE.read_text() == pipelines_reference(), "docs/pipelines.md is stale: run `ml-platform docs`"
    for field in ("`features`", "`schema.extra_columns`", "`partitions.start`", "`stages.<stage>.timeout_s`",
                  "`model.variants`", "`scoring.landing`", "`gate.max_regression`"):
        assert f"| {field} |" in PAGE.read_text(), field
