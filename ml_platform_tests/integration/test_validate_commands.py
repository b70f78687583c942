"""A mistake in pipelines.yaml fails `dagster definitions validate` and `dg check defs`, naming the
field."""

import os
import subprocess
from pathlib import Path

import pytest

from ml_platform_tests.support.constants import BIN, ROOT


def _validate(command: list[str], pipelines_file: Path, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_PLATFORM_")}
    env["ML_PLATFORM_PIPELINES"] = str(pipelines_file)
    home.mkdir(exist_ok=True)  # its own instance: a fresh clone has no .dagster_home yet
    env["DAGSTER_HOME"] = str(home)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("cli", ["dagster", "dg"])
def test_definitions_validate_fails_on_a_bad_file_naming_the_field(tmp_path, cli):
    bad = tmp_path / "pipelines.yaml"
    bad.write_text("pipelines:\n  - name: churn\n    model: {estimator: xgboost}\n")
    command = (
        [str(BIN / "dagster"), "definitions", "validate", "-m", "ml_platform.definitions"]
        if cli == "dagster"
        else [str(BIN / "dg"), "check", "defs"]
    )
    result = _validate(command, bad, tmp_path / "dagster_home")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"{bad}: pipelines[0] (churn): model.estimator: unknown estimator 'xgboost'" in output, output[-3000:]
    # ... and passes on the repository's file.
    good = _validate(command, ROOT / "pipelines.yaml", tmp_path / "dagster_home")
    assert good.returncode == 0, (good.stdout + good.stderr)[-3000:]
