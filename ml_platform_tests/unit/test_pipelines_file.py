"""pipelines.yaml is validated when the code location loads: every mistake names the file, the
entry and the field, through the API and through `dagster definitions validate` / `dg check defs`."""

import textwrap

import pytest

from ml_platform.errors import ConfigError
from ml_platform.loading import load_pipelines, pipelines_from_text
from ml_platform.paths import pipelines_path
from ml_platform.settings import load_settings
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
    return pipelines_from_text(textwrap.dedent(text), "pipelines.yaml", load_settings(environ={}))


def test_a_valid_file_with_defaults_filled_in():
    churn, prices = parse(GOOD)
    assert (churn.name, churn.target, churn.window_days, churn.model_name) == ("churn", "churned", 14, "churn")
    assert churn.model.params == {
        "n_estimators": 50,
        "max_depth": 6,
        "min_samples_leaf": 1,
        "random_state": 42,
        "n_jobs": -1,
    }
    ((churn_gate),) = churn.gate_thresholds
    assert (churn.gate_metric, churn_gate.value, churn_gate.check_name) == (
        "accuracy",
        0.75,
        "accuracy_above_threshold",
    )
    assert churn.schedule.timezone == "Europe/Berlin" and churn.stages.train.resources.memory == "16Gi"
    # Left out: the platform defaults (target column, window, time zone), the name as landing/model.
    assert (prices.target, prices.window_days, prices.landing, prices.schedule.timezone) == (
        "target",
        7,
        "prices",
        "UTC",
    )
    ((prices_gate),) = prices.gate_thresholds
    assert (prices.gate_metric, prices_gate.value, prices_gate.check_name) == ("rmse", 12.5, "rmse_below_threshold")


def test_the_repository_file_declares_a_classification_and_a_regression_pipeline():
    specs = load_pipelines(load_settings(environ={}), ROOT / "pipelines.yaml")
    assert [(s.name, s.task) for s in specs] == [("demo", "classification"), ("diabetes", "regression")]


BAD = [
    ("unknown-key", "    windw_days: 3\n", "pipelines[0] (churn): windw_days: unknown key"),
    (
        "unknown-stage-key",
        "    stages: {train: {timeout: 5}}\n",
        "pipelines[0] (churn): stages.train.timeout: unknown key",
    ),
    ("unknown-stage", "    stages: {fit: {timeout_s: 5}}\n", "pipelines[0] (churn): stages.fit: unknown key"),
    (
        "bad-cron",
        '    schedule: {cron: "0 25 * * *"}\n',
        "pipelines[0] (churn): schedule.cron: '0 25 * * *' is not a valid cron expression",
    ),
    (
        "bad-timezone",
        "    schedule: {timezone: Mars/Olympus}\n",
        "pipelines[0] (churn): schedule.timezone: 'Mars/Olympus' is not an IANA time zone",
    ),
    (
        "unknown-estimator",
        "    model: {estimator: xgboost}\n",
        "pipelines[0] (churn): model.estimator: unknown estimator 'xgboost' for classification; choose one of"
        " random_forest, hist_gradient_boosting, logistic_regression",
    ),
    (
        "regression-only-estimator",
        "    model: {estimator: ridge}\n",
        "model.estimator: unknown estimator 'ridge' for classification",
    ),
    (
        "unknown-param",
        "    model: {estimator: random_forest, params: {n_trees: 5}}\n",
        "pipelines[0] (churn): model.params.n_trees: unknown key (parameters of random_forest: n_estimators,",
    ),
    (
        "bad-param",
        "    model: {estimator: random_forest, params: {n_estimators: 0}}\n",
        "model.params.n_estimators: Input should be greater than or equal to 1",
    ),
    (
        "gate-of-other-task",
        "    gate: {min_r2: 0.5}\n",
        "pipelines[0] (churn): gate.min_r2: not a classification gate; use one of min_accuracy, min_balanced_accuracy,",
    ),
    (
        "gate-per-class-out-of-range",
        '    gate: {min_roc_auc: 0.8, min_recall: {"yes": 1.5}}\n',
        "pipelines[0] (churn): gate.min_recall: yes: 1.5 is not a number between 0 and 1",
    ),
    ("gate-no-class", "    gate: {min_recall: {}}\n", "gate.min_recall: give at least one class"),
    (
        "gate-margin-of-ungated-metric",
        "    gate: {min_roc_auc: 0.8, max_regression: {log_loss: 0.1}}\n",
        "gate.max_regression.log_loss: not a gated metric; the gate has roc_auc",
    ),
    (
        "gate-negative-relative-margin",
        "    gate: {min_roc_auc: 0.8, max_regression: {roc_auc: {value: -0.1, relative: true}}}\n",
        "gate.max_regression: roc_auc.value: Input should be greater than or equal to 0",
    ),
    (
        "gate-classes-one-check-name",
        '    gate: {min_recall: {"a b": 0.1, "a-b": 0.2}}\n',
        "gate.min_recall: 'recall of a b' and 'recall of a-b' would both be the check recall_of_a_b_above_threshold",
    ),
    (
        "gate-out-of-range",
        "    gate: {min_accuracy: 1.5}\n",
        "gate.min_accuracy: Input should be less than or equal to 1",
    ),
    ("bad-name", "", "pipelines[1] (Bad-Name): name: 'Bad-Name' must be lower-case letters"),
    (
        "negative-timeout",
        "    stages: {train: {timeout_s: -1}}\n",
        "stages.train.timeout_s: Input should be greater than 0",
    ),
    (
        "bad-memory",
        "    stages: {train: {resources: {memory: lots}}}\n",
        "stages.train.resources.memory: 'lots' is not a memory quantity",
    ),
    (
        "unknown-channel",
        "    notifications: {on_failure: [pager]}\n",
        "notifications.on_failure: 'pager' is not a channel: use webhook or email",
    ),
    ("demo-data-of-other-task", "    demo_data: diabetes\n", "demo_data: diabetes is regression data"),
    (
        "split-test-size",
        "    split: {test_size: 1.2}\n",
        "pipelines[0] (churn): split.test_size: Input should be less than 1",
    ),
    ("split-unknown-key", "    split: {shuffle: false}\n", "split.shuffle: unknown key"),
    ("bad-version", "    version: 'v 1'\n", "version: 'v 1' is not a version"),
    ("gpu-zero", "    stages: {train: {resources: {gpu: 0}}}\n", "stages.train.resources.gpu: Input should be greater"),
    (
        "estimator-module-missing",
        "    model: {estimator: 'no_such_team_module:Model', params: {depth: 3}}\n",
        "model.estimator: cannot import module 'no_such_team_module'",
    ),
    (
        "estimator-attribute-missing",
        "    model: {estimator: 'sklearn.ensemble:NoSuchForest'}\n",
        "model.estimator: module 'sklearn.ensemble' has no 'NoSuchForest'",
    ),
    (
        "estimator-bad-param",
        "    model: {estimator: 'sklearn.linear_model:LogisticRegression', params: {n_trees: 3}}\n",
        "model.params: sklearn.linear_model:LogisticRegression(**params) failed: TypeError:",
    ),
    (
        "estimator-of-other-task",
        "    model: {estimator: 'sklearn.linear_model:Ridge'}\n",
        "sklearn.linear_model:Ridge gives a regressor, but the task is classification",
    ),
    (
        "estimator-not-an-estimator",
        "    model: {estimator: 'os.path:join', params: {}}\n",
        "model.estimator: os.path:join(**params) failed: TypeError",
    ),
    (
        "gate-needs-probabilities",
        "    model: {estimator: 'sklearn.linear_model:RidgeClassifier'}\n"
        "    gate: {min_recall: 0.5, max_log_loss: 0.4}\n",
        "pipelines[0] (churn): gate.max_log_loss: needs predict_proba; RidgeClassifier has none",
    ),
    (
        "gate-needs-probabilities-of-a-variant",
        "    model: {estimator: 'sklearn.svm:SVC', params: {probability: true}, variants: [{probability: false}]}\n"
        "    gate: {min_roc_auc: 0.8}\n",
        "gate.min_roc_auc: needs predict_proba; SVC made with model.variants[0] has none",
    ),
    (
        "transform-missing",
        "    features: {transform: 'no_such_team_module:add'}\n",
        "features.transform: cannot import module 'no_such_team_module'",
    ),
    (
        "transform-not-callable",
        "    features: {transform: 'math:pi'}\n",
        "features.transform: math:pi is a float: give a function DataFrame -> DataFrame",
    ),
    (
        "bad-address",
        "    notifications: {email: [ml-team]}\n",
        "notifications.email: 'ml-team' is not an e-mail address",
    ),
    (
        "webhook-url-in-file",
        "    notifications: {webhook: {url_env: 'https://hooks.slack.com/x'}}\n",
        "notifications.webhook.url_env: 'https://hooks.slack.com/x' is not an environment variable name",
    ),
    (
        "slice-gate-without-slices",
        "    gate: {min_accuracy: 0.8, slices: {min_support: 100}}\n",
        "pipelines[0] (churn): gate.slices: needs the columns to slice by: evaluation: {slices: [region, ...]}",
    ),
    (
        "slice-not-a-feature",
        "    features: [tenure, plan]\n    evaluation: {slices: [region]}\n",
        "evaluation.slices: 'region' not among the features (tenure, plan): the test split holds the feature"
        " columns only",
    ),
    ("slice-twice", "    evaluation: {slices: [plan, plan]}\n", "evaluation.slices: lists 'plan' more than once"),
    ("slice-of-the-target", "    target: churned\n    evaluation: {slices: [churned]}\n", "lists the target column"),
    (
        "decision-of-two-rules",
        "    decision: {threshold: 0.3, maximize: f1}\n",
        "decision: give one of threshold, maximize, min_precision, min_recall (not threshold and maximize)",
    ),
    (
        "decision-of-a-regression",
        "    task: regression\n    decision: {threshold: 0.3}\n",
        "decision: a decision threshold is for binary classification, the task is regression",
    ),
    ("decision-threshold-of-1", "    decision: {threshold: 1}\n", "decision.threshold: Input should be less than 1"),
    (
        "decision-without-probabilities",
        "    model: {estimator: 'sklearn.linear_model:RidgeClassifier'}\n    decision: {maximize: f1}\n",
        "decision: a decision threshold is on the probability of the positive class; RidgeClassifier has no"
        " predict_proba",
    ),
    ("bad-slack-channel", "    notifications: {webhook: {channel: ml alerts}}\n", "is not a Slack channel"),
    ("unknown-event-key", "    notifications: {on_success: {pager: [x]}}\n", "notifications.on_success"),
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


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("pipelines:\n  - name: a\n  - name: a\n", "pipelines[1] (a): name: duplicate of pipelines[0]"),
        (
            "pipelines:\n  - name: a\n  - name: b\n    model_name: a\n",
            "pipelines[1] (b): model_name: 'a' is already the model of pipeline 'a'",
        ),
        ("pipelines: []\n", "pipelines: List should have at least 1 item"),
        ("pipeline:\n  - name: a\n", "expected a mapping with a 'pipelines:' list"),
        ("pipelines:\n  - name: a\n    model: {estimator: [\n", "is not valid YAML"),
        ("pipelines:\n  - {}\n", "pipelines[0]: name: required"),
    ],
)
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
    for field in (
        "`features`",
        "`schema.extra_columns`",
        "`partitions.start`",
        "`stages.<stage>.timeout_s`",
        "`model.variants`",
        "`scoring.landing`",
        "`gate.max_regression`",
    ):
        assert f"| {field} |" in PAGE.read_text(), field


def test_the_seed_config_fields_parse(tmp_path, monkeypatch):
    """pipeline.version, resources.gpu, notifications.on_success and per-pipeline recipients; an
    estimator and a feature function of the team's own module beside pipelines.yaml."""
    (tmp_path / "team_models.py").write_text(
        "from sklearn.ensemble import RandomForestClassifier\n\n"
        "def make_model(trees=10):\n    return RandomForestClassifier(n_estimators=trees)\n\n"
        "def add_ratio(frame):\n    return frame.assign(ratio=frame['a'] / frame['b'])\n"
    )
    (tmp_path / "pipelines.yaml").write_text(
        textwrap.dedent("""
        pipelines:
          - name: churn
            version: 1.4
            model: {estimator: "team_models:make_model", params: {trees: 5}}
            features: {columns: [a, b], transform: "team_models:add_ratio"}
            stages: {train: {resources: {gpu: 1, memory: 8Gi}}}
            notifications:
              webhook: {url_env: CHURN_WEBHOOK_URL, channel: "#ml-alerts"}
              email: [ml-team@company.com]
              on_success: [webhook]
              on_deploy: {email: [lead@company.com]}
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # removed again after the test (load adds it too)
    (churn,) = load_pipelines(load_settings(environ={}), tmp_path / "pipelines.yaml")
    assert churn.version == "1.4" and churn.model.params == {"trees": 5}
    assert [f.name for f in churn.features.columns] == ["a", "b"]
    assert churn.features.transform == "team_models:add_ratio"
    deploy, success, failure = (churn.notifications.route(e) for e in ("on_deploy", "on_success", "on_failure"))
    assert (deploy.channels, deploy.email) == (("email",), ("lead@company.com",))
    assert (success.channels, success.webhook_url_env, success.webhook_channel) == (
        ("webhook",),
        "CHURN_WEBHOOK_URL",
        "#ml-alerts",
    )
    assert (failure.channels, failure.email) == (None, ("ml-team@company.com",))

    from ml_platform.runtime import PipelineRuntime

    runtime = PipelineRuntime(churn, load_settings(environ={}))
    assert runtime.op_tags("train") == {
        "dagster-k8s/config": {
            "container_config": {
                "resources": {"requests": {"memory": "8Gi"}, "limits": {"memory": "8Gi", "nvidia.com/gpu": "1"}}
            }
        }
    }
    assert runtime.asset_options("train", "ml")["code_version"] == "1.4"


def test_a_features_list_is_short_for_its_columns():
    (churn,) = parse("pipelines:\n  - name: churn\n    features: [a, {b: categorical}]\n")
    assert [(f.name, f.kind) for f in churn.features.columns] == [("a", None), ("b", "categorical")]
    assert churn.features.transform is None
    # Left out: no version, no transform, on_success sends nothing.
    assert churn.version is None and churn.notifications.route("on_success").channels == ()


def test_a_gate_of_several_thresholds_keeps_the_file_order_and_a_margin_per_metric():
    (churn,) = parse(
        """
        pipelines:
          - name: churn
            target: churned
            gate:
              max_log_loss: 0.4
              min_recall: {yes: 0.3, "no": 0.9, 2: 0.5}
              min_roc_auc: 0.85
              max_regression: {roc_auc: 0.01, log_loss: {value: 0.05, relative: true}}
        """
    )
    described = [(t.check_name, t.value, t.max_regression, t.relative) for t in churn.gate_thresholds]
    # YAML reads an unquoted yes as true: the class is "True" (the gate says so if the model has no such class).
    assert described == [
        ("log_loss_below_threshold", 0.4, 0.05, True),
        ("recall_of_True_above_threshold", 0.3, 0.0, False),
        ("recall_of_no_above_threshold", 0.9, 0.0, False),
        ("recall_of_2_above_threshold", 0.5, 0.0, False),
        ("roc_auc_above_threshold", 0.85, 0.01, False),
    ]
    assert churn.gate_metric == "log_loss"  # the first threshold on the whole split ranks variants


def test_per_class_thresholds_alone_rank_variants_by_the_macro_average():
    churn, _ = parse(GOOD.replace("gate: {min_accuracy: 0.75}", 'gate: {min_f1: {"yes": 0.4}, max_regression: 0.02}'))
    assert churn.gate_metric == "f1_macro"
    ((only),) = churn.gate_thresholds
    assert (only.name, only.max_regression) == ("f1 of yes", 0.02)
