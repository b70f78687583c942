"""What one step of a pipeline's asset works with, handed to its helpers as one value instead of a
list of arguments in varying order: Dagster's context, the pipeline, the model store, and the
model being built (the day it is as of, its variant, whether the run config forces a fit)."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from ml_platform.resources.model_store import ModelStore
from ml_platform.runtime import PipelineRuntime


@dataclass(frozen=True)
class Step:
    context: dg.AssetExecutionContext
    pipeline: PipelineRuntime
    model_store: ModelStore
    as_of: str = ""  # the day of the data (a variant's partition: its date)
    variant: str | None = None  # with model.variants: the one this step fits
    refit: bool = False  # the run config's refit: fit even when a model of the recipe is stored

    @property
    def log(self):
        return self.context.log
