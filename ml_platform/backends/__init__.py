"""Where the platform keeps things, chosen once per environment (``ML_PLATFORM_ENV``).

``environment.backends_for(settings)`` returns the landing zone, the model store and the IO managers
of the environment (a ``base.Backends``): local folders (``local``, the default: ``backends/local.py``)
or one S3 bucket (``prod``: ``backends/s3.py``, over the whole-object access of
``backends/s3_bucket.py``). The definitions, the CLI and the server all take their backends from
there; the contracts they implement are in ``ml_platform.resources``. This package's ``__init__``
imports nothing: a backend module importing ``backends.base`` must not run one that imports it back.

Layout of the bucket in prod (``ML_PLATFORM_S3_BUCKET``, prefix ``ML_PLATFORM_S3_PREFIX``)::

    <prefix>/landing/...       day files, one folder per pipeline (its ``landing``)
    <prefix>/model_store/...   model versions and production pointers
    <prefix>/assets/...        asset values of the IO managers
"""
