"""`ml-platform contract`, in-process (``ml_platform.cli.main.main``), on a year of stored raw_data days.

A window of days is one season: the block it prints must not make its values' ranges blocking rules
(December's month is 12 all month; pasted as it was once suggested, the contract blocked every
January). Pasted into pipelines.yaml and read by the pipelines file's own parser, the block from the
newest 28 days blocks no day of the year (it warns), and still blocks broken days; without --days it
reads every ingested day. What it cannot do is one sentence on stderr, exit code 2, no traceback.
"""

import numpy as np
import pandas as pd
import pytest

from ml_platform.cli import main as cli
from ml_platform.quality.rules import Contract, blocking_failures, evaluate
from ml_platform.settings import load_settings
from ml_platform.spec import parse_pipelines

TARGET = "target"
ENTRY = "pipelines:\n  - name: shop\n"
YEAR = pd.date_range("2025-01-01", "2025-12-31")  # 365 days
ROWS = 40
# Rows of the temperature column and of the label left empty on a day of a burst (every 60 days,
# for 3 days: the newest 28 days hold one, so the suggested null share covers the others).
BURST_ROWS = 10


def day_of(day: pd.Timestamp, rng: np.random.Generator) -> pd.DataFrame:
    """One day of a shop: calendar columns, a temperature that follows the seasons, products some
    of which sell in some months only, and empty values in bursts."""
    products = ["bread", "milk", "coffee"]
    products += ["scarf", "gloves"] if day.month in (11, 12, 1, 2) else []
    products += ["sunscreen", "ice cream"] if day.month in (6, 7, 8) else []
    season = np.sin(2 * np.pi * (day.day_of_year - 110) / 365)  # coldest in January, warmest in July
    frame = pd.DataFrame(
        {
            "month": np.full(ROWS, day.month),
            "weekday": np.full(ROWS, day.day_of_week),
            "day": np.full(ROWS, day.day),
            "temperature": (12 + 14 * season + rng.normal(0, 2, ROWS)).round(1),
            "product": rng.choice(products, ROWS),
            TARGET: rng.choice(["yes", "no"], ROWS).astype(object),
        }
    )
    if (day.day_of_year - 1) % 60 < 3:
        burst = rng.permutation(ROWS)[:BURST_ROWS]
        frame.loc[burst, "temperature"] = np.nan
        frame.loc[burst, TARGET] = None
    return frame


@pytest.fixture(scope="module")
def year() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(7)
    return {day.strftime("%Y-%m-%d"): day_of(day, rng) for day in YEAR}


@pytest.fixture(scope="module")
def ingested(year, tmp_path_factory):
    """The year ingested: shop's raw_data days where the local IO manager keeps them."""
    root = tmp_path_factory.mktemp("ingested")
    folder = root / "assets" / "shop" / "raw_data"
    folder.mkdir(parents=True)
    for day, frame in year.items():
        frame.to_parquet(folder / f"{day}.parquet", index=False)
    return root / "assets"


@pytest.fixture
def stored(ingested, tmp_path, monkeypatch):
    """The pipelines file of shop and the year it ingested, for the CLI of this process."""
    (tmp_path / "pipelines.yaml").write_text(ENTRY)
    for name in ("ML_PLATFORM_ENV", "ML_PLATFORM_TARGET_COLUMN", "ML_PLATFORM_FEATURE_COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ML_PLATFORM_PIPELINES", str(tmp_path / "pipelines.yaml"))
    monkeypatch.setenv("ML_PLATFORM_ASSET_STORAGE_DIR", str(ingested))
    return tmp_path


def contract_command(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["contract", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def pasted(block: str) -> Contract:
    """The printed block in the pipeline's entry, read by the pipelines file's parser."""
    (spec,) = parse_pipelines(ENTRY + block, "pipelines.yaml", load_settings(environ={}))
    return spec.quality.contract()


def blocked(frame: pd.DataFrame, contract: Contract) -> list[str]:
    return blocking_failures(evaluate(frame, TARGET, None, contract))


def test_a_block_from_four_december_weeks_blocks_no_day_of_the_year_and_still_blocks_broken_days(stored, year, capsys):
    code, out, err = contract_command(capsys, "--model", "shop", "--days", "28")
    assert (code, err) == (0, "")
    assert "as its 28 newest ingested days (of 365) meet it" in out
    assert "(2025-12-04 … 2025-12-31: 28 days spanned, 1120 rows)" in out
    assert "Less than a year (28 of 365 days)" in out
    # The calendar's whole range, blocking; what the weeks show of the values, warnings.
    assert "month: {min: 1, max: 12}" in out and "weekday: {min: 0, max: 6}" in out and "day: {min: 1, max: 31}" in out
    assert "temperature: {max_null_ratio: 0.3, min: {value: " in out and "severity: warn}" in out
    assert "product: {allowed: {value: [bread, coffee, gloves, milk, scarf], severity: warn}}" in out
    assert "target: {allowed: ['no', 'yes']}" in out  # a yes / no pair: closed, blocking
    contract = pasted(out)
    assert contract.column("month").max.severity == "block" and contract.column("temperature").max.severity == "warn"
    warned = []
    for day, frame in year.items():
        results = evaluate(frame, TARGET, None, contract)
        assert blocking_failures(results) == [], day
        warned += [day for r in results if r.name == "declared_rules_met" and not r.passed]
    # A summer's temperatures and sunscreen are outside four December weeks: named, not blocked.
    assert "2025-07-15" in warned and "2025-12-20" not in warned
    january = year["2025-01-15"]
    assert blocked(january.assign(temperature=np.nan), contract) == ["null_ratio_below_threshold"]
    assert blocked(january.assign(temperature=january["temperature"].astype(str)), contract) == [
        "feature_columns_valid"
    ]
    assert blocked(january.assign(month=13), contract) == ["declared_rules_met"]


def test_without_days_it_reads_every_ingested_day_and_a_year_blocks(stored, year, capsys):
    code, out, err = contract_command(capsys, "--model", "shop")
    assert (code, err) == (0, "")
    assert "as all its 365 ingested days meet it" in out
    assert "(2025-01-01 … 2025-12-31: 365 days spanned, 14600 rows)" in out
    assert "Less than a year" not in out and "severity: warn" not in out
    assert "product: {allowed: [bread, coffee, gloves, ice cream, milk, scarf, sunscreen]}" in out
    contract = pasted(out)
    for day in ("2025-01-01", "2025-01-15", "2025-03-02", "2025-07-15", "2025-12-31"):  # 01-01, 03-02: bursts
        assert not [r.name for r in evaluate(year[day], TARGET, None, contract) if not r.passed], day


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--model", "shop", "--days", "0"], "--days must be >= 1"),
        (["--model", "shop", "--days", "-3"], "--days must be >= 1"),
        (
            ["--model", "no_such_model"],
            "--model 'no_such_model' is neither a pipeline nor a model of the pipelines file (shop (model shop))",
        ),
    ],
    ids=["days_0", "days_negative", "unknown_model"],
)
def test_a_refused_argument_is_one_line_on_stderr_and_exit_code_2(stored, capsys, args, said):
    code, out, err = contract_command(capsys, *args)
    assert (code, out, err) == (2, "", f"ml-platform: error: {said}\n")


def test_no_ingested_days_is_one_sentence(stored, capsys, monkeypatch):
    monkeypatch.setenv("ML_PLATFORM_ASSET_STORAGE_DIR", str(stored / "nothing-here"))
    code, out, err = contract_command(capsys, "--model", "shop")
    assert (code, out) == (2, "")
    assert err == (
        "ml-platform: error: no ingested days of shop: materialize shop/raw_data first"
        " (`dagster asset materialize --select 'key:shop/raw_data' ...`)\n"
    )


@pytest.mark.parametrize(
    ("pipelines", "why"),
    [
        ("missing.yaml", "does not exist (set ML_PLATFORM_PIPELINES to a pipelines.yaml)"),
        (".", "cannot be read: [Errno 21] Is a directory"),
        ("broken.yaml", "line 2, column 1 is not valid YAML"),
    ],
    ids=["missing", "a_folder", "not_yaml"],
)
def test_an_unreadable_pipelines_file_is_one_sentence(stored, capsys, monkeypatch, pipelines, why):
    (stored / "broken.yaml").write_text("pipelines: [\n")
    monkeypatch.setenv("ML_PLATFORM_PIPELINES", str(stored / pipelines))
    code, out, err = contract_command(capsys, "--model", "shop")
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert line.startswith("ml-platform: error: ") and why in line
