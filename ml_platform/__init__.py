"""ml_platform: the ML training pipeline as Dagster software-defined assets."""

from ml_platform.serving import load_production_model

__all__ = ["defs", "load_production_model"]


def __getattr__(name: str):
    # `defs` is built on first use so that loading a model does not build the definitions.
    if name == "defs":
        from ml_platform.definitions import defs

        return defs
    raise AttributeError(name)
