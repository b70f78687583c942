"""The pipeline's Prefect 3 variant: its own venv (made once, kept in bench/.prefect-venv; never a
dependency of the project) with the project's versions of the packages that do the work, so that
only the orchestrator differs, and a PREFECT_HOME per project."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from projects import Workspace, clean_env
from scaffold import BENCH, log
from timing import RunFailed

PREFECT_VENV = BENCH / ".prefect-venv"
PREFECT_REQUIREMENT = "prefect>=3,<4"
PREFECT_PINNED = ("pandas", "pyarrow", "numpy", "scikit-learn", "scipy", "joblib")
# Prefect as a user gets it (the temporary local API server), without telemetry and with quiet
# console logs (the flow's logs still go to its API, as by default); PREFECT_HOME is set per project.
PREFECT_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
}


def prefect_python() -> Path:
    """Prefect 3 in its own venv (made once, kept in bench/.prefect-venv; made again if broken or
    if the project's versions of the work's packages changed)."""
    from importlib.metadata import version

    pins = {name: version(name) for name in PREFECT_PINNED}
    python = PREFECT_VENV / "bin" / "python"
    if python.exists() and _venv_fits(python, pins):
        return python
    if PREFECT_VENV.is_symlink() or PREFECT_VENV.is_file():
        PREFECT_VENV.unlink()
    elif PREFECT_VENV.exists():
        shutil.rmtree(PREFECT_VENV)
    log(f"installing {PREFECT_REQUIREMENT} in {PREFECT_VENV} (its own venv; about a minute, once)")
    done = subprocess.run([sys.executable, "-m", "venv", str(PREFECT_VENV)], capture_output=True, text=True)
    if not done.returncode:
        pinned = [f"{name}=={v}" for name, v in pins.items()]
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", PREFECT_REQUIREMENT, *pinned],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if done.returncode:
        raise RunFailed(f"installing {PREFECT_REQUIREMENT} in {PREFECT_VENV} failed:\n{done.stderr[-3000:]}")
    return python


def _venv_fits(python: Path, pins: dict[str, str]) -> bool:
    """Whether the venv's Prefect is 3.x and its work packages are the project's versions."""
    probe = (
        "import json, prefect, pandas, pyarrow, numpy, sklearn, scipy, joblib\n"
        "from importlib.metadata import version\n"
        f"print(json.dumps({{n: version(n) for n in {list(PREFECT_PINNED)!r} + ['prefect']}}))"
    )
    check = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=300)
    try:
        found = json.loads(check.stdout) if check.returncode == 0 else {}
    except ValueError:
        found = {}
    return bool(found) and found["prefect"].startswith("3.") and all(found[n] == v for n, v in pins.items())


def prefect_version(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import prefect; print(prefect.__version__)"], capture_output=True, text=True, timeout=300
    ).stdout.strip()


def prefect_env(ws: Workspace, root: Path, env: dict[str, str], python: Path) -> dict[str, str]:
    """The project's environment with a PREFECT_HOME of its own: a copy of a template in which
    one no-op flow ran once, untimed (its temporary server migrated the SQLite database and
    registered Prefect's block types), as on a machine where Prefect has run before; the
    Dagster template is migrated once the same way."""
    template = ws.root / "template_prefect_home"
    if not template.exists():
        warm_up = "from prefect import flow\n\n@flow\ndef warm_up():\n    pass\n\nwarm_up()\n"
        done = subprocess.run(
            [str(python), "-c", warm_up],
            env={**clean_env(), **PREFECT_SETTINGS, "PREFECT_HOME": str(template)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode:
            output = (done.stdout + done.stderr)[-3000:]
            raise RunFailed(f"a first Prefect flow (untimed, to set up PREFECT_HOME) failed:\n{output}")
    shutil.copytree(template, root / "prefect_home")
    return {**env, **PREFECT_SETTINGS, "PREFECT_HOME": str(root / "prefect_home")}
