"""The pipelines file (``pipelines.yaml``): its schema (pydantic), validated and defaulted in one place.

Each entry is a pipeline's spec (``PipelineSpec``); ``ml_platform.factory`` builds its asset group,
checks, jobs, schedule and sensors. The file is validated when the code location loads, so an
unknown key, a bad cron, an unknown estimator or a duplicate name fails ``dagster definitions
validate`` (and ``dg check defs``) with the file, the entry and the field. The team's own code an
entry names (an estimator, a feature step) is checked here by its import path's syntax alone;
``ml_platform.loading`` reads the file, parses it here, then imports that code.

Fields an entry leaves out are resolved here, once (``_with_defaults``), from the platform settings
of ``ml_platform.settings`` (environment): target column, feature columns, training window, model
name, landing, time zone, partitions start. What ``parse_pipelines`` returns is complete: nothing
downstream falls back to the settings again. The reference of every field, docs/pipelines.md, is
generated from the field descriptions below (``ml-platform docs``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from ml_platform import constants
from ml_platform.errors import ConfigError, UserCodeError
from ml_platform.estimators import ImportedEstimator, estimator_names, estimator_of
from ml_platform.metrics import GATE_METRICS, METRIC, METRICS, PER_CLASS_METRICS, TASKS, Metric
from ml_platform.quality.rules import ColumnRules, Contract, Rule
from ml_platform.settings import Settings
from ml_platform.user_code import check_syntax

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
# Kubernetes quantities: "2", "500m", "0.5" CPUs; "512Mi", "16Gi", "1G" memory.
_CPU = re.compile(r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$")
_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
STAGES = ("ingest", "train", "evaluate", "deploy", "score")
CHANNELS = ("webhook", "email")
DEMO_DATASETS = ("breast_cancer", "diabetes")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResourcesSpec(_Strict):
    """What a stage's step asks of Kubernetes (``dagster-k8s/config`` requests and limits)."""

    cpu: str | None = Field(default=None, description='CPU, e.g. 4, "500m".')
    memory: str | None = Field(default=None, description='Memory, e.g. "16Gi", "512Mi".')
    gpu: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="NVIDIA GPUs: the `nvidia.com/gpu` limit (Kubernetes schedules GPUs by their limit).",
    )

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _quantity(cls, value: Any, info: Any) -> str | None:
        if value is None:
            return None
        pattern, what, example = {
            "cpu": (_CPU, "CPU", "2, 0.5, 500m"),
            "memory": (_MEMORY, "memory", "16Gi, 512Mi"),
        }[info.field_name]
        text = str(value)
        if isinstance(value, bool) or not pattern.match(text):
            raise ValueError(f"{value!r} is not a {what} quantity (e.g. {example})")
        return text


class StageSpec(_Strict):
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Longest the stage's step may take, in seconds; then it fails with StageTimeoutError (a fit"
        " is stopped in its child process, any other step by a timer). Default: none.",
    )
    retries: int | None = Field(
        default=None,
        ge=0,
        le=20,
        description="Retries of the stage's steps (RetryPolicy with exponential backoff from ML_PLATFORM_RETRY_DELAY_S"
        " and jitter). Default: ML_PLATFORM_STORAGE_RETRIES (3) for ingest, deploy and score, which touch storage;"
        " 0 for train and evaluate.",
    )
    resources: ResourcesSpec | None = Field(
        default=None,
        description="What the stage's steps ask of Kubernetes: the `dagster-k8s/config` tag, requests (and memory"
        " as the limit; GPUs as `nvidia.com/gpu` limit) of the step's container when runs execute on Kubernetes;"
        " ignored elsewhere.",
    )


class StagesSpec(_Strict):
    ingest: StageSpec = Field(
        default_factory=StageSpec, description="The ingest stage: raw_data and its checks; scoring_data."
    )
    train: StageSpec = Field(
        default_factory=StageSpec,
        description="The train stage: training_data, the splits, variant_model, trained_model.",
    )
    evaluate: StageSpec = Field(
        default_factory=StageSpec,
        description="The evaluate stage: model_metrics and its checks (the gate, the signature).",
    )
    deploy: StageSpec = Field(default_factory=StageSpec, description="The deploy stage: deployed_model.")
    score: StageSpec = Field(default_factory=StageSpec, description="The score stage: predictions.")


class ScoringSpec(_Strict):
    """Batch scoring: where unlabelled day files land; each day is scored with the production model."""

    landing: str = Field(
        description="Where the day files to score land, as `landing` is read: relative to the landing root,"
        " an absolute folder, or s3://bucket/prefix (prod)."
    )
    id: str | None = Field(
        default=None,
        description="A column of the scoring rows that names each row (an order id): predictions[day] carries its"
        " values as `request_id`, as the prediction log does for served requests, for joining late outcomes."
        " Default: `<day>-<row>`.",
    )


class PredictionLogSpec(_Strict):
    """What `ml-platform serve` keeps of each answered request (docs/serving.md, the prediction log)."""

    enabled: bool = Field(default=True, description="Log the requests `ml-platform serve` answers for this model.")
    sample: float = Field(
        default=1.0, gt=0, le=1, description="The share of requests logged, e.g. 0.1 for one in ten (at random)."
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Columns never written to the log (an ssn, an e-mail): the log holds the model's inputs.",
    )
    retention_days: int | None = Field(
        default=None,
        ge=1,
        description="How many days of the log are kept, today's included: `ml-platform serve` deletes older day"
        " folders when it starts and hourly. Default: every day is kept.",
    )


class ServingSpec(_Strict):
    log: PredictionLogSpec = Field(
        default_factory=PredictionLogSpec,
        description="The prediction log: every answered request's rows, predictions, id, version and latency.",
    )


class MonitoringSpec(_Strict):
    """served[day]: each day of the prediction log as an asset, with its checks (docs/monitoring.md)."""

    min_signature_share: float = Field(
        default=0.99,
        ge=0,
        le=1,
        description="The share of served rows that must meet the model's signature (the rest were refused with"
        " a 422): below it, served[day]'s check served_rows_match_signature fails.",
    )
    grace_minutes: int = Field(
        default=10,
        ge=0,
        le=1440,
        description="How long after a day ends the <name>_served_sensor waits for the servers' last flushes before"
        " it materializes served[day]; parts written later start another run for the day.",
    )
    sustained_days: int = Field(
        default=3,
        ge=1,
        le=60,
        description="With `feedback`: consecutive days of decayed live metrics before <name>_decay_sensor starts one"
        " retraining run.",
    )
    max_drop: float | None = Field(
        default=None,
        ge=0,
        description="With `feedback`: a day's live gate metric also counts as decayed when it is this much worse than"
        " the production model's own test score (0.05: five points of accuracy). Default: the gate's threshold"
        " alone.",
    )
    min_outcomes: int = Field(
        default=100,
        ge=1,
        description="With `feedback`: a day with fewer labelled predictions says nothing about decay (it neither counts"
        " nor breaks a run of decayed days).",
    )


class FeedbackSpec(_Strict):
    """Late outcomes of served predictions: files of ids and true labels (docs/monitoring.md, outcomes)."""

    landing: str = Field(
        description="Where the outcome files land, one a day (`<day>.parquet` or `.csv`), as `landing` is read:"
        " relative to the landing root, an absolute folder, or s3://bucket/prefix (prod)."
    )
    id: str = Field(
        default="request_id",
        description="The column of the outcome files that holds the request id of the prediction (the"
        " `X-Request-ID` a client sent, or the id the server answered with). A `row` column, when there,"
        " names the row of a request of several rows (default: row 0).",
    )
    max_delay_days: int = Field(
        default=30,
        ge=1,
        le=366,
        description="How many days after a prediction its outcome may arrive: the prediction log of that many"
        " days back is searched for an outcome's id, and live_metrics[day] reads outcomes that arrived up to"
        " that many days after the day.",
    )


class PromoteWhenSpec(_Strict):
    """When the rollout sensor promotes the candidate: enough labelled rows and days, and the
    candidate no worse than production on them, with the declared confidence (docs/rollout.md)."""

    min_labelled: int = Field(
        default=500, ge=1, description="Labelled rows the candidate's evidence needs (each model's, compared)."
    )
    min_days: int = Field(default=2, ge=1, le=60, description="Days of traffic the candidate needs, at least.")
    confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1,
        description="How sure the comparison must be: the one-sided lower bound of candidate minus production on"
        " the gate metric (for an error: production minus candidate), at this confidence, is above"
        " -max_regression.",
    )
    max_regression: float = Field(
        default=0.0,
        ge=0,
        description="How much worse than production the candidate may be on the gate metric and still be promoted"
        " (0.0: no worse).",
    )


class AbortWhenSpec(_Strict):
    """When the rollout sensor aborts the candidate on its labelled evidence."""

    confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1,
        description="Abort once the candidate is worse than production on the gate metric with this confidence"
        " (the one-sided upper bound of candidate minus production below 0).",
    )
    min_labelled: int = Field(
        default=100,
        ge=1,
        description="Labelled rows the comparison needs before it may abort (fewer than promotion needs: a clearly"
        " worse candidate goes early).",
    )


class GuardrailsSpec(_Strict):
    """Operational limits the candidate must keep from its first request on: crossing one aborts at
    once, without waiting for labels."""

    max_error_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="The share of the candidate's rows it refused or failed on (a signature it does not meet, an"
        " exception), at most.",
    )
    max_p99_ratio: float = Field(
        default=2.0,
        gt=0,
        description="The candidate's p99 latency over production's on the same days, at most.",
    )
    min_rows: int = Field(
        default=100, ge=1, description="Rows of the candidate a guardrail needs before it may abort on them."
    )


class RollbackSpec(_Strict):
    """Rollback after promotion: a promoted version whose live gate metric over its first days is
    worse than the version it replaced (over the days before the swap) is rolled back."""

    days: int = Field(default=3, ge=1, le=60, description="The promoted version's first days that are compared.")
    max_live_regression: float = Field(
        default=0.02,
        ge=0,
        description="How much worse the promoted version's live gate metric may be than the replaced version's.",
    )
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1, description="How sure the regression beyond the margin must be."
    )
    min_labelled: int = Field(default=200, ge=1, description="Labelled rows each version needs for a comparison.")


class RolloutSpec(_Strict):
    """How a version that passed the offline gate reaches production (docs/rollout.md): at once
    (`direct`), or as a candidate beside production that earns it on live traffic (`shadow`: it
    predicts every request unseen; `canary`: it answers a stable share of requests)."""

    strategy: Literal["direct", "shadow", "canary"] = Field(
        default="direct",
        description="`direct`: the gated version is promoted at once. `shadow`, `canary`: it becomes the candidate;"
        " production moves only when the rollout sensor (or `ml-platform rollout promote`) promotes it.",
    )
    share: float = Field(
        default=0.1, gt=0, lt=1, description="canary: the share of requests the candidate answers (0.1: one in ten)."
    )
    route_by: str | None = Field(
        default=None,
        description="canary: the request column whose value routes a request (a customer id: one entity always meets"
        " the same model). Default: the request id.",
    )
    mirror: bool = Field(
        default=False,
        description="canary: the model that did not answer a request predicts it too, off the request path, so that"
        " every labelled row compares both models on the same rows.",
    )
    promote_when: PromoteWhenSpec = Field(
        default_factory=PromoteWhenSpec, description="When the candidate is promoted on its live evidence."
    )
    abort_when: AbortWhenSpec = Field(
        default_factory=AbortWhenSpec, description="When the candidate is aborted on its live evidence."
    )
    guardrails: GuardrailsSpec = Field(
        default_factory=GuardrailsSpec, description="Errors and latency that abort the candidate at once."
    )
    max_days: int = Field(
        default=14, ge=1, le=366, description="Days a candidate may wait for its evidence; then it is aborted."
    )
    rollback: RollbackSpec | None = Field(
        default=None,
        description="Roll a promotion back when the promoted version's live metric turns worse than the version it"
        " replaced (any strategy, `direct` too): `{days: 3, max_live_regression: 0.02}`. Default: no rollback.",
    )

    @property
    def uses_candidate(self) -> bool:
        return self.strategy != "direct"

    @property
    def watched(self) -> bool:
        """Whether live evidence decides anything: a candidate's fate, or a rollback (rollout[day])."""
        return self.uses_candidate or self.rollback is not None


class ModelSpec(_Strict):
    estimator: str = Field(
        default="random_forest",
        description="classification: `random_forest` (RandomForestClassifier), `hist_gradient_boosting`"
        " (HistGradientBoostingClassifier), `logistic_regression`; regression: `random_forest`"
        " (RandomForestRegressor), `hist_gradient_boosting` (HistGradientBoostingRegressor), `ridge`. Or your own:"
        " an import path `module:Name` to a scikit-learn-compatible estimator class or to a function returning"
        " one (`lightgbm:LGBMClassifier`, `mypkg.models:make_model`), called with `params` when the file is"
        " loaded; modules beside pipelines.yaml import too.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The estimator's parameters, validated at load; scikit-learn's defaults, except random_forest"
        " `max_depth: 10`, `n_jobs: -1`. random_forest: n_estimators, max_depth, min_samples_leaf, random_state,"
        " n_jobs; hist_gradient_boosting: max_iter, learning_rate, max_depth, max_leaf_nodes, l2_regularization,"
        " early_stopping (default false), random_state; logistic_regression: C, max_iter (1000), class_weight"
        " (`balanced` or null); ridge: alpha. An imported estimator takes them as keyword arguments, as given."
        " They are the defaults of trained_model's run config.",
    )
    variants: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Hyperparameter variants, each a set of params laid over `params`: trained in"
        " parallel as static partitions of `variant_model`; the best (cross-validated on the train"
        " split) is the challenger.",
    )

    def variant_params(self) -> dict[str, dict[str, Any]]:
        """{variant name: its full params}, in file order (after validation)."""
        return {variant_name(v): {**self.params, **v} for v in self.variants}


_VARIANT_NAME = re.compile(r"^[A-Za-z0-9_.=+-]{1,100}$")


def variant_name(overrides: dict[str, Any]) -> str:
    """The variant's partition key: ``max_depth=5``, ``max_depth=5+n_estimators=50``."""
    return "+".join(f"{k}={v}" for k, v in overrides.items())


class SplitSpec(_Strict):
    """The train/test split (``sklearn.model_selection.train_test_split``); run config of the
    ``<name>__splits`` op can still override each field for one run."""

    test_size: float = Field(
        default=constants.DEFAULT_TEST_SIZE,
        gt=0,
        lt=1,
        description=f"Share of rows held out for testing, between 0 and 1 (default {constants.DEFAULT_TEST_SIZE}).",
    )
    random_state: int = Field(
        default=constants.DEFAULT_RANDOM_STATE,
        description=f"Seed of the split: same seed, same split (default {constants.DEFAULT_RANDOM_STATE}).",
    )
    stratify: bool = Field(
        default=True,
        description="Classification: keep the class shares equal on both sides when every class has enough rows"
        " (the default); `false` for a plain shuffled split, as `train_test_split` without `stratify=`. Regression"
        " splits are never stratified.",
    )


# A threshold per class: {class: threshold}.
_PerClass = dict[str, float]


def _unit(description: str) -> Any:
    return Field(default=None, ge=0, le=1, description=description)


def _per_class(what: str) -> Any:
    return Field(
        default=None,
        description=f"Smallest test {what} deployed (classification): one number for the weighted {what}, or"
        f' per class, `{{"yes": 0.3}}` (quote class names YAML reads as booleans: yes, no, on, off).',
    )


def _between_0_and_1(value: Any, where: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{where}{value!r} is not a number between 0 and 1")
    return float(value)


def _margin(value: Any, where: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{where}{value!r} is not a number of 0 or more (or {{value, relative}})")
    return float(value)


class RegressionLimit(_Strict):
    """How much worse than the champion a metric may be: in its own units, or relative to the champion's."""

    value: float = Field(ge=0, description="The margin.")
    relative: bool = Field(
        default=False, description="`true`: a share of the champion's value (0.05: 5 % worse at most)."
    )


@dataclass(frozen=True)
class GateThreshold:
    """One threshold of the gate, resolved: the metric (``of_class``: one class's value of it), the
    bound, which way is better and the margin allowed against the champion. Its own blocking check."""

    key: str  # the gate's key: min_recall
    metric: str
    value: float
    higher_is_better: bool
    of_class: str | None = None
    max_regression: float = 0.0
    relative: bool = False
    beat_baseline: bool = False  # must also be better than the do-nothing model's value
    confidence: float | None = None  # how sure "not worse than the champion" must be (paired bootstrap)

    @property
    def name(self) -> str:
        """As people read it: ``roc_auc``, ``recall of yes``."""
        return self.metric if self.of_class is None else f"{self.metric} of {self.of_class}"

    @property
    def check_name(self) -> str:
        """``roc_auc_above_threshold``, ``recall_of_yes_above_threshold``, ``log_loss_below_threshold``."""
        of = "" if self.of_class is None else "_of_" + (re.sub(r"[^A-Za-z0-9_]", "_", self.of_class) or "_")
        return f"{self.metric}{of}_{'above' if self.higher_is_better else 'below'}_threshold"


# The gate's keys that are not thresholds.
_GATE_OPTIONS = ("max_regression", "beat_baseline", "confidence", "slices")


class SliceGateSpec(_Strict):
    """The gate on slices: a challenger worse than the champion on any declared slice with enough
    fresh test rows is held back, naming the slice."""

    min_support: int = Field(
        default=100,
        ge=1,
        description="The fewest fresh test rows a slice needs to be judged (fewer: shown, not gated; a few rows"
        " make a noisy score).",
    )
    max_regression: float = Field(
        default=0.05,
        ge=0,
        description="How much worse than the champion, on each gated metric, the challenger may score on a slice"
        " (in the metric's own units; `relative: true`: a share of the champion's value).",
    )
    relative: bool = Field(default=False, description="`true`: max_regression is a share of the champion's value.")


class DecisionSpec(_Strict):
    """How a binary classifier turns its probability of the positive class into a prediction: at a
    fixed threshold, or at the one that maximizes a metric or meets a floor, chosen on a part of the
    train split (scikit-learn's FixedThresholdClassifier / TunedThresholdClassifierCV)."""

    threshold: float | None = Field(
        default=None, gt=0, lt=1, description="Predict the positive class when its probability is at least this."
    )
    maximize: Literal["f1", "balanced_accuracy", "accuracy"] | None = Field(
        default=None, description="Choose the threshold that maximizes this metric of the positive class."
    )
    min_precision: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Choose the threshold with the highest recall whose precision is at least this.",
    )
    min_recall: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Choose the threshold with the highest precision whose recall is at least this.",
    )
    positive_class: str | None = Field(
        default=None,
        description="The class the threshold is about; default: the second of the two in sorted order"
        " (scikit-learn's positive class: 1, True, `yes` of no/yes).",
    )
    validation_size: float = Field(
        default=0.25,
        gt=0,
        lt=1,
        description="The share of the train split the threshold is chosen on (the model is then refit on all"
        " of it); never the test split.",
    )

    @field_validator("positive_class", mode="before")
    @classmethod
    def _class_name(cls, value: Any) -> Any:
        return None if value is None else str(value)

    @model_validator(mode="after")
    def _one_rule(self) -> DecisionSpec:
        given = [k for k in ("threshold", "maximize", "min_precision", "min_recall") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give one of threshold, maximize, min_precision, min_recall"
                + (f" (not {' and '.join(given)})" if given else "")
            )
        return self

    @property
    def rule(self) -> str:
        """As people read it: ``threshold 0.3``, ``maximize f1``, ``min_precision 0.9``."""
        for key in ("threshold", "maximize", "min_precision", "min_recall"):
            value = getattr(self, key)
            if value is not None:
                return f"{key} {value}"
        return ""


class EvaluationSpec(_Strict):
    """What model_metrics reports beside the scores on the whole test split."""

    slices: list[str] = Field(
        default_factory=list,
        description="Columns to score the model on, slice by slice: each value of a categorical column"
        " (`region=north`), each quantile bin of a numeric one (`tenure=(12.0, 24.0]`); every metric per slice"
        " with its rows, for the model and the champion. `gate.slices` gates on them.",
    )
    bins: int = Field(default=4, ge=2, le=20, description="Quantile bins of a numeric slice column.")
    min_support: int = Field(
        default=30,
        ge=1,
        description="The fewest test rows a slice needs to be among the five worst slices (listed over every"
        " categorical feature, declared or not).",
    )

    @field_validator("slices")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        twice = sorted({c for c in value if value.count(c) > 1})
        if twice:
            raise ValueError(f"lists {', '.join(map(repr, twice))} more than once")
        return value


class _GateRules(_Strict):
    """What the gate does with its fields; the fields themselves are made below from the metric
    registry (ml_platform/metrics.py): one threshold per metric, then the options."""

    _order: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_order(cls, data: Any, handler: Any) -> _GateRules:
        """The thresholds in the order the file gives them (the first is the gate's primary metric)."""
        gate = handler(data)
        if isinstance(data, dict):
            gate._order = [k for k in data if k not in _GATE_OPTIONS]
        return gate

    @field_validator(*(METRIC[m].gate_key for m in PER_CLASS_METRICS), mode="before", check_fields=False)
    @classmethod
    def _class_names(cls, value: Any) -> Any:
        """A number, or {class: number}; class names as the report spells them (``str(label)``):
        YAML's 1 or true as "1", "True"."""
        if value is None or not isinstance(value, dict):
            return _between_0_and_1(value)
        if not value:
            raise ValueError("give at least one class")
        return {str(k): _between_0_and_1(v, f"{k}: ") for k, v in value.items()}

    @field_validator("max_regression", mode="before", check_fields=False)
    @classmethod
    def _margins(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return _margin(value)
        margins = {}
        for metric, margin in value.items():
            if isinstance(margin, dict):
                try:
                    margins[metric] = RegressionLimit.model_validate(margin)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(map(str, (metric, *first["loc"])))
                    raise ValueError(f"{where}: {_message(first)}") from None
            else:
                margins[metric] = _margin(margin, f"{metric}: ")
        return margins

    def given(self) -> dict[str, float | dict[str, float]]:
        """The thresholds set, in the file's order."""
        values = {k: v for k, v in self.model_dump().items() if v is not None and k not in _GATE_OPTIONS}
        order = [k for k in self._order if k in values] + [k for k in values if k not in self._order]
        return {k: values[k] for k in order}

    def thresholds(self, task: str) -> list[GateThreshold]:
        """Every threshold, resolved (the task's default gate when none is given), one per class of a
        per-class one."""
        given = self.given() or (
            {"min_accuracy": constants.DEFAULT_MIN_ACCURACY} if task == "classification" else {"min_r2": 0.0}
        )
        out = []
        for key, value in given.items():
            metric = key.split("_", 1)[1]
            margin, relative = self.margin(metric)
            per_class = value if isinstance(value, dict) else {None: value}
            for of_class, bound in per_class.items():
                higher_is_better = GATE_METRICS[task][metric]
                beat = self.beat_baseline and of_class is None
                out.append(
                    GateThreshold(
                        key, metric, float(bound), higher_is_better, of_class, margin, relative, beat, self.confidence
                    )
                )
        return out

    def margin(self, metric: str) -> tuple[float, bool]:
        """(max_regression, relative) of ``metric``."""
        if not isinstance(self.max_regression, dict):
            return float(self.max_regression), False
        margin = self.max_regression.get(metric, 0.0)
        if isinstance(margin, RegressionLimit):
            return float(margin.value), margin.relative
        return float(margin), False


def _threshold_field(metric: Metric) -> tuple[Any, Any]:
    """A gate threshold of pipelines.yaml, from the metric's entry in the registry."""
    if metric.per_class:
        return float | _PerClass | None, Field(default=None, description=metric.gate_text)
    return float | None, Field(default=None, **metric.bounds, description=metric.gate_text)


_GATE_OPTION_FIELDS: dict[str, tuple[Any, Any]] = {
    "max_regression": (
        float | dict[str, float | RegressionLimit],
        Field(
            default=0.0,
            description="How much worse than the production model (the champion), on the same test rows, a new"
            " model may score and still be deployed: one number for every gated metric, in each metric's own"
            " units; or per metric, `{roc_auc: 0.01, log_loss: {value: 0.05, relative: true}}` (a metric left"
            " out: 0).",
        ),
    ),
    "beat_baseline": (
        bool,
        Field(
            default=True,
            description="A model must also score better than scikit-learn's do-nothing model (DummyClassifier():"
            " always the most frequent class, with the training rows' class shares as probabilities;"
            " DummyRegressor(): the training mean) on each gated whole-split metric, on the same rows. Per-class"
            " thresholds are not compared with it (it has recall 1 for the most frequent class, 0 for the"
            " others).",
        ),
    ),
    "confidence": (
        float | None,
        Field(
            default=None,
            ge=0.5,
            lt=1,
            description="Promote a challenger only when a paired bootstrap of both models on the same test rows"
            " finds it not worse than the champion (beyond `max_regression`) in at least this share of resamples,"
            " e.g. 0.95. Default: off (the values alone are compared).",
        ),
    ),
    "slices": (
        SliceGateSpec | None,
        Field(
            default=None,
            description="Hold back a challenger worse than the champion on any slice of `evaluation.slices` with"
            " enough rows: `{min_support: 100, max_regression: 0.05}`. Its own blocking check,"
            " slices_no_worse_than_production.",
        ),
    ),
}
assert tuple(_GATE_OPTION_FIELDS) == _GATE_OPTIONS

# One field per metric of the registry, in its order, then the options.
GateSpec = create_model(
    "GateSpec",
    __base__=_GateRules,
    __module__=__name__,
    __doc__="""Thresholds on the test split, as many as wanted, each its own blocking check: ``min_<metric>``
    for scores where higher is better, ``max_<metric>`` for errors (none given means
    ``min_accuracy: 0.8`` for classification, ``min_r2: 0.0`` for regression). And the
    champion/challenger margin ``max_regression``.""",
    **{metric.gate_key: _threshold_field(metric) for metric in METRICS},
    **_GATE_OPTION_FIELDS,
)


class ScheduleSpec(_Strict):
    cron: str = Field(
        default=constants.DAILY_SCHEDULE_CRON,
        description="When the schedule runs the pipeline for the day that just ended (Dagster's cron check).",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA time zone of the schedule *and* of the pipeline's daily partitions. Default:"
        " ML_PLATFORM_TIMEZONE (UTC).",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        # Dagster's own check (the one ScheduleDefinition applies), pinned with Dagster 1.13.27.
        from dagster._utils.schedules import is_valid_cron_string

        if not is_valid_cron_string(value):
            raise ValueError(f"{value!r} is not a valid cron expression (e.g. '0 2 * * *')")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)") from None
        return value


class DriftSpec(_Strict):
    """Feature drift of each new raw_data (or scoring_data) day against the data the production model
    was trained on (ml_platform.drift)."""

    enabled: bool = Field(
        default=True,
        description="The no_feature_drift check on raw_data (and scoring_data) and the <name>_drift_sensor.",
    )
    method: Literal["psi", "ks"] = Field(
        default="psi",
        description="`psi` (population stability index over deciles / categories) or `ks` (Kolmogorov-Smirnov"
        " statistic; categorical features use PSI).",
    )
    threshold: float | None = Field(
        default=None, gt=0, description="Per-feature limit; default 0.2 (PSI) or 0.15 (KS)."
    )
    sustained_days: int = Field(
        default=3, ge=1, le=60, description="Consecutive drifting days before the drift sensor retrains."
    )

    @property
    def limit(self) -> float:
        from ml_platform.drift import DEFAULT_THRESHOLDS

        return self.threshold if self.threshold is not None else DEFAULT_THRESHOLDS[self.method]


class FeatureColumn(_Strict):
    """One declared feature column: ``age``, or ``{age: numeric}`` with its kind."""

    name: str = Field(description="The column's name in the landing files.")
    kind: Literal["numeric", "boolean", "categorical", "datetime"] | None = Field(
        default=None,
        description="`numeric`, `boolean`, `categorical` (kept whatever its number of values, numbers too: a store"
        " id), or `datetime` (turned into its hour, weekday and month); left out: the production model's kind, or"
        " what the column holds.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and len(value) == 1 and "name" not in value:
            ((name, kind),) = value.items()
            return {"name": str(name), "kind": kind}
        if isinstance(value, dict):
            raise ValueError(f"{value!r}: give a column name, or one 'name: kind' pair")
        return value


class EncodingSpec(_Strict):
    """How categorical columns reach the estimator (docs/assets-and-checks.md, "Encodings")."""

    max_categories: int = Field(
        default=constants.DEFAULT_ENCODING_MAX_CATEGORIES,
        ge=2,
        le=10_000,
        description="Most one-hot columns per categorical column: the most frequent values keep their own, the rest"
        f" share one (default {constants.DEFAULT_ENCODING_MAX_CATEGORIES}). hist_gradient_boosting codes categories"
        f" natively, at most {constants.NATIVE_MAX_CATEGORIES} per column.",
    )
    min_frequency: int = Field(
        default=constants.DEFAULT_ENCODING_MIN_FREQUENCY,
        ge=1,
        description="Values seen in fewer training rows than this are grouped with the other rare ones (default"
        f" {constants.DEFAULT_ENCODING_MIN_FREQUENCY}).",
    )


class FeaturesSpec(_Strict):
    """The feature columns and the pipeline's own feature step. ``features: [a, b]`` is short for
    ``features: {columns: [a, b]}``."""

    columns: list[FeatureColumn] | None = Field(
        default=None,
        description="The feature columns, in order; each a name or `name: kind` (numeric, boolean,"
        " categorical). Left out: the production model's signature pins them (the first model's columns).",
    )
    transform: str | None = Field(
        default=None,
        description="Your feature step, `module:name`: a function DataFrame -> DataFrame, or a transformer class or"
        " object (fit/transform). It runs first *inside* the saved model, so training, evaluation, `ml-platform"
        " predict`, serving and batch scoring compute the same features; the signature describes the raw columns"
        " before it.",
    )
    encoding: EncodingSpec = Field(
        default_factory=EncodingSpec,
        description="How categorical columns are encoded for the estimator: the width of one-hot encodings.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if value is None:
            return {}
        return {"columns": value} if isinstance(value, list) else value

    @field_validator("transform")
    @classmethod
    def _transform(cls, value: str | None) -> str | None:
        # Its syntax only: the team's module is imported once the file is valid (ml_platform.loading).
        return check_syntax(value) if value is not None else None


class SchemaSpec(_Strict):
    """What may change about a pipeline's columns (docs/assets-and-checks.md, "The input contract")."""

    extra_columns: Literal["ignore", "fail"] = Field(
        default="ignore",
        description="A landing column outside the schema: `ignore` leaves it out of training (the day"
        " passes with a warning: the model's inputs stay as they are), `fail` fails the day's"
        " schema_matches check.",
    )
    evolve: bool = Field(
        default=False,
        description="Whether a new model may take other columns than the production model (added,"
        " removed, re-kinded). Without `features`, the data's columns then replace the pinned schema.",
    )


Severity = Literal["block", "warn"]
_SEVERITY_TEXT = (
    "`block` (the default) fails the day's check and keeps the day out of training; `warn` fails"
    " it as a warning (Dagster's WARN severity) and the day is used."
)


class _Rule(_Strict):
    """One rule of the data contract: its value, written plainly (`max: 5000`) or with its own severity
    (`max: {value: 5000, severity: warn}`)."""

    severity: Severity | None = Field(
        default=None, description="This rule's severity; left out: its column's (or `block`). " + _SEVERITY_TEXT
    )

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {"value": value}


class RatioRule(_Rule):
    value: float = Field(ge=0, le=1, description="A share of the day's rows, 0..1.")


class BoundRule(_Rule):
    value: float = Field(description="A number.")

    @field_validator("value", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{value!r} is not a number")
        return value


class ValuesRule(_Rule):
    value: list[str | int | float | bool] = Field(min_length=1, description="The values allowed.")


class FlagRule(_Rule):
    value: bool = Field(description="true or false.")


class CountRule(_Rule):
    value: int = Field(ge=1, description="A count, 1 or more.")


class ColumnQualitySpec(_Strict):
    """The rules of one column (`quality.columns.<column>`), judged on each day it is in."""

    max_null_ratio: RatioRule | None = Field(
        default=None,
        description="Largest share of the day's rows this column may leave empty (replaces"
        " `quality.max_null_ratio` for it).",
    )
    min: BoundRule | None = Field(default=None, description="Smallest value allowed (numbers).")
    max: BoundRule | None = Field(default=None, description="Largest value allowed (numbers).")
    allowed: ValuesRule | None = Field(default=None, description="The only values allowed (a list).")
    unique: FlagRule | None = Field(default=None, description="`true`: no value repeats within a day (an id).")
    max_categories: CountRule | None = Field(default=None, description="Most distinct values in a day.")
    severity: Severity = Field(default="block", description="The severity of this column's rules. " + _SEVERITY_TEXT)

    @model_validator(mode="after")
    def _bounds(self) -> ColumnQualitySpec:
        if self.min is not None and self.max is not None and self.min.value > self.max.value:
            raise ValueError(f"min {self.min.value:g} is above max {self.max.value:g}")
        return self


class TargetMissingSpec(_Strict):
    """Rows without a label: dropped before training and counted per day; their share has its own limit."""

    max_ratio: float = Field(
        default=constants.DEFAULT_MAX_TARGET_MISSING,
        ge=0,
        le=1,
        description=f"Largest share of a day's rows without a label (default {constants.DEFAULT_MAX_TARGET_MISSING}).",
    )
    severity: Severity = Field(default="block", description=_SEVERITY_TEXT)


class DedupeSpec(_Strict):
    """Which rows of the training window are duplicates, dropped (keeping the first) and counted per day.
    `dedupe: true` (the default): a row repeating an earlier landing row in *every* column, those outside the
    schema too (a day delivered twice); `dedupe: {key: [event_id]}`: a row repeating an earlier row's key;
    `dedupe: false`: none (repeated rows are distinct events)."""

    enabled: bool = Field(default=True, description="`false`: keep every row (written `dedupe: false`).")
    key: list[str] | None = Field(
        default=None,
        min_length=1,
        description="The columns that identify an event; left out: every column of the landing file.",
    )

    @model_validator(mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value


class QualitySpec(_Strict):
    """The data contract each raw_data day is checked against (docs/assets-and-checks.md, "The data
    contract"); `ml-platform contract` suggests one from the ingested days."""

    max_null_ratio: RatioRule = Field(
        default_factory=lambda: RatioRule(value=constants.DEFAULT_MAX_NULL_RATIO),
        description="Largest share of empty values in any feature column of a day, unless its column says"
        f" otherwise (default {constants.DEFAULT_MAX_NULL_RATIO}; a number, or `{{value: 0.2, severity: warn}}`)."
        " The label is judged by `target_missing`.",
    )
    min_rows: CountRule | None = Field(
        default=None, description="Fewest rows a day may have (a number, or `{value: 500, severity: warn}`)."
    )
    target_missing: TargetMissingSpec = Field(
        default_factory=TargetMissingSpec,
        description="Rows whose label is empty: dropped before training, counted per day, and their share limited.",
    )
    columns: dict[str, ColumnQualitySpec] = Field(
        default_factory=dict,
        description="Rules per column, by name: `price: {min: 0, max: 5000, max_null_ratio: 0.6}`,"
        " `store: {allowed: [north, south], severity: warn}`, `order_id: {unique: true}`. Each rule is written"
        " plainly or with its own severity (`max: {value: 5000, severity: warn}`).",
    )
    dedupe: DedupeSpec = Field(
        default_factory=DedupeSpec,
        description="Which repeated rows training_data drops:"
        " `true` (every landing column equal), `false`, or `{key: [event_id]}`.",
    )

    def contract(self, max_null_ratio: float | None = None) -> Contract:
        """The rules as ``quality`` applies them; ``max_null_ratio`` (a run's config) replaces the
        pipeline-wide null share for one run."""

        def rule(spec: _Rule | None, column_severity: str = "block") -> Rule | None:
            if spec is None:
                return None
            value = tuple(spec.value) if isinstance(spec.value, list) else spec.value
            return Rule(value, spec.severity or column_severity)

        default = rule(self.max_null_ratio)
        if max_null_ratio is not None:
            default = Rule(float(max_null_ratio), default.severity)
        columns = tuple(
            (
                name,
                ColumnRules(
                    **{
                        field: rule(getattr(rules, field), rules.severity)
                        for field in ("max_null_ratio", "min", "max", "allowed", "unique", "max_categories")
                    }
                ),
            )
            for name, rules in self.columns.items()
        )
        return Contract(
            max_null_ratio=default,
            min_rows=rule(self.min_rows),
            target_missing=Rule(self.target_missing.max_ratio, self.target_missing.severity),
            columns=columns,
        )


class PartitionsSpec(_Strict):
    start: str | None = Field(
        default=None,
        description="First daily partition, YYYY-MM-DD (default ML_PLATFORM_PARTITIONS_START): a new pipeline"
        " need not open with hundreds of empty days.",
    )

    @field_validator("start")
    @classmethod
    def _start(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                dt.date.fromisoformat(str(value))
            except ValueError:
                raise ValueError(f"{value!r} is not a YYYY-MM-DD date") from None
            return str(value)
        return value


_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
Channel = Literal["webhook", "email"]


class WebhookSpec(_Strict):
    """Where a pipeline's webhook messages go: another webhook (its URL a secret, so named by the
    environment variable that holds it) and the Slack channel."""

    url_env: str | None = Field(
        default=None,
        description="The environment variable holding this webhook's URL (never the URL itself: it is a secret),"
        " read when a message is sent. Default: ML_PLATFORM_WEBHOOK_URL.",
    )
    channel: str | None = Field(
        default=None,
        description="A Slack channel, e.g. \"#ml-alerts\": sent as the payload's `channel`. Left out: the webhook's"
        " own channel.",
    )

    @field_validator("url_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                f"{value!r} is not an environment variable name (e.g. CHURN_SLACK_WEBHOOK);"
                " the URL itself stays in the environment"
            )
        return value

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[#@][^\s]{1,80}$", value):
            raise ValueError(f"{value!r} is not a Slack channel or user: '#name' or '@name'")
        return value


def _addresses(value: list[str] | None) -> list[str] | None:
    for address in value or []:
        if not _ADDRESS.match(address):
            raise ValueError(f"{address!r} is not an e-mail address")
    return value


class RouteSpec(_Strict):
    """One event: a list of channels (`[webhook, email]`) sent to the pipeline's recipients, or a mapping of
    its own recipients (`{email: [lead@example.com]}`: the channels named are the ones used)."""

    channels: list[Channel] | None = Field(
        default=None, description="The channels, written as the event's list itself: `on_failure: [webhook]`."
    )
    webhook: WebhookSpec | None = Field(
        default=None,
        description="Send to a webhook: `{}` for the pipeline's, or `{channel: '#ml-deploys'}`, `{url_env: ...}`.",
    )
    email: list[str] | None = Field(default=None, description="Send e-mail to these addresses.")

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            unknown = [c for c in value if c not in CHANNELS]
            if unknown:
                raise ValueError(f"{unknown[0]!r} is not a channel: use webhook or email")
            return {"channels": value}
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: list[str] | None) -> list[str] | None:
        return _addresses(value)

    def chosen(self) -> tuple[str, ...]:
        if self.channels is not None:
            return tuple(self.channels)
        return tuple(c for c in CHANNELS if getattr(self, c) is not None)


@dataclass(frozen=True)
class Route:
    """Where one event's message goes (``NotificationsSpec.route``): the channels (None: every
    configured one), the webhook's URL variable and Slack channel, the e-mail addresses (None: the
    platform's, ML_PLATFORM_SMTP_RECIPIENTS)."""

    channels: tuple[str, ...] | None = None
    webhook_url_env: str | None = None
    webhook_channel: str | None = None
    email: tuple[str, ...] | None = None


class NotificationsSpec(_Strict):
    """Channels and recipients per event; a channel is used only when it is configured
    (docs/operations.md, notifications). An event is a list of channels (`[webhook, email]`), sent to
    the pipeline's recipients, or a mapping of its own recipients (`{email: [lead@example.com]}`)."""

    webhook: WebhookSpec | None = Field(
        default=None,
        description="This pipeline's webhook and Slack channel. Default: ML_PLATFORM_WEBHOOK_URL, its own channel.",
    )
    email: list[str] | None = Field(
        default=None,
        description="This pipeline's e-mail addresses (the seed's `ml-team@company.com`). Default:"
        " ML_PLATFORM_SMTP_RECIPIENTS. The SMTP server and its login stay in the environment.",
    )
    on_failure: RouteSpec | None = Field(
        default=None,
        description="Failed runs: `[webhook]`, `[email]`, both, `[]`, or a mapping of recipients."
        " Default: every configured channel.",
    )
    on_deploy: RouteSpec | None = Field(
        default=None,
        description="deployed_model materializations (promoted or kept): channels or recipients."
        " Default: every configured channel.",
    )
    on_decay: RouteSpec | None = Field(
        default=None,
        description="Retraining started because the live metrics decayed (<name>_decay_sensor), with the numbers:"
        " channels or recipients. Default: every configured channel.",
    )
    on_promote: RouteSpec | None = Field(
        default=None,
        description="The rollout promoted a candidate (by the rollout sensor, or `ml-platform rollout promote`), with"
        " the evidence: channels or recipients. Default: every configured channel.",
    )
    on_abort: RouteSpec | None = Field(
        default=None,
        description="The rollout aborted a candidate (on its evidence, a guardrail, max_days, or by hand), or a newer"
        " candidate replaced it: channels or recipients. Default: every configured channel.",
    )
    on_rollback: RouteSpec | None = Field(
        default=None,
        description="A promotion was rolled back on live evidence (`rollout.rollback`): channels or recipients."
        " Default: every configured channel.",
    )
    on_success: RouteSpec = Field(
        default_factory=lambda: RouteSpec(channels=[]),
        description="Finished runs of the pipeline's jobs, saying what came of the model:"
        " deployed, kept, or held back by the gate (which metric, which threshold). Default: `[]` (none).",
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: list[str] | None) -> list[str] | None:
        return _addresses(value)

    def route(self, event: str) -> Route:
        """Where the message of ``event`` (``on_failure``, ``on_deploy``, ``on_decay``, ``on_promote``,
        ``on_abort``, ``on_rollback``, ``on_success``) goes."""
        chosen = getattr(self, event)
        webhook, email = self.webhook or WebhookSpec(), self.email
        if chosen is None:
            return Route(None, webhook.url_env, webhook.channel, tuple(email) if email is not None else None)
        channels = chosen.chosen()
        if chosen.webhook is not None:
            webhook = WebhookSpec(
                url_env=chosen.webhook.url_env or webhook.url_env, channel=chosen.webhook.channel or webhook.channel
            )
        email = chosen.email if chosen.email is not None else email
        return Route(channels, webhook.url_env, webhook.channel, tuple(email) if email is not None else None)


class MlflowSpec(_Strict):
    """MLflow experiment tracking, optional (the client: `pip install 'ml_platform[mlflow]'`): each
    trained model (each variant too) becomes an MLflow run with its params, metrics, the gate's verdict,
    the signature and the model. A tracker that is down is retried, then warned about; the run goes on."""

    tracking_uri: str | None = Field(
        default=None,
        description="The tracking server, e.g. `http://127.0.0.1:5000`. Default: MLFLOW_TRACKING_URI; neither"
        " set: no tracking.",
    )
    experiment: str | None = Field(default=None, description="The MLflow experiment. Default: the pipeline's name.")
    log_model: bool = Field(
        default=True,
        description="Store each fitted model in MLflow too (`mlflow.sklearn`, a logged model linked to the run);"
        " the model store stays what production loads.",
    )

    @field_validator("tracking_uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(https?|file|sqlite|postgresql|mysql|databricks)(:|$)", value):
            raise ValueError(f"{value!r} is not an MLflow tracking URI (e.g. http://127.0.0.1:5000)")
        return value


class PipelineSpec(_Strict):
    name: str = Field(
        description="Lower-case letters, digits and `_`; unique. Prefixes the asset keys (`churn/raw_data`) and"
        " names the group, jobs, schedule, sensors and ops (`churn__trained_model`).",
    )
    description: str = Field(default="", description="For people reading the file.")
    task: Literal["classification", "regression"] = Field(
        default="classification",
        description="`classification` or `regression`: which estimators, checks, metrics and gates apply.",
    )
    landing: str | None = Field(
        default=None,
        description="Where the day files land: relative to the landing root (ML_PLATFORM_LANDING_DIR,"
        " or the bucket's landing/ prefix in prod), '.' for the root itself, an absolute folder, or"
        " s3://bucket/prefix (prod). Default: the pipeline's name under the landing root.",
    )
    target: str | None = Field(
        default=None, description="The label column. Default: ML_PLATFORM_TARGET_COLUMN (`target`)."
    )
    version: str | None = Field(
        default=None,
        description='The pipeline\'s version (`"1.4.0"`): the `code_version` of its assets, so Dagster shows them'
        " stale when it changes, and recorded with each model version (`pipeline_version`). Raise it when the"
        " pipeline's own code (a feature function) changes.",
    )
    features: FeaturesSpec = Field(
        default_factory=FeaturesSpec,
        description="The feature columns (a list: `features: [a, b]`), and optionally your own feature step"
        " (`features: {columns: [...], transform: module:function}`).",
    )
    schema_policy: SchemaSpec = Field(
        default_factory=SchemaSpec,
        alias="schema",
        description="What may change about the pipeline's columns (docs/assets-and-checks.md, the input contract).",
    )
    quality: QualitySpec = Field(
        default_factory=QualitySpec,
        description="The data contract of each day: null shares, ranges, allowed values, ids, rows, labels,"
        " duplicates (docs/assets-and-checks.md, the data contract).",
    )
    window_days: int | None = Field(
        default=None,
        ge=1,
        le=366,
        description="Days of raw_data in one training set, 1-366. Default: ML_PLATFORM_WINDOW_DAYS (7).",
    )
    partitions: PartitionsSpec = Field(default_factory=PartitionsSpec, description="The daily partitions.")
    model_name: str | None = Field(
        default=None,
        description="The model's name in the model store; unique across pipelines. Default: the pipeline's name.",
    )
    model: ModelSpec = Field(default_factory=ModelSpec, description="The estimator and its parameters.")
    split: SplitSpec = Field(default_factory=SplitSpec, description="The train/test split.")
    gate: GateSpec = Field(
        default_factory=GateSpec,
        description="Thresholds on the test split, as many as wanted (`min_<metric>` for scores, `max_<metric>` for"
        " errors), each its own blocking check `<metric>_above_threshold` / `<metric>_below_threshold`"
        " (per class: `recall_of_<class>_above_threshold`), and `max_regression` against production. The first"
        " threshold's metric ranks variants.",
    )
    schedule: ScheduleSpec = Field(
        default_factory=ScheduleSpec, description="The daily schedule <name>_daily_training."
    )
    stages: StagesSpec = Field(default_factory=StagesSpec, description="Timeout, retries and resources per stage.")
    notifications: NotificationsSpec = Field(
        default_factory=NotificationsSpec,
        description="Where this pipeline's messages go: which channels per event, and its own webhook, Slack channel"
        " and addresses; the servers and secrets stay in the environment (ML_PLATFORM_WEBHOOK_URL,"
        " ML_PLATFORM_SMTP_*).",
    )
    mlflow: MlflowSpec = Field(default_factory=MlflowSpec, description="MLflow experiment tracking (optional).")
    decision: DecisionSpec | None = Field(
        default=None,
        description="Binary classification: the decision threshold on the positive class's probability,"
        " `{threshold: 0.3}`, `{maximize: f1}`, `{min_precision: 0.9}` or `{min_recall: 0.8}`; stored with the"
        " model and used wherever it predicts (docs/assets-and-checks.md, the decision threshold).",
    )
    evaluation: EvaluationSpec = Field(
        default_factory=EvaluationSpec,
        description="Slices of the test split the model is scored on (docs/assets-and-checks.md, slices).",
    )
    drift: DriftSpec = Field(
        default_factory=DriftSpec,
        description="Feature drift of each new day against the data the production model was trained on.",
    )
    scoring: ScoringSpec | None = Field(
        default=None, description="Batch scoring of unlabelled days: scoring_data[day] and predictions[day]."
    )
    serving: ServingSpec = Field(
        default_factory=ServingSpec, description="What `ml-platform serve` does for this pipeline's model."
    )
    monitoring: MonitoringSpec | None = Field(
        default=None,
        description="served[day]: the day's prediction log as an asset (requests, versions, latency, skew against the"
        " training data), materialized by <name>_served_sensor once the day has ended (`monitoring: {}`).",
    )
    feedback: FeedbackSpec | None = Field(
        default=None,
        description="Late outcomes of served predictions, `{landing: churn_outcomes, id: request_id}`: outcomes[day]"
        " ingests each day's file and live_metrics[day] scores the day's predictions on them (needs"
        " `monitoring`).",
    )
    rollout: RolloutSpec = Field(
        default_factory=RolloutSpec,
        description="How a gated version reaches production: `direct` (at once), `shadow` or `canary` (as a candidate"
        " that earns it on live traffic), the rules that promote, abort and roll back (docs/rollout.md).",
    )
    demo_data: Literal["breast_cancer", "diabetes"] | None = Field(
        default=None, description="What `ml-platform seed-demo` writes into this pipeline's landing."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"{value!r} must be lower-case letters, digits and '_', starting with a letter"
                " (it prefixes asset keys and names the job)"
            )
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value)
        if isinstance(value, bool) or not _VERSION.match(text):
            raise ValueError(f"{value!r} is not a version: letters, digits, '.', '_', '+', '-' (e.g. 1.4.0)")
        return text

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        if value is not None and not _MODEL_NAME.match(value):
            raise ValueError(f"{value!r} must be letters, digits, '_', '-' or '.', starting with a letter or digit")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        estimator = self._estimator()
        self.model.params = self._validated_params(estimator, self.model.params, "model.params")
        self._check_variants(estimator)
        self._check_gate()
        if self.decision is not None and self.task != "classification":
            raise _FieldError("decision", "a decision threshold is for binary classification, the task is regression")
        self._check_feature_list()
        self._check_quality()
        if self.feedback is not None and self.monitoring is None:
            raise _FieldError(
                "feedback", "needs `monitoring` (`monitoring: {}`): the outcomes are joined to served[day]"
            )
        self._check_rollout()
        if self.demo_data is not None:
            wanted = "classification" if self.demo_data == "breast_cancer" else "regression"
            if wanted != self.task:
                raise _FieldError("demo_data", f"{self.demo_data} is {wanted} data, the task is {self.task}")
        return self

    def _check_rollout(self) -> None:
        """A candidate earns production on the prediction log (served[day]): it needs `monitoring`; a
        rollback compares live metrics: it needs `feedback`; a routing column is a feature column."""
        rollout = self.rollout
        if rollout.uses_candidate and self.monitoring is None:
            raise _FieldError(
                "rollout.strategy",
                f"{rollout.strategy} needs `monitoring` (`monitoring: {{}}`): its evidence is the prediction log",
            )
        if rollout.rollback is not None and self.feedback is None:
            raise _FieldError("rollout.rollback", "needs `feedback`: a rollback compares live metrics on outcomes")
        if rollout.route_by is not None and rollout.strategy != "canary":
            raise _FieldError("rollout.route_by", f"routes canary requests; the strategy is {rollout.strategy}")
        if rollout.route_by is not None and self.features.columns:
            names = [f.name for f in self.features.columns]
            if rollout.route_by not in names:
                raise _FieldError(
                    "rollout.route_by", f"{rollout.route_by!r} is not a feature column ({', '.join(names)})"
                )

    def _estimator(self) -> Any:
        """The estimator ``model.estimator`` names (an import path: its syntax checked only)."""
        estimator = estimator_of(self.task, self.model.estimator)
        if isinstance(estimator, ImportedEstimator):
            try:
                check_syntax(estimator.import_path)
            except UserCodeError as exc:
                raise _FieldError("model.estimator", str(exc)) from None
        if estimator is None:
            raise _FieldError(
                "model.estimator",
                f"unknown estimator {self.model.estimator!r} for {self.task}; choose one of"
                f" {', '.join(estimator_names(self.task))}, or give an import path (module:Class)",
            )
        return estimator

    def _check_feature_list(self) -> None:
        if not self.features.columns:
            return
        names = [f.name for f in self.features.columns]
        if self.target in names:
            raise _FieldError("features", f"lists the target column {self.target!r}")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise _FieldError("features", f"lists {', '.join(map(repr, duplicates))} more than once")

    def _check_gate(self) -> None:
        """Each threshold is one of the task's metrics; max_regression names gated metrics only."""
        metrics = GATE_METRICS[self.task]
        allowed = [f"{'min' if up else 'max'}_{m}" for m, up in metrics.items()]
        given = self.gate.given()
        for key in given:
            if key not in allowed:
                raise _FieldError("gate." + key, f"not a {self.task} gate; use one of {', '.join(allowed)}")
        seen: dict[str, str] = {}
        for threshold in self.gate_thresholds:
            other = seen.setdefault(threshold.check_name, threshold.name)
            if other != threshold.name:
                raise _FieldError(
                    "gate." + threshold.key,
                    f"{other!r} and {threshold.name!r} would both be the check {threshold.check_name}: rename a class",
                )
        self._check_slices()
        if isinstance(self.gate.max_regression, dict):
            gated = {t.metric for t in self.gate.thresholds(self.task)}
            for metric in self.gate.max_regression:
                if metric not in gated:
                    raise _FieldError(
                        f"gate.max_regression.{metric}",
                        f"not a gated metric; the gate has {', '.join(sorted(gated))}",
                    )

    def _check_slices(self) -> None:
        """Slice columns are feature columns (when declared), never the target; gate.slices needs some."""
        slices = self.evaluation.slices
        if self.gate.slices is not None and not slices:
            raise _FieldError("gate.slices", "needs the columns to slice by: evaluation: {slices: [region, ...]}")
        if self.target in slices:
            raise _FieldError("evaluation.slices", f"lists the target column {self.target!r}")
        if self.features.columns:
            names = [f.name for f in self.features.columns]
            unknown = [c for c in slices if c not in names]
            if unknown:
                raise _FieldError(
                    "evaluation.slices",
                    f"{', '.join(map(repr, unknown))} not among the features ({', '.join(names)}):"
                    " the test split holds the feature columns only",
                )

    def _check_quality(self) -> None:
        """The contract's min / max name columns that may hold numbers (the target: _with_defaults)."""
        declared = {f.name: f.kind for f in self.features.columns or []}
        for column, rules in self.quality.columns.items():
            kind = declared.get(column)
            if kind in ("categorical", "boolean", "datetime") and (rules.min is not None or rules.max is not None):
                raise _FieldError(f"quality.columns.{column}", f"min / max are for numbers; features declare it {kind}")
        return None

    def _validated_params(self, estimator, params: dict[str, Any], where: str) -> dict[str, Any]:
        """``params`` as the estimator takes them; a bad one names ``where.<param>``. A team's own
        estimator takes them as given: ml_platform.loading builds it with them, once the file is valid."""
        if isinstance(estimator, ImportedEstimator):
            return dict(params)
        try:
            return estimator.validate(params)
        except UserCodeError as exc:
            # The module, the name or what it gives is the estimator's fault; a refused call, the params'.
            raise _FieldError(where if exc.about_params else "model.estimator", str(exc)) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            raise _FieldError(
                where + "." + ".".join(map(str, first["loc"])),
                _message(first)
                + f" (parameters of {self.model.estimator}: "
                + ", ".join(estimator.params.model_fields)
                + ")",
            ) from None

    def _check_variants(self, estimator) -> None:
        seen: dict[str, int] = {}
        for index, overrides in enumerate(self.model.variants):
            where = f"model.variants[{index}]"
            if not overrides:
                raise _FieldError(where, "empty: a variant sets at least one parameter")
            validated = self._validated_params(estimator, {**self.model.params, **overrides}, where)
            # As the estimator takes them ("5" -> 5), so the name and the params agree.
            overrides = self.model.variants[index] = {k: validated[k] for k in overrides}
            name = variant_name(overrides)
            if not _VARIANT_NAME.match(name):
                raise _FieldError(
                    where, f"{name!r} cannot name a partition: values of letters, digits, '_', '.', '-' only"
                )
            if name in seen:
                raise _FieldError(where, f"duplicate of model.variants[{seen[name]}] ({name})")
            seen[name] = index

    # -- what the factory reads (defaults resolved by parse_pipelines) -------------------------
    @property
    def gate_thresholds(self) -> list[GateThreshold]:
        """The gate's thresholds, each its own blocking check (the task's default when none is given)."""
        return self.gate.thresholds(self.task)

    @property
    def gated_classes(self) -> list[tuple[str, str]]:
        """The (metric, class) values the gate judges: what every comparison keeps beside the scores."""
        return [(t.metric, t.of_class) for t in self.gate_thresholds if t.of_class is not None]

    @property
    def gate_metric(self) -> str:
        """The gate's primary metric: the first threshold on a whole-split value (variants are ranked
        by it, versions compared by it); for per-class thresholds alone, the macro average of their
        metric (every class weighs the same, as each class's own threshold does)."""
        thresholds = self.gate_thresholds
        overall = [t.metric for t in thresholds if t.of_class is None]
        return overall[0] if overall else f"{thresholds[0].metric}_macro"

    @property
    def gate_higher_is_better(self) -> bool:
        """Whether a higher value of ``gate_metric`` is better (a score) or worse (an error)."""
        metric = self.gate_metric
        gate = next((t for t in self.gate_thresholds if t.metric == metric and t.of_class is None), None)
        return gate.higher_is_better if gate else GATE_METRICS[self.task].get(metric, True)

    def stage(self, name: str) -> StageSpec:
        return getattr(self.stages, name)


class _FieldError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")


class PipelinesFile(_Strict):
    pipelines: list[PipelineSpec] = Field(min_length=1)


def _message(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def _at(raw: Any, parts: list) -> Any:
    """What the YAML holds at ``parts`` (None where it holds nothing there)."""
    for part in parts:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _where(loc: tuple, raw: Any) -> str:
    """('pipelines', 0, 'model', 'estimator') -> "pipelines[0] (churn): model.estimator"."""
    if len(loc) >= 2 and loc[0] == "pipelines" and isinstance(loc[1], int):
        entry = f"pipelines[{loc[1]}]"
        try:
            name = raw["pipelines"][loc[1]].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            name = None
        if name:
            entry += f" ({name})"
        parts = list(loc[2:])
        try:
            short_features = isinstance(raw["pipelines"][loc[1]].get("features"), list)
        except (KeyError, IndexError, TypeError, AttributeError):
            short_features = False
        if parts[:2] == ["features", "columns"] and short_features:
            del parts[1]  # written `features: [a, b]`: name the list's item as written
        if parts and parts[-1] == "value" and not isinstance(_at(raw["pipelines"][loc[1]], parts[:-1]), dict):
            parts.pop()  # a rule written plainly (`max: 5000`): name the rule as written
        rest = ".".join(str(p) for p in parts)
        return f"{entry}: {rest}" if rest else entry
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_pipelines(text: str, source: str, settings: Settings) -> list[PipelineSpec]:
    """Validate the YAML text; ConfigError names the file, the entry and the field."""
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}:{where} is not valid YAML: {problem}") from None
    if not isinstance(raw, dict) or "pipelines" not in raw:
        raise ConfigError(f"{source}: expected a mapping with a 'pipelines:' list")
    try:
        specs = PipelinesFile.model_validate(raw).pipelines
    except ValidationError as exc:
        problems = [f"{_where(tuple(e['loc']), raw)}: {_message(e)}" for e in exc.errors()]
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None
    _check_unique(specs, source)
    specs = [_with_defaults(spec, settings, source, index) for index, spec in enumerate(specs)]
    for spec in specs:
        _check_landing(spec.name, spec.landing, "landing", settings, source)
        if spec.scoring is not None:
            _check_landing(spec.name, spec.scoring.landing, "scoring.landing", settings, source)
    return specs


def _check_landing(name: str, landing: str, field: str, settings: Settings, source: str) -> None:
    """A pipeline's landing (or scoring landing) must be readable in this environment."""
    where = f"{source}: pipeline {name!r}: {field}"
    if landing.startswith("s3://") and settings.env != "prod":
        raise ConfigError(f"{where}: {landing!r} is on S3; S3 needs ML_PLATFORM_ENV=prod")
    if landing.startswith("/") and settings.env == "prod":
        raise ConfigError(f"{where}: {landing!r} is a local folder; ML_PLATFORM_ENV=prod reads from S3")
    if ".." in landing.split("/"):
        raise ConfigError(f"{where}: {landing!r} must not climb out of the landing root with '..'")


def _check_unique(specs: list[PipelineSpec], source: str) -> None:
    seen: dict[str, int] = {}
    models: dict[str, str] = {}
    for index, spec in enumerate(specs):
        if spec.name in seen:
            raise ConfigError(
                f"{source}: pipelines[{index}] ({spec.name}): name: duplicate of pipelines[{seen[spec.name]}]"
            )
        seen[spec.name] = index
        model = spec.model_name or spec.name
        if model in models:
            raise ConfigError(
                f"{source}: pipelines[{index}] ({spec.name}): model_name: {model!r} is already the model of"
                f" pipeline {models[model]!r} (two pipelines would promote over each other)"
            )
        models[model] = spec.name


def _with_defaults(spec: PipelineSpec, settings: Settings, source: str, index: int) -> PipelineSpec:
    target = spec.target or settings.target_column
    columns = spec.features.columns
    if columns is None and settings.feature_columns and target in settings.feature_columns:
        raise ConfigError(
            f"{source}: pipelines[{index}] ({spec.name}): target: {target!r} is one of the"
            " feature columns of ML_PLATFORM_FEATURE_COLUMNS"
        )
    if columns and target in [f.name for f in columns]:
        raise ConfigError(f"{source}: pipelines[{index}] ({spec.name}): features: lists the target column {target!r}")
    rules = spec.quality.columns.get(target)
    if rules is not None and (rules.max_null_ratio is not None or rules.unique is not None):
        field = "max_null_ratio" if rules.max_null_ratio is not None else "unique"
        why = (
            "the label's empty share is quality.target_missing.max_ratio"
            if field == "max_null_ratio"
            else "a label is not an id"
        )
        raise ConfigError(f"{source}: pipelines[{index}] ({spec.name}): quality.columns.{target}.{field}: {why}")
    return spec.model_copy(
        update={
            "target": target,
            "features": spec.features.model_copy(
                update={
                    "columns": columns
                    if columns is not None
                    else (
                        [FeatureColumn(name=c) for c in settings.feature_columns] if settings.feature_columns else None
                    )
                }
            ),
            "window_days": spec.window_days or settings.window_days,
            "model_name": spec.model_name or spec.name,
            "landing": spec.landing if spec.landing is not None else spec.name,
            "schedule": spec.schedule.model_copy(update={"timezone": spec.schedule.timezone or settings.timezone}),
            "partitions": spec.partitions.model_copy(
                update={"start": spec.partitions.start or settings.partitions_start}
            ),
        }
    )


__all__ = [
    "CHANNELS",
    "DEMO_DATASETS",
    "STAGES",
    "TASKS",
    "FeatureColumn",
    "FeaturesSpec",
    "MlflowSpec",
    "GateSpec",
    "ModelSpec",
    "PartitionsSpec",
    "PipelineSpec",
    "SchemaSpec",
    "ScoringSpec",
    "ResourcesSpec",
    "ScheduleSpec",
    "SplitSpec",
    "StageSpec",
    "parse_pipelines",
]
