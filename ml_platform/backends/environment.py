"""The backends of ML_PLATFORM_ENV, chosen in one place: local folders (``local``, the default) or one
S3 bucket (``prod``). The definitions, the CLI and the server take theirs from here."""

from __future__ import annotations

from ml_platform.backends.base import Backends


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
