"""A pipeline at run time: its spec, the settings and its Dagster partitions, keys and step options.

``PipelineRuntime`` is what every builder (assets, checks, jobs, schedules, sensors) takes: the
pipeline's asset keys (prefixed with its name), op names, partitions (daily, in its time zone, from
``partitions.start``; with variants, day x variant), the retry policy, Kubernetes tags and timeout
of each stage, and its schema (declared, or pinned by the production model).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import dagster as dg

from ml_platform.errors import ModelStoreError
from ml_platform.quality.rules import Contract, rule_names
from ml_platform.quality.schema import Schema
from ml_platform.resources.model_store import ModelVersion
from ml_platform.retries import retry_policy
from ml_platform.settings import Settings
from ml_platform.spec import PipelineSpec
from ml_platform.tracking import MlflowTracker, tracking_uri_from

DATE_DIMENSION = "date"
VARIANT_DIMENSION = "variant"


class PipelineRuntime:
    """One pipeline as the asset builders see it: its spec (complete: ``parse_pipelines`` resolved
    every default), the platform settings, its partitions, and what each stage's steps share."""

    def __init__(self, spec: PipelineSpec, settings: Settings):
        self.spec = spec
        self.settings = settings
        self.partitions = dg.DailyPartitionsDefinition(
            start_date=spec.partitions.start, timezone=spec.schedule.timezone
        )
        # Hyperparameter variants: variant_model is partitioned by day x variant.
        self.variants = spec.model.variant_params()
        self.variant_partitions = (
            dg.MultiPartitionsDefinition(
                {
                    DATE_DIMENSION: self.partitions,
                    VARIANT_DIMENSION: dg.StaticPartitionsDefinition(list(self.variants)),
                }
            )
            if self.variants
            else None
        )

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def class_prefix(self) -> str:
        """The pipeline's name as the start of a class name (``churn_v2`` -> ``ChurnV2``): its run
        config classes are named after it (``ChurnV2TrainingConfig``), so the UI tells them apart."""
        return self.name.title().replace("_", "")

    @property
    def target(self) -> str:
        return self.spec.target

    @property
    def features(self) -> tuple[str, ...] | None:
        """The declared feature columns (pipelines.yaml or ML_PLATFORM_FEATURE_COLUMNS), or None."""
        columns = self.spec.features.columns
        return tuple(f.name for f in columns) if columns else None

    def production_read(self, model_store: Any) -> tuple[ModelVersion | None, str | None]:
        """(the production version of this pipeline's model, None before the first; why it cannot be
        read, or None). The one way a step reads it, once, and passes it to what compares with it
        (schema, drift reference, champion, signature). Unreachable storage raises
        StorageUnavailableError: the step retries (ml_platform.retries)."""
        try:
            return model_store.production(self.model_name), None
        except (ModelStoreError, ValueError, KeyError) as exc:
            return None, f"the production version of {self.model_name} cannot be read ({exc})"

    def production(self, model_store: Any, warn: Callable[[str], None] | None = None) -> ModelVersion | None:
        """``production_read``'s version; one that cannot be read counts as none, with a warning
        through ``warn``, for a step that only needs something to compare with."""
        version, problem = self.production_read(model_store)
        if problem and warn:
            warn(f"{problem}: nothing to compare with")
        return version

    def schema(self, production: ModelVersion | None) -> Schema | None:
        """The columns this pipeline's data must have (the data contract's ``Schema``), given the
        production version (``production``):

        - declared ``features``: those, in that order, with the declared kinds (the rest taken
          from the production model's signature);
        - else the production model's signature: the first model pins the schema; with
          ``schema.evolve`` it is reported against, not enforced;
        - else None (no model yet).
        """
        policy = self.spec.schema_policy
        signature = production.record.fit.signature if production else None
        if self.features:
            kinds = {
                **(signature.kinds if signature else {}),
                **{f.name: f.kind for f in self.spec.features.columns if f.kind},
            }
            return Schema(
                self.features,
                {c: k for c, k in kinds.items() if c in self.features},
                "the features of pipelines.yaml",
                True,
                policy.extra_columns,
            )
        if signature is None:
            return None
        return signature.schema(
            f"production model {self.model_name} {production.version}",
            enforced=not policy.evolve,
            extra_columns=policy.extra_columns,
        )

    def contract(self, max_null_ratio: float | None = None) -> Contract:
        """The data contract of pipelines.yaml (``quality:``); ``max_null_ratio``, a run's config,
        replaces the pipeline-wide null share for that run."""
        return self.spec.quality.contract(max_null_ratio)

    @property
    def raw_data_check_names(self) -> tuple[str, ...]:
        """The blocking raw_data checks of this pipeline, in a stable order."""
        return rule_names(self.task, self.contract())

    @property
    def window_days(self) -> int:
        return self.spec.window_days

    @property
    def model_name(self) -> str:
        return self.spec.model_name

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def timezone(self) -> str:
        return self.spec.schedule.timezone

    def key(self, asset: str) -> dg.AssetKey:
        return dg.AssetKey([self.spec.name, asset])

    def op(self, asset: str) -> str:
        """The step / op name of one of this pipeline's assets (run config ``ops:`` key)."""
        return f"{self.spec.name}__{asset}"

    def retry_policy(self, stage: str) -> dg.RetryPolicy | None:
        """``stages.<stage>.retries``; left out: the storage retries (ML_PLATFORM_STORAGE_RETRIES) for
        ingest, deploy and score, which touch storage, and none for train and evaluate. The backoff
        is ml_platform.retries' (exponential from ML_PLATFORM_RETRY_DELAY_S, with jitter)."""
        retries = self.spec.stage(stage).retries
        if retries is None:
            retries = self.settings.storage_retries if stage in ("ingest", "deploy", "score") else 0
        if retries == 0:
            return None
        return retry_policy(retries, self.settings.retry_delay_s)

    def op_tags(self, stage: str) -> dict[str, Any]:
        """``stages.<stage>.resources`` as the ``dagster-k8s/config`` tag: the step's container
        requests them (memory also as its limit, GPUs as the ``nvidia.com/gpu`` limit) when runs
        execute on Kubernetes."""
        resources = self.spec.stage(stage).resources
        if resources is None or (resources.cpu is None and resources.memory is None and resources.gpu is None):
            return {}
        requests = {k: v for k, v in (("cpu", resources.cpu), ("memory", resources.memory)) if v}
        limits = {"memory": resources.memory} if resources.memory else {}
        if resources.gpu:
            # Kubernetes schedules extended resources by their limit (the request defaults to it).
            limits["nvidia.com/gpu"] = str(resources.gpu)
        container = {
            "resources": {**({"requests": requests} if requests else {}), **({"limits": limits} if limits else {})}
        }
        return {"dagster-k8s/config": {"container_config": container}}

    def variant_key(self, day: str, variant: str) -> dg.MultiPartitionKey:
        """The variant_model partition of one variant on one day (``2026-01-07|max_depth=5``)."""
        return dg.MultiPartitionKey({DATE_DIMENSION: day, VARIANT_DIMENSION: variant})

    def step_options(self, stage: str, partitions_def: dg.PartitionsDefinition | None = None) -> dict[str, Any]:
        """The decorator arguments every step of a stage shares: partitions, retries, k8s tags."""
        return {
            "partitions_def": partitions_def or self.partitions,
            "retry_policy": self.retry_policy(stage),
            "op_tags": self.op_tags(stage),
        }

    def asset_options(
        self, stage: str, owner: str, partitions_def: dg.PartitionsDefinition | None = None
    ) -> dict[str, Any]:
        """step_options plus the pipeline's asset group, the asset's owner and the pipeline's
        ``version`` as the asset's code_version."""
        options = {**self.step_options(stage, partitions_def), "group_name": self.name, "owners": [owner]}
        if self.spec.version:
            options["code_version"] = self.spec.version
        return options

    def timeout_s(self, stage: str) -> float | None:
        return self.spec.stage(stage).timeout_s

    def tracker(self, warn: Callable[[str], None]) -> MlflowTracker | None:
        """The MLflow tracker of this pipeline (``mlflow.tracking_uri``, else MLFLOW_TRACKING_URI, read
        now), or None when neither names one. Its calls never fail a step: they warn through ``warn``."""
        uri = tracking_uri_from(self.spec.mlflow.tracking_uri, os.environ)
        if uri is None:
            return None
        return MlflowTracker(uri, self.spec.mlflow.experiment or self.name, warn)
