"""A team's own code in a project folder of its own: a LightGBM estimator and a feature function named
by import path in pipelines.yaml, trained, gated, deployed and predicted through the CLIs, and the
clear error when a model's module is missing or changed where it is loaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from ml_platform.demo import demo_days
from ml_platform_tests.support.constants import BIN, END_DAY
from ml_platform_tests.support.platform import project_env

PIPELINES = """
pipelines:
  - name: shop
    target: y
    landing: shop
    model:
      estimator: lightgbm:LGBMClassifier
      params: {n_estimators: 40, learning_rate: 0.1, num_leaves: 15, verbose: -1, random_state: 42}
    features:
      transform: features:add_ratios
    gate: {min_accuracy: 0.85}
    split: {test_size: 0.2, random_state: 42, stratify: false}
    demo_data: breast_cancer
"""

FEATURES = '''
"""The team's feature function: raw rows in, rows with the ratios its models use out."""


def add_ratios(frame):
    out = frame.copy()
    out["radius_per_texture"] = out["mean radius"] / out["mean texture"]
    out["area_per_perimeter"] = out["mean area"] / out["mean perimeter"]
    return out
'''


def run(args: list[str], env: dict, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == expect, (args, proc.stdout[-3000:], proc.stderr[-4000:])
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A project folder with pipelines.yaml and features.py, its model trained and deployed through
    `dagster asset materialize` (the modules are found beside pipelines.yaml, from any cwd)."""
    root = tmp_path_factory.mktemp("team")
    folder = root / "project"
    folder.mkdir()
    (folder / "pipelines.yaml").write_text(PIPELINES)
    (folder / "features.py").write_text(textwrap.dedent(FEATURES))
    env = {**project_env(root), "ML_PLATFORM_PIPELINES": str(folder / "pipelines.yaml")}
    days = demo_days(END_DAY, 7)
    run([str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY], env, root)
    materialize = [str(BIN / "dagster"), "asset", "materialize", "-m", "ml_platform.definitions"]
    run([*materialize, "--select", "key:shop/raw_data", "--partition-range", f"{days[0]}...{days[-1]}"], env, root)
    run([*materialize, "--select", "key:shop/training_data+", "--partition", END_DAY], env, root)
    return root, env


def test_a_lightgbm_model_with_a_feature_function_is_trained_gated_and_deployed(project):
    root, env = project
    shown = json.loads(run([str(BIN / "ml-platform"), "production", "--json", "--model", "shop"], env, root).stdout)
    assert shown["estimator"] == "lightgbm:LGBMClassifier"
    assert shown["feature_transform"] == "features:add_ratios"
    assert shown["metrics"]["accuracy"] >= 0.85
    assert shown["params"]["num_leaves"] == 15
    # What the model needs to load: LightGBM at its version, and the project's features.py by content.
    by_module = {r["module"]: r for r in shown["requirements"]}
    import lightgbm

    assert by_module["lightgbm.sklearn"]["distribution"] == "lightgbm"
    assert by_module["lightgbm.sklearn"]["version"] == lightgbm.__version__
    assert by_module["features"]["file"] == "features.py"
    assert by_module["features"]["sha256"].startswith("sha256:")
    # The signature is the raw input, before the feature function.
    names = [f["name"] for f in shown["signature"]["features"]]
    assert "mean radius" in names and "radius_per_texture" not in names


def test_predict_applies_the_feature_function_inside_the_model(project):
    root, env = project
    rows = pd.read_parquet(root / "landing" / "shop" / f"{END_DAY}.parquet").drop(columns=["y"])
    (root / "rows.csv").write_text(rows.head(20).to_csv(index=False))
    run(
        [
            str(BIN / "ml-platform"),
            "predict",
            "--model",
            "shop",
            "--input",
            str(root / "rows.csv"),
            "--output",
            str(root / "out.csv"),
        ],
        env,
        root,
    )
    predicted = pd.read_csv(root / "out.csv")
    assert len(predicted) == 20 and set(predicted["prediction"]) <= {0, 1}

    # The same answers as the saved model itself, which computes the ratios from the raw columns.
    from ml_platform.backends.local import LocalModelStore
    from ml_platform.paths import make_importable

    make_importable(root / "project")
    model, _ = LocalModelStore(root=str(root / "model_store")).load("shop")
    assert list(model.named_steps) == ["features", "preprocess", "model"]
    assert list(model.predict(rows.head(20))) == list(predicted["prediction"])


def test_a_model_whose_module_is_missing_fails_with_one_line_naming_it(project):
    root, env = project
    features = root / "project" / "features.py"
    moved = root / "features.py.away"
    shutil.move(features, moved)
    try:
        proc = run(
            [str(BIN / "ml-platform"), "predict", "--model", "shop", "--input", str(root / "rows.csv")],
            env,
            root,
            expect=2,
        )
    finally:
        shutil.move(moved, features)
    assert "needs module 'features', which cannot be imported here" in proc.stderr
    assert "features.py beside pipelines.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr and "ModuleNotFoundError" not in proc.stderr


def test_a_model_whose_module_changed_fails_naming_the_file(project):
    root, env = project
    features = root / "project" / "features.py"
    original = features.read_text()
    features.write_text(original.replace('out["mean area"] / out["mean perimeter"]', 'out["mean area"]'))
    try:
        proc = run(
            [str(BIN / "ml-platform"), "predict", "--model", "shop", "--input", str(root / "rows.csv")],
            env,
            root,
            expect=2,
        )
    finally:
        features.write_text(original)
    assert "was trained with another features.py (module 'features'" in proc.stderr
    assert "Traceback" not in proc.stderr
