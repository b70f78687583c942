"""`ml-platform`, a module per group of commands: ``demo`` (seed-demo, demo-range, docs), ``store``
(models, production, predict, rollback), ``contract``, ``monitor``, ``serve``; ``common`` is what
they share, ``main`` the parser and the entry point (``ml_platform.cli.main:main``)."""
