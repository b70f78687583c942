"""Bad input, as one table (issue 6): every bad landing file, run config and partition key, run the
way a user runs the pipeline, on a copy of a platform with a good model in production.

Each case names the outcome it must have (a typed error, a failed blocking check, a refused run, or a
documented handling) and the words that must name the problem; every case then checks that the
production model is untouched: every file of the model store byte for byte, and the model loads.

Landing-file cases run both ways a user runs the pipeline: the whole `<name>_training` for the day
in one run (what the daily schedule does), then `raw_data` for the day followed by the training
chain `key:training_data+` (what the landing sensor and the documented CLI steps do).
"""

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform_tests.support.constants import CHAIN, DAYS, MODEL_NAME, TARGET
from ml_platform_tests.support.good_platform import (  # noqa: F401 (deployed, good_template: fixtures)
    DAY,
    NEW_DAY,
    NUMERIC_COLUMN,
    day_frame,
    deployed,
    good_template,
    replace_landing,
)
from ml_platform_tests.support.platform import Platform
from ml_platform_tests.support.results import (
    check_descriptions,
    check_results,
    error_classes,
    materialized,
    step_errors,
)

PIPELINE = "*"  # every asset and check for one day: the training job
INGEST = "key:demo/raw_data"
DUPLICATES = 10
GATE_OP = "demo__model_metrics_accuracy_above_threshold"

# What must happen.
READ_FAILS = "raw_data cannot read the file"
CHECK_FAILS = "a blocking raw_data check fails"
TRAINING_FAILS = "training_data refuses the window"
DUPLICATES_DROPPED = "duplicates are dropped and counted"
EXTRA_IGNORED = "a column outside the schema is left out of training"
REFUSED = "the run is refused before it starts"
STEP_FAILS = "the step that reads the config fails"


@dataclass(frozen=True)
class Case:
    """One bad input. ``says``: fragments of the error, check or log text ({day} and {landing}
    are filled in); ``error``: the class the failure must carry."""

    outcome: str
    says: tuple[str, ...]
    inject: Callable[[Platform], None] | None = None
    day: str = NEW_DAY
    error: str | None = None
    check: str | None = None
    selections: tuple[str, ...] = (CHAIN,)
    run_config: dict = field(default_factory=dict)


# -- bad landing files (for NEW_DAY unless said otherwise; made from DAY's good rows) --------------


def write(make: Callable, fmt: str = "parquet", day: str = NEW_DAY, **to_csv) -> Callable:
    """An inject that puts ``make(DAY's good rows, platform)`` as the only landing file of ``day``."""

    def inject(platform: Platform) -> None:
        frame = make(day_frame(platform), platform)
        if fmt == "parquet":
            data = frame.to_parquet(index=False)
        else:
            data = frame.to_csv(index=False, **to_csv).encode()
        replace_landing(platform, day, fmt, data)

    return inject


def raw_bytes(make: Callable[[bytes], bytes], ext: str) -> Callable:
    """An inject that writes ``make(DAY's good parquet bytes)`` as NEW_DAY's landing file."""

    def inject(platform: Platform) -> None:
        good = (platform.landing / f"{DAY}.parquet").read_bytes()
        replace_landing(platform, NEW_DAY, ext, make(good))

    return inject


def two_files(platform: Platform) -> None:
    platform.write_day(NEW_DAY, day_frame(platform))
    platform.write_day(NEW_DAY, day_frame(platform), "csv")


def with_column(frame: pd.DataFrame, column: str, values) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = values
    return frame


def nulls_at_30_percent(frame: pd.DataFrame, _) -> pd.DataFrame:
    frame = frame.head(60).copy()
    frame.loc[: 18 - 1, NUMERIC_COLUMN] = np.nan  # 18 of 60 rows
    return frame


def garbage(frame: pd.DataFrame, _) -> pd.DataFrame:
    frame = with_column(frame, NUMERIC_COLUMN, frame[NUMERIC_COLUMN].astype(str))
    frame.loc[5, NUMERIC_COLUMN] = "abc"
    return frame


def infinite(frame: pd.DataFrame, _) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[[1, 2, 3], NUMERIC_COLUMN] = [np.inf, -np.inf, np.inf]  # e.g. a division by zero upstream
    return frame


def radius_as_text(frame: pd.DataFrame, _) -> pd.DataFrame:
    """A valid day on its own (a text column of two categories), numeric on every other day."""
    return with_column(frame, NUMERIC_COLUMN, np.where(frame[NUMERIC_COLUMN] > 14, "large", "small"))


def with_duplicates(frame: pd.DataFrame, platform: Platform) -> pd.DataFrame:
    """DAY's rows, then 5 of them again and 5 rows of the day before (a batch delivered twice)."""
    previous = pd.read_parquet(platform.landing / f"{DAYS[-2]}.parquet")
    return pd.concat([frame, frame.head(DUPLICATES // 2), previous.head(DUPLICATES // 2)])


LANDING_CASES = [
    pytest.param(
        Case(
            READ_FAILS,
            ("no landing file for {day}", "{day}.parquet", "{day}.csv", "{landing}"),
            error="LandingFileMissingError",
        ),
        id="missing-file",
    ),
    pytest.param(
        Case(
            READ_FAILS,
            ("{landing}/{day}.csv", "is empty (0 bytes)"),
            raw_bytes(lambda good: b"", "csv"),
            error="EmptyLandingFileError",
        ),
        id="empty-0-byte-csv",
    ),
    pytest.param(
        Case(
            READ_FAILS,
            ("{landing}/{day}.parquet", "is empty (0 bytes)"),
            raw_bytes(lambda good: b"", "parquet"),
            error="EmptyLandingFileError",
        ),
        id="empty-0-byte-parquet",
    ),
    pytest.param(
        Case(
            READ_FAILS,
            ("{landing}/{day}.csv", "has no header and no rows"),
            raw_bytes(lambda good: b"  \n\n", "csv"),
            error="EmptyLandingFileError",
        ),
        id="blank-csv",
    ),
    pytest.param(
        Case(
            READ_FAILS,
            ("{landing}/{day}.parquet", "cannot be read"),
            raw_bytes(lambda good: good[: len(good) // 2], "parquet"),
            error="CorruptLandingFileError",
        ),
        id="truncated-parquet",
    ),
    pytest.param(
        Case(
            READ_FAILS,
            ("{landing}/{day}.parquet", "cannot be read"),
            raw_bytes(lambda good: good[:-12] + b"\x00" * 8 + good[-4:], "parquet"),  # footer length garbage
            error="CorruptLandingFileError",
        ),
        id="parquet-bad-footer",
    ),
    pytest.param(
        Case(
            READ_FAILS,
            ("{landing}/{day}.parquet", "cannot be read"),
            raw_bytes(lambda good: np.random.default_rng(7).bytes(4096), "parquet"),
            error="CorruptLandingFileError",
        ),
        id="parquet-random-bytes",
    ),
    pytest.param(
        Case(
            READ_FAILS,
            ("two landing files for {day}", "{day}.parquet", "{day}.csv", "keep one"),
            two_files,
            error="LandingFileError",
        ),
        id="two-files-for-one-day",
    ),
    pytest.param(
        Case(CHECK_FAILS, ("the data has no rows",), write(lambda f, _: f.iloc[:0], "csv"), check="not_empty"),
        id="header-only-csv",
    ),
    pytest.param(
        Case(
            CHECK_FAILS,
            (f"target column {TARGET!r} is missing",),
            write(lambda f, _: f.drop(columns=[TARGET])),
            check="target_column_present",
        ),
        id="missing-target-column",
    ),
    pytest.param(
        Case(
            CHECK_FAILS,
            (f"target column {TARGET!r} is missing", "mean radius;mean texture", "holding ';'", "comma-separated"),
            write(lambda f, _: f, "csv", sep=";"),
            check="target_column_present",
        ),
        id="semicolon-delimited-csv",
    ),
    pytest.param(
        Case(
            CHECK_FAILS,
            (f"null ratio above 0.1 in: {NUMERIC_COLUMN} (1.000)",),
            write(lambda f, _: with_column(f, NUMERIC_COLUMN, np.nan)),
            check="null_ratio_below_threshold",
        ),
        id="all-nan-column",
    ),
    pytest.param(
        Case(
            CHECK_FAILS,
            (f"null ratio above 0.1 in: {NUMERIC_COLUMN} (0.300)",),
            write(nulls_at_30_percent),
            check="null_ratio_below_threshold",
        ),
        id="nulls-over-threshold",
    ),
    pytest.param(
        Case(
            CHECK_FAILS,
            ("1 target class; need at least 2",),
            write(lambda f, _: with_column(f, TARGET, 1)),
            check="at_least_two_classes",
        ),
        id="single-class-target",
    ),
    pytest.param(
        Case(
            CHECK_FAILS,
            (f"column {NUMERIC_COLUMN!r} is", "non-numeric values such as ['abc']"),
            write(garbage, "csv"),
            check="feature_columns_valid",
        ),
        id="string-garbage-in-numeric-column-csv",
    ),
    pytest.param(
        Case(
            CHECK_FAILS,
            (f"column {NUMERIC_COLUMN!r} is", "non-numeric values such as ['abc']"),
            write(garbage),
            check="feature_columns_valid",
        ),
        id="string-garbage-in-numeric-column-parquet",
    ),
    pytest.param(
        Case(
            CHECK_FAILS,
            (f"column {NUMERIC_COLUMN!r} holds 3 infinite value(s)",),
            write(infinite),
            check="feature_columns_valid",
        ),
        id="infinite-values-in-numeric-column",
    ),
    pytest.param(
        # An identifier would fail feature_columns_valid, but outside the schema it never reaches the
        # model: the day is ingested with a warning and the window is production's own data again.
        Case(
            EXTRA_IGNORED,
            ("ignored unexpected column(s) 'customer_id' (schema.extra_columns: ignore)",),
            write(lambda f, _: with_column(f, "customer_id", [f"c{i:06d}" for i in range(len(f))]), day=DAY),
            day=DAY,
            check="schema_matches",
        ),
        id="identifier-column-outside-the-schema",
    ),
    pytest.param(
        # Production's signature says numeric: the day is stopped at ingest, before it meets the window.
        Case(
            CHECK_FAILS,
            (
                f"column {NUMERIC_COLUMN!r} is categorical, the schema says numeric",
                f"expected the columns of production model {MODEL_NAME}",
            ),
            write(radius_as_text),
            check="schema_matches",
        ),
        id="numeric-column-turned-text",
    ),
    pytest.param(
        Case(
            TRAINING_FAILS,
            ("schema drift", f"column {TARGET!r} is numeric on {DAYS[1]}", f"but categorical on {NEW_DAY}"),
            write(lambda f, _: with_column(f, TARGET, f[TARGET].map({0: "malignant", 1: "benign"}))),
            error="DataValidationError",
        ),
        id="schema-drift-target-labels-as-text",
    ),
    pytest.param(
        Case(
            DUPLICATES_DROPPED,
            (f"dropped {DUPLICATES} duplicate row(s): {DAY}: {DUPLICATES}",),
            write(with_duplicates, day=DAY),
            day=DAY,
        ),
        id="duplicate-rows",
    ),
]


# -- bad run config and partition keys -------------------------------------------------------------


def config(op: str, **values) -> dict:
    """Run config for one op; the demo pipeline's ops are named demo__<asset>."""
    op = op if op.startswith("demo__") or op == "no_such_op" else f"demo__{op}"
    return {"ops": {op: {"config": values}}}


def refused_config(op, selection, key, **values):
    return Case(
        REFUSED,
        (f'"{key}"', f"demo__{op}"),
        day=DAY,
        error="DagsterInvalidConfigError",
        selections=(selection,),
        run_config=config(op, **values),
    )


def out_of_range(op, config_class, key, value, shown, selection=CHAIN, *also):
    return Case(
        STEP_FAILS,
        (config_class, f"{key}\n", f"input_value={shown}", *also),
        day=DAY,
        error="ValidationError",
        selections=(selection,),
        run_config=config(op, **{key: value}),
    )


CONFIG_CASES = [
    pytest.param(refused_config("trained_model", CHAIN, "n_trees", n_trees=5), id="unknown-key-trained_model"),
    pytest.param(
        refused_config("raw_data_quality", INGEST, "max_nulls", max_nulls=0.5), id="unknown-key-raw_data_quality"
    ),
    pytest.param(
        refused_config("raw_data", INGEST, "landing_dir", landing_dir="/tmp"), id="config-for-raw_data-which-takes-none"
    ),
    pytest.param(
        refused_config("training_data", CHAIN, "window_days", window_days=3),
        id="config-for-training_data-which-takes-none",
    ),
    pytest.param(
        refused_config("model_metrics", CHAIN, "metric", metric="f1"), id="config-for-model_metrics-which-takes-none"
    ),
    pytest.param(
        refused_config("deployed_model", CHAIN, "force", force=True), id="config-for-deployed_model-which-takes-none"
    ),
    pytest.param(
        Case(
            REFUSED, ('"no_such_op"',), day=DAY, error="DagsterInvalidConfigError", run_config=config("no_such_op", x=1)
        ),
        id="unknown-op",
    ),
    pytest.param(
        Case(
            REFUSED,
            ("n_estimators", '"many"'),
            day=DAY,
            error="DagsterInvalidConfigError",
            run_config=config("trained_model", n_estimators="many"),
        ),
        id="n_estimators-not-a-number",
    ),
    *[
        pytest.param(out_of_range(op, cls, key, value, shown, selection, *also), id=f"{key}={value}")
        for op, cls, key, value, shown, selection, also in [
            ("trained_model", "TrainingConfig", "n_estimators", 0, "0", CHAIN, ('op "demo__trained_model"',)),
            ("trained_model", "TrainingConfig", "n_estimators", -1, "-1", CHAIN, ('op "demo__trained_model"',)),
            (
                "trained_model",
                "TrainingConfig",
                "max_depth",
                0,
                "0",
                CHAIN,
                ('op "demo__trained_model"', "greater than or equal to 1"),
            ),
            (
                "trained_model",
                "TrainingConfig",
                "max_depth",
                -1,
                "-1",
                CHAIN,
                ('op "demo__trained_model"', "greater than or equal to 1"),
            ),
            ("trained_model", "RandomForestParams", "n_jobs", 0, "0", CHAIN, ("use -1 for all cores",)),
            ("splits", "SplitConfig", "test_size", 0, "0.0", CHAIN, ()),
            ("splits", "SplitConfig", "test_size", 1.5, "1.5", CHAIN, ()),
            (GATE_OP, "GateConfig", "min_accuracy", 1.5, "1.5", CHAIN, (f'op "{GATE_OP}"',)),
            (GATE_OP, "GateConfig", "min_accuracy", -0.1, "-0.1", CHAIN, (f'op "{GATE_OP}"',)),
            ("raw_data_quality", "DataQualityConfig", "max_null_ratio", 1.5, "1.5", INGEST, ()),
            ("raw_data_quality", "DataQualityConfig", "max_null_ratio", -0.1, "-0.1", INGEST, ()),
        ]
    ],
]

PARTITION_KEYS = [
    "1999-01-01",  # before the first partition (2025-01-01)
    "2024-12-31",
    "2999-01-01",  # far in the future
    dt.date.today().isoformat(),  # today has not ended: the newest partition is yesterday
    "../etc",
    "not-a-day",
    "2026-13-01",
]
PARTITION_CASES = [
    pytest.param(
        Case(
            REFUSED,
            (f"Could not find a partition with key `{key}`",),
            day=key,
            error="DagsterUnknownPartitionError",
            selections=(PIPELINE, INGEST, CHAIN),
        ),
        id=f"partition-key-{key}",
    )
    for key in PARTITION_KEYS
]


# -- what must happen -----------------------------------------------------------------------------


def assert_says(text: str, says: list[str]) -> None:
    for fragment in says:
        assert fragment in text, (fragment, text)


def ingest_then_train(platform: Platform, day: str) -> tuple[dg.ExecuteInProcessResult, ...]:
    return platform.materialize(INGEST, day), platform.train(day)


def assert_training_refused(result: dg.ExecuteInProcessResult, day: str, says: list[str]) -> None:
    """A model as of ``day`` needs ``day``'s own data: the chain fails before anything is trained."""
    assert not result.success
    assert "DataValidationError" in error_classes(result)
    assert_says(step_errors(result), [f"cannot train a model as of {day}: raw_data {day}", *says])
    assert not materialized(result)


def read_fails(platform: Platform, case: Case, says: list[str]) -> None:
    one_run = platform.materialize(PIPELINE, case.day)
    ingest, train = ingest_then_train(platform, case.day)
    for result in (one_run, ingest):
        assert not result.success
        assert case.error in error_classes(result)
        assert_says(step_errors(result), says)
        assert not materialized(result)
    assert_training_refused(train, case.day, ["has not been materialized"])


def check_fails(platform: Platform, case: Case, says: list[str]) -> None:
    one_run = platform.materialize(PIPELINE, case.day)
    ingest, train = ingest_then_train(platform, case.day)
    for result in (one_run, ingest):
        assert not result.success
        assert check_results(result)[case.check] is False
        assert case.check in step_errors(result)  # the run's failure names the check
        assert_says(check_descriptions(result)[case.check], says)
        assert materialized(result) == {"raw_data"}  # stored, flagged by its check; nothing downstream
    assert_training_refused(train, case.day, [f"failed {case.check}", *says])


def training_fails(platform: Platform, case: Case, says: list[str]) -> None:
    one_run = platform.materialize(PIPELINE, case.day)
    ingest, train = ingest_then_train(platform, case.day)
    assert ingest.success and all(check_results(ingest).values())  # each day on its own is fine
    for result, stored in ((one_run, {"raw_data"}), (train, set())):
        assert not result.success
        assert case.error in error_classes(result)
        assert_says(step_errors(result), says)
        assert materialized(result) == stored


def duplicates_dropped(platform: Platform, case: Case, says: list[str]) -> None:
    for result in (platform.materialize(PIPELINE, case.day), *ingest_then_train(platform, case.day)):
        assert result.success, step_errors(result)
        if "training_data" not in materialized(result):
            continue
        metadata = result.asset_materializations_for_node("demo__training_data")[0].metadata
        assert metadata["Duplicate rows dropped"].value == DUPLICATES
        logs = "\n".join(entry.user_message for entry in platform.instance.all_logs(result.run_id))
        assert_says(logs, says)
        # Without its duplicates the window is the data production was trained on: same model.
        outcome = result.asset_materializations_for_node("demo__deployed_model")[0].metadata["Outcome"].value
        assert outcome == "already in production"


def extra_ignored(platform: Platform, case: Case, says: list[str]) -> None:
    for result in (platform.materialize(PIPELINE, case.day), *ingest_then_train(platform, case.day)):
        assert result.success, step_errors(result)
        if case.check in check_results(result):
            assert check_results(result)[case.check] is True
            assert_says(check_descriptions(result)[case.check], says)
        if "training_data" not in materialized(result):
            continue
        outcome = result.asset_materializations_for_node("demo__deployed_model")[0].metadata["Outcome"].value
        assert outcome == "already in production"


def refused(platform: Platform, case: Case, says: list[str]) -> None:
    for selection in case.selections:
        with pytest.raises(dg.DagsterError) as raised:
            platform.materialize(selection, case.day, case.run_config)
        assert type(raised.value).__name__ == case.error
        assert_says(str(raised.value), says)
    assert platform.instance.get_runs_count() == 0


def step_fails(platform: Platform, case: Case, says: list[str]) -> None:
    (selection,) = case.selections
    result = platform.materialize(selection, case.day, case.run_config)
    assert not result.success
    assert case.error in error_classes(result)
    assert_says(step_errors(result), says)
    assert "deployed_model" not in materialized(result)
    assert "accuracy_above_threshold" not in check_results(result)


OUTCOMES = {
    READ_FAILS: read_fails,
    CHECK_FAILS: check_fails,
    TRAINING_FAILS: training_fails,
    DUPLICATES_DROPPED: duplicates_dropped,
    EXTRA_IGNORED: extra_ignored,
    REFUSED: refused,
    STEP_FAILS: step_fails,
}


def store_files(platform: Platform) -> dict[str, str]:
    """sha256 of every file in the model store (pointer, versions, metadata, history)."""
    return {
        str(path.relative_to(platform.store_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(platform.store_dir.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("case", [*LANDING_CASES, *CONFIG_CASES, *PARTITION_CASES])
def test_bad_input_leaves_production_untouched(deployed: Platform, case: Case):
    production = deployed.store.production(MODEL_NAME)
    before = store_files(deployed)
    rows = day_frame(deployed).drop(columns=[TARGET])
    predictions = deployed.store.load(MODEL_NAME)[0].predict(rows).tolist()
    if case.inject:
        case.inject(deployed)

    says = [fragment.format(day=case.day, landing=deployed.landing) for fragment in case.says]
    OUTCOMES[case.outcome](deployed, case, says)

    assert store_files(deployed) == before
    model, version = deployed.store.load(MODEL_NAME)  # sha256 verified
    assert version.version == production.version
    assert model.predict(rows).tolist() == predictions
