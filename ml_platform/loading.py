"""Loading the pipelines file: read (ml_platform.paths says which), validated and defaulted
(ml_platform.spec: the schema, and an import path by its syntax alone), then the team's code it
names imported and called with its params, so that a missing module, a name that is not there or a
refused parameter fails the code location's load naming the file, the entry and the field, as every
other mistake does (``dagster definitions validate``, ``dg check defs``).

The steps are apart so that reading pipelines.yaml's schema imports nothing of the team's and
nothing of scikit-learn: spec.py sits below estimators.py, user_code.py and ml.py; this module
above all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml_platform.errors import ConfigError, UserCodeError
from ml_platform.estimators import ImportedEstimator, estimator_of
from ml_platform.metrics import PROBABILITY_METRICS
from ml_platform.ml import feature_step
from ml_platform.paths import PIPELINES_ENV, make_importable, pipelines_path
from ml_platform.settings import Settings
from ml_platform.spec import PipelineSpec, parse_pipelines


def load_pipelines(settings: Settings, path: Path | None = None) -> list[PipelineSpec]:
    """Read and validate the pipelines file (``paths.pipelines_path``), and import the team's code
    it names (modules beside it import too)."""
    path = path or pipelines_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"pipelines file {path} does not exist (set {PIPELINES_ENV} to a pipelines.yaml)") from None
    except OSError as exc:
        raise ConfigError(f"pipelines file {path} cannot be read: {exc}") from None
    return pipelines_from_text(text, str(path), settings, code_dir=path.parent)


def pipelines_from_text(text: str, source: str, settings: Settings, code_dir: Path | None = None) -> list[PipelineSpec]:
    """``parse_pipelines``, then the team's code of every entry imported and called with its
    params; ``code_dir``, the folder its own modules live in, is made importable first."""
    if code_dir is not None:
        make_importable(code_dir)
    specs = parse_pipelines(text, source, settings)
    for index, spec in enumerate(specs):
        import_team_code(spec, f"{source}: pipelines[{index}] ({spec.name})")
    return specs


def import_team_code(spec: PipelineSpec, where: str) -> None:
    """Import an entry's own estimator and build it with its params (each variant's too), and its
    feature step; ConfigError names ``where`` and the field: ``model.estimator`` for the module or
    what it gives, ``model.params`` / ``model.variants[i]`` for a call the params make fail,
    ``features.transform``."""
    estimator = estimator_of(spec.task, spec.model.estimator)
    if isinstance(estimator, ImportedEstimator):
        tries = [("model.params", spec.model.params)]
        tries += [(f"model.variants[{i}]", {**spec.model.params, **v}) for i, v in enumerate(spec.model.variants)]
        for field, params in tries:
            try:
                built = estimator.make(params)
            except UserCodeError as exc:
                raise ConfigError(f"{where}: {field if exc.about_params else 'model.estimator'}: {exc}") from None
            _check_probabilities(spec, built, field, where)
    if spec.features.transform:
        try:
            feature_step(spec.features.transform)
        except UserCodeError as exc:
            raise ConfigError(f"{where}: features.transform: {exc}") from None


def _check_probabilities(spec: PipelineSpec, estimator: Any, field: str, where: str) -> None:
    """A gate on a metric of probabilities (roc_auc, log_loss ...) and a decision threshold need an
    estimator with predict_proba: refused at load rather than failed by every run."""
    if spec.task != "classification" or hasattr(estimator, "predict_proba"):
        return
    made = f" made with {field}" if field != "model.params" else ""
    if spec.decision is not None:
        raise ConfigError(
            f"{where}: decision: a decision threshold is on the probability of the positive class;"
            f" {type(estimator).__name__}{made} has no predict_proba"
        )
    for threshold in spec.gate_thresholds:
        if threshold.metric in PROBABILITY_METRICS:
            raise ConfigError(
                f"{where}: gate.{threshold.key}: needs predict_proba; {type(estimator).__name__}{made} has none"
                " (gate it on a metric of its predictions, e.g. min_recall, or use an estimator with"
                " predict_proba)"
            )
