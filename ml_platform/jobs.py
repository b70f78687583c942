"""Jobs: a pipeline's work for one day. One job, ``<name>_training``, for a plain pipeline; with
``scoring``, one more (``<name>_scoring``); with ``monitoring``, one more (``<name>_monitoring``);
so up to five.

A pipeline with hyperparameter variants has three for training: Dagster runs one partitions definition per run,
and ``variant_model`` is partitioned by day x variant. ``<name>_training`` ingests and
splits, ``<name>_variants`` fits one variant of one day per run (the runs go in parallel), and
``<name>_select_and_deploy`` picks the best variant, evaluates, gates and deploys; the variants
sensor chains them.
"""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ml_platform.runtime import PipelineRuntime

# The retraining part of a pipeline: everything from training_data down.
RETRAIN_ASSET_NAMES = ("training_data", "train_split", "test_split", "trained_model", "model_metrics", "deployed_model")
# What a pipeline with variants does after the variants: choose, evaluate, gate, deploy.
SELECT_ASSET_NAMES = ("trained_model", "model_metrics", "deployed_model")


def job_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_training"


def variants_job_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_variants"


def select_job_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_select_and_deploy"


def scoring_job_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_scoring"


def monitoring_job_name(pipeline: PipelineRuntime) -> str:
    return f"{pipeline.name}_monitoring"


# The batch scoring part of a pipeline (with `scoring` in pipelines.yaml).
SCORING_ASSET_NAMES = ("scoring_data", "predictions")


def monitoring_asset_names(pipeline: PipelineRuntime) -> tuple[str, ...]:
    """The loop back from production: served (with `monitoring`), outcomes and live_metrics (with
    `feedback` too), rollout (with a rollout that live evidence decides)."""
    names = ("served",) + (("outcomes", "live_metrics") if pipeline.spec.feedback is not None else ())
    return names + (("rollout",) if pipeline.spec.rollout.watched else ())


def job_names(pipeline: PipelineRuntime) -> list[str]:
    names = [job_name(pipeline)]
    if pipeline.variants:
        names += [variants_job_name(pipeline), select_job_name(pipeline)]
    if pipeline.spec.scoring is not None:
        names.append(scoring_job_name(pipeline))
    if pipeline.spec.monitoring is not None:
        names.append(monitoring_job_name(pipeline))
    return names


def retrain_keys(pipeline: PipelineRuntime) -> list[dg.AssetKey]:
    """What a retraining run of the pipeline's job materializes (with variants: up to the splits;
    the variants sensor takes it from there)."""
    names = RETRAIN_ASSET_NAMES
    if pipeline.variants:
        names = tuple(n for n in names if n not in SELECT_ASSET_NAMES)
    return [pipeline.key(name) for name in names]


def build_jobs(pipeline: PipelineRuntime) -> list[UnresolvedAssetJobDefinition]:
    """The pipeline's job first; with variants, also the variants job and the select-and-deploy job;
    with scoring, the scoring job, and with monitoring, last, the monitoring job (which the training
    job leaves out)."""
    group = dg.AssetSelection.groups(pipeline.name)
    if pipeline.spec.scoring is not None:
        group = group - dg.AssetSelection.assets(*(pipeline.key(n) for n in SCORING_ASSET_NAMES))
    if pipeline.spec.monitoring is not None:
        group = group - dg.AssetSelection.assets(*(pipeline.key(n) for n in monitoring_asset_names(pipeline)))
    jobs = _training_jobs(pipeline, group)
    if pipeline.spec.scoring is not None:
        jobs.append(
            (
                scoring_job_name(pipeline),
                dg.AssetSelection.assets(*(pipeline.key(n) for n in SCORING_ASSET_NAMES)),
                f"{pipeline.name}: score one day of {pipeline.spec.scoring.landing} with the production model.",
            )
        )
    if pipeline.spec.monitoring is not None:
        jobs.append(
            (
                monitoring_job_name(pipeline),
                dg.AssetSelection.assets(*(pipeline.key(n) for n in monitoring_asset_names(pipeline))),
                f"{pipeline.name}: one day of {pipeline.model_name}'s prediction log into served"
                + ("; outcomes of a day; the live metrics of a day's predictions." if pipeline.spec.feedback else "."),
            )
        )
    return [
        dg.define_asset_job(
            name=name,
            selection=selection,
            description=description,
            # Run monitoring (dagster.yaml) fails a run that exceeds this; training is the long step.
            tags={"dagster/max_runtime": pipeline.settings.max_runtime_s},
        )
        for name, selection, description in jobs
    ]


def _training_jobs(pipeline: PipelineRuntime, group: dg.AssetSelection) -> list[tuple]:
    """(name, selection, description) of the training job; with variants, also the variants job and
    the select-and-deploy job."""
    if not pipeline.variants:
        return [
            (
                job_name(pipeline),
                group,
                f"{pipeline.name}: ingest one day, retrain on the window ending that day, evaluate, gate and deploy.",
            )
        ]
    else:
        variant = dg.AssetSelection.assets(pipeline.key("variant_model"))
        select = dg.AssetSelection.assets(*(pipeline.key(n) for n in SELECT_ASSET_NAMES))
        return [
            (
                job_name(pipeline),
                group - variant - select,
                f"{pipeline.name}: ingest one day and split the window ending that day; the variants sensor"
                f" then runs {variants_job_name(pipeline)} and {select_job_name(pipeline)}.",
            ),
            (
                variants_job_name(pipeline),
                variant,
                f"{pipeline.name}: fit one hyperparameter variant on one day's train split (partition day|variant).",
            ),
            (
                select_job_name(pipeline),
                select,
                f"{pipeline.name}: choose the best variant of the day as the challenger, evaluate, gate and deploy.",
            ),
        ]
