"""When the columns of the landing files change, through the real CLI (`dagster asset materialize`).

One table: for each kind of change (a column added, dropped, renamed, re-kinded, reordered; the
schema narrowed in pipelines.yaml), under each schema policy (the default; `extra_columns: fail`;
`evolve: true`), what ingest (the `schema_matches` check), training (`training_data`) and deploy
(the `signature_matches_production` gate) do, and what the production model's signature is after.
Each case runs on its own copy of one project with a model in production, trained on the 7 demo days.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform.demo import demo_days
from ml_platform.signature import Signature
from ml_platform_tests.support.constants import BIN, DAYS, END_DAY, MODEL_NAME, ROOT
from ml_platform_tests.support.platform import project_env, project_vars

pytestmark = pytest.mark.cli

NEW_DAY = "2026-01-08"
WINDOW = demo_days(NEW_DAY, 7)  # the training window of a model as of NEW_DAY
ADDED, DROPPED, RENAMED, REKINDED = "mean fractal index", "mean texture", "mean radius", "mean smoothness"
# The demo pipeline of pipelines.yaml, with nothing else beside it (a schema block is added per case).
PIPELINE = """
pipelines:
  - name: demo
    task: classification
    landing: .
    model_name: demo_classifier
    model: {estimator: random_forest, params: {n_estimators: 100, max_depth: 10}}
    gate: {min_accuracy: 0.8, max_regression: 0.05}
    demo_data: breast_cancer
"""


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def materialize(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run(env, str(BIN / "dagster"), "asset", "materialize", "-m", "ml_platform.definitions", *args)


def write_pipelines(root: Path, extra: str = "") -> Path:
    path = root / "pipelines.yaml"
    path.write_text(PIPELINE + "".join(f"    {line}\n" for line in extra.splitlines() if line))
    return path


@pytest.fixture(scope="module")
def deployed_project(tmp_path_factory) -> Path:
    """The demo's 7 days ingested and a model in production, all through the CLI (built once)."""
    root = tmp_path_factory.mktemp("schema_project")
    env = {**project_env(root), "ML_PLATFORM_PIPELINES": str(write_pipelines(root))}
    assert run(env, str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY).returncode == 0
    for args in (
        ("--select", "key:demo/raw_data", "--partition-range", f"{DAYS[0]}...{DAYS[-1]}"),
        ("--select", "key:demo/training_data+", "--partition", END_DAY),
    ):
        proc = materialize(env, *args)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def production(root: Path) -> tuple[str, Signature]:
    pointer = json.loads((root / "model_store" / MODEL_NAME / "production.json").read_text())
    metadata = json.loads((root / "model_store" / MODEL_NAME / pointer["version"] / "metadata.json").read_text())
    return pointer["version"], Signature.of_version(metadata)


def landing(root: Path, day: str) -> pd.DataFrame:
    return pd.read_parquet(root / "landing" / f"{day}.parquet")


@dataclass(frozen=True)
class RunOutcome:
    checks: dict[str, tuple[bool, str]]  # check name -> (passed, description)
    materialized: set[str]
    errors: str


def last_run(env: dict[str, str]) -> RunOutcome:
    """What the newest run of the instance did, read from its event log."""
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        run_id = instance.get_runs(limit=1)[0].run_id
        checks, done, errors = {}, set(), []
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                data = event.asset_check_evaluation_data
                checks[data.check_name] = (data.passed, data.description or "")
            elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                done.add(event.asset_key.path[-1])
            elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
                error = event.step_failure_data.error
                while error is not None:
                    errors.append(error.message)
                    error = error.cause
    return RunOutcome(checks, done, "\n".join(errors))


# -- the changes -----------------------------------------------------------------------------------


def added(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{ADDED: frame["mean radius"] / frame["mean perimeter"]})


def dropped(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[DROPPED])


def renamed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={RENAMED: RENAMED.replace(" ", "_")})


def rekinded(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{REKINDED: np.where(frame[REKINDED] > frame[REKINDED].median(), "high", "low")})


def reordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[list(reversed(frame.columns))]


def unchanged(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


@dataclass(frozen=True)
class Case:
    change: Callable[[pd.DataFrame], pd.DataFrame]
    schema: str  # lines added to the pipeline's entry in pipelines.yaml
    ingest: str  # "passes" / "fails", and the words of schema_matches
    ingest_says: str
    training: str  # "trains" / "refuses" / "does not run"
    deploy: str  # "keeps production's signature" / "is blocked" / "changes the signature" / "does not run"
    says: str = ""  # in training's refusal, or in signature_matches_production's description
    days: tuple[str, ...] = (NEW_DAY,)  # the days whose landing files get the change


# pipelines.yaml declares production's features but one (filled in from production's signature).
FEATURES_BUT_TEXTURE = "{features but one}"

CASES = {
    "added (default: ignored)": Case(
        added,
        "",
        "passes",
        f"ignored unexpected column(s) '{ADDED}' (schema.extra_columns: ignore)",
        "trains",
        "keeps production's signature",
        "the same columns and kinds as production",
    ),
    "added, extra_columns: fail": Case(
        added,
        "schema: {extra_columns: fail}",
        "fails",
        f"unexpected column(s) '{ADDED}' (schema.extra_columns: fail)",
        "does not run",
        "does not run",
    ),
    "dropped": Case(dropped, "", "fails", f"missing feature column(s) '{DROPPED}'", "does not run", "does not run"),
    "renamed": Case(
        renamed,
        "",
        "fails",
        f"likely renamed: '{RENAMED}' -> '{RENAMED.replace(' ', '_')}'",
        "does not run",
        "does not run",
    ),
    "re-kinded": Case(
        rekinded,
        "",
        "fails",
        f"column '{REKINDED}' is categorical, the schema says numeric",
        "does not run",
        "does not run",
    ),
    "reordered": Case(
        reordered,
        "",
        "passes",
        "the 30 feature columns of production model",
        "trains",
        "keeps production's signature",
        "the same columns and kinds as production",
    ),
    "added, evolve: true, one day": Case(
        added,
        "schema: {evolve: true}",
        "passes",
        f"differs from production model {MODEL_NAME}",
        "refuses",
        "does not run",
        f"'{ADDED}' is in {NEW_DAY} but not in {WINDOW[0]} … {WINDOW[-2]} (6 days)",
    ),
    "added, evolve: true, the whole window": Case(
        added,
        "schema: {evolve: true}",
        "passes",
        f"unexpected column(s) '{ADDED}'",
        "trains",
        "changes the signature",
        f"columns added: '{ADDED}'; allowed by schema.evolve: true",
        days=tuple(WINDOW),
    ),
    "a feature taken out of pipelines.yaml": Case(
        unchanged,
        FEATURES_BUT_TEXTURE,
        "passes",
        f"ignored unexpected column(s) '{DROPPED}'",
        "trains",
        "is blocked",
        f"columns removed: '{DROPPED}'; the callers of production send its columns",
    ),
    "a feature taken out of pipelines.yaml, evolve: true": Case(
        unchanged,
        FEATURES_BUT_TEXTURE + "\nschema: {evolve: true}",
        "passes",
        f"ignored unexpected column(s) '{DROPPED}'",
        "trains",
        "changes the signature",
        f"columns removed: '{DROPPED}'; allowed by schema.evolve: true",
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_a_column_change_meets_ingest_training_and_deploy(deployed_project, tmp_path, case):
    root = tmp_path / "project"
    shutil.copytree(deployed_project, root)
    version, signature = production(root)
    features = signature.columns
    schema = case.schema.replace(FEATURES_BUT_TEXTURE, "features: " + json.dumps([c for c in features if c != DROPPED]))
    env = {**project_vars(root), "ML_PLATFORM_PIPELINES": str(write_pipelines(root, schema))}
    # The new day brings the rows of the day that leaves the window: the same data, another day.
    sources = {day: (DAYS[0] if day == NEW_DAY else day) for day in case.days}
    for day, source in sources.items():
        case.change(landing(deployed_project, source)).to_parquet(root / "landing" / f"{day}.parquet", index=False)
    if NEW_DAY not in case.days:
        landing(deployed_project, DAYS[0]).to_parquet(root / "landing" / f"{NEW_DAY}.parquet", index=False)

    if len(case.days) > 1:  # the corrected window first, in one range run, then the daily run
        ingest = materialize(env, "--select", "key:demo/raw_data", "--partition-range", f"{WINDOW[0]}...{WINDOW[-2]}")
        assert ingest.returncode == 0, ingest.stdout[-3000:]
    proc = materialize(env, "--select", "group:demo", "--partition", NEW_DAY)  # what the schedule runs
    outcome = last_run(env)

    # Ingest: the day's schema_matches check.
    passed, said = outcome.checks["schema_matches"]
    assert passed is (case.ingest == "passes") and case.ingest_says in said, said
    assert "raw_data" in outcome.materialized
    # Training.
    if case.training == "trains":
        assert "training_data" in outcome.materialized and "trained_model" in outcome.materialized
    else:
        assert "training_data" not in outcome.materialized
        if case.training == "refuses":
            assert "disagree on their columns" in outcome.errors and case.says in outcome.errors, outcome.errors
    # Deploy, and production after it.
    after_version, after = production(root)
    if case.deploy == "does not run":
        assert proc.returncode != 0 and "signature_matches_production" not in outcome.checks
        assert (after_version, after) == (version, signature)
        return
    passed, said = outcome.checks["signature_matches_production"]
    assert case.says in said, said
    if case.deploy == "is blocked":
        assert passed is False and "deployed_model" not in outcome.materialized and proc.returncode != 0
        assert (after_version, after) == (version, signature)
    elif case.deploy == "keeps production's signature":
        assert passed is True and outcome.checks["accuracy_above_threshold"][0] is True, outcome.checks
        assert "deployed_model" in outcome.materialized and after_version != version
        assert after.columns == features and after.digest == signature.digest  # in production's order
    else:  # changes the signature
        assert passed is True and "deployed_model" in outcome.materialized and after_version != version
        assert after.digest != signature.digest
        if case.change is added:
            assert after.columns == [*features, ADDED]
        else:
            assert after.columns == [c for c in features if c != DROPPED]
        # Rolling back to the old signature says so: callers must send the old columns again.
        back = run(env, str(BIN / "ml-platform"), "rollback", "--reason", "callers not ready")
        assert back.returncode == 0, back.stderr
        assert f"note: {version} takes other columns than {after_version} did" in back.stdout
        assert "callers must send its columns" in back.stdout
        assert production(root) == (version, signature)
