"""ml_platform: the ML training pipeline as Dagster software-defined assets."""

__all__ = ["defs", "load_production_model"]


def __getattr__(name: str):
    # Both are imported on first use: `defs` so that loading a model does not build the
    # definitions, and load_production_model so that `import ml_platform.quality.rules` (a worker
    # process's whole import) does not import Dagster.
    if name == "defs":
        from ml_platform.definitions import defs

        return defs
    if name == "load_production_model":
        from ml_platform.serving import load_production_model

        return load_production_model
    raise AttributeError(name)
