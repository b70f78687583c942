"""Where the platform keeps things, chosen once per environment (``ML_PLATFORM_ENV``).

``backends_for(settings)`` returns the landing zone, the model store and the IO managers of the
environment: local folders (``local``, the default: ``backends/local.py``) or one S3 bucket
(``prod``: ``backends/s3.py``, over the whole-object access of ``backends/s3_bucket.py``). The
definitions, the CLI and the server all take their backends from here; the contracts they
implement are in ``ml_platform.resources``.

Layout of the bucket in prod (``ML_PLATFORM_S3_BUCKET``, prefix ``ML_PLATFORM_S3_PREFIX``)::

    <prefix>/landing/...       day files, one folder per pipeline (its ``landing``)
    <prefix>/model_store/...   model versions and production pointers
    <prefix>/assets/...        asset values of the IO managers
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Backends:
    landing_zone: Any
    model_store: Any
    io_manager: Any
    model_io_manager: Any

    def resources(self) -> dict[str, Any]:
        """As Dagster resources, by the keys the assets ask for."""
        return {"landing_zone": self.landing_zone, "model_store": self.model_store,
                "io_manager": self.io_manager, "model_io_manager": self.model_io_manager}


def backends_for(settings) -> Backends:
    """The backends of ML_PLATFORM_ENV. Credentials are never configured here: boto3's standard
    chain reads them (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, or an instance role)."""
    if settings.env == "prod":
        # Imported here: local mode never loads boto3 and dagster-aws (about 0.5 s a process).
        from ml_platform.backends.s3 import s3_backends

        return s3_backends(settings)
    from ml_platform.backends.local import local_backends

    return local_backends(settings)


def model_store_of(settings, store_dir: str | None = None):
    """The model store of the environment, or a local one at ``store_dir`` (``--store-dir`` of the
    CLI and the server), for code outside Dagster."""
    if store_dir:
        from ml_platform.backends.local import LocalModelStore

        return LocalModelStore(root=store_dir)
    return backends_for(settings).model_store
