"""Where a project's files are, a leaf every layer may use: the pipelines file and the folder of the
team's own code beside it. Imports nothing of ml_platform.

The pipelines file is ``ML_PLATFORM_PIPELINES``, else ``pipelines.yaml`` in the current directory,
else the project's. Its folder is where a team's modules (an estimator, a feature function) live: it
is added to the end of ``sys.path`` when the file is loaded and before a model is loaded, so a
``features.py`` beside pipelines.yaml imports in the code location, its step processes,
``ml-platform predict`` and ``ml-platform serve`` alike.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PIPELINES_ENV = "ML_PLATFORM_PIPELINES"
DEFAULT_PIPELINES_FILE = "pipelines.yaml"


def pipelines_path(environ: dict[str, str] | None = None) -> Path:
    """ML_PLATFORM_PIPELINES, else pipelines.yaml in the current directory, else the project's."""
    environ = os.environ if environ is None else environ
    configured = environ.get(PIPELINES_ENV, "").strip()
    if configured:
        return Path(configured).absolute()
    here = Path(DEFAULT_PIPELINES_FILE).absolute()
    if here.exists():
        return here
    return Path(__file__).resolve().parents[1] / DEFAULT_PIPELINES_FILE


def code_dir(environ: dict[str, str] | None = None) -> Path:
    """The folder of the pipelines file: where a project's own modules live."""
    return pipelines_path(environ).parent


def make_importable(folder: Path) -> None:
    """Put ``folder`` at the end of sys.path (once), so the project's own modules import. At the end:
    a project file named like a standard or installed module (``platform.py``, ``test.py``) must not
    replace that module for everything else the process imports (spawned fit processes included)."""
    text = str(folder)
    if text not in sys.path:
        sys.path.append(text)
