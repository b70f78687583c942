"""The data contract pipelines.yaml declares (``quality:``): loaded and validated with the file, each
rule measured per column (observed, limit, passed, severity), labels and duplicates, and the
contract ``ml-platform contract`` suggests from the data."""

import numpy as np
import pandas as pd
import pytest

from ml_platform.errors import ConfigError, DataValidationError
from ml_platform.quality.kinds import category_text, column_kind
from ml_platform.quality.results import RuleResult
from ml_platform.quality.rules import (
    RULE_NAMES,
    Contract,
    Rule,
    blocking_failures,
    evaluate,
    feature_types,
    repeated_rows,
    rule_names,
)
from ml_platform.quality.suggestion import suggest_contract
from ml_platform.settings import load_settings
from ml_platform.spec import parse_pipelines

TARGET = "target"


def spec_of(quality_yaml: str, extra: str = ""):
    text = f"pipelines:\n  - name: shop\n{extra}    quality:\n" + "".join(
        f"      {line}\n" for line in quality_yaml.strip().splitlines()
    )
    (spec,) = parse_pipelines(text, "pipelines.yaml", load_settings(environ={}))
    return spec


def contract_of(quality_yaml: str) -> Contract:
    return spec_of(quality_yaml).quality.contract()


def rows_of(result: RuleResult) -> dict[tuple[str, str], dict]:
    return {(r["Column"], r["Rule"]): r for r in result.rows}


# -- pipelines.yaml ---------------------------------------------------------------------------------


def test_a_contract_loads_with_plain_and_long_rules_and_column_severities():
    contract = contract_of("""
max_null_ratio: {value: 0.2, severity: warn}
min_rows: 100
target_missing: {max_ratio: 0.6}
columns:
  price: {min: 0, max: {value: 5000, severity: block}, max_null_ratio: 0.6, severity: warn}
  store: {allowed: [north, south, 3]}
  order_id: {unique: true}
""")
    assert contract.max_null_ratio == Rule(0.2, "warn")
    assert contract.min_rows == Rule(100, "block")
    assert contract.target_missing == Rule(0.6, "block")
    price = contract.column("price")
    assert price.min == Rule(0.0, "warn")  # the column's severity
    assert price.max == Rule(5000.0, "block")  # its own
    assert price.max_null_ratio == Rule(0.6, "warn")
    assert contract.column("store").allowed == Rule(("north", "south", 3), "block")
    assert contract.declares_values
    # A run's config replaces the pipeline-wide null share, keeping its severity.
    assert spec_of("max_null_ratio: {value: 0.2, severity: warn}").quality.contract(0.5).max_null_ratio == Rule(
        0.5, "warn"
    )


def test_no_quality_block_is_the_default_contract():
    (spec,) = parse_pipelines("pipelines:\n  - name: shop\n", "pipelines.yaml", load_settings(environ={}))
    assert spec.quality.contract() == Contract()
    assert not spec.quality.contract().declares_values
    assert spec.quality.dedupe.enabled and spec.quality.dedupe.key is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("max_null_ratio: 1.5", "quality.max_null_ratio: Input should be less than or equal to 1"),
        (
            "max_null_ratio: {value: 0.2, severity: loud}",
            "quality.max_null_ratio.severity: Input should be 'block' or 'warn'",
        ),
        ("columns: {price: {min: 10, max: 1}}", "quality.columns.price: min 10 is above max 1"),
        ("columns: {price: {min: cheap}}", "quality.columns.price.min: 'cheap' is not a number"),
        ("columns: {price: {between: [1, 2]}}", "quality.columns.price.between: unknown key"),
        ("columns: {store: {allowed: []}}", "quality.columns.store.allowed: List should have at least 1 item"),
        (
            "columns: {target: {max_null_ratio: 0.3}}",
            "quality.columns.target.max_null_ratio: the label's empty share is quality.target_missing.max_ratio",
        ),
        ("columns: {target: {unique: true}}", "quality.columns.target.unique: a label is not an id"),
        ("dedupe: {key: []}", "quality.dedupe.key: List should have at least 1 item"),
        ("min_rows: 0", "quality.min_rows: Input should be greater than or equal to 1"),
    ],
)
def test_a_bad_contract_fails_at_load_naming_the_field(text, says):
    with pytest.raises(ConfigError) as raised:
        spec_of(text)
    assert "pipelines.yaml: pipelines[0] (shop): " in str(raised.value)
    assert says in str(raised.value)


def test_min_and_max_on_a_column_declared_categorical_fail_at_load():
    with pytest.raises(
        ConfigError, match="quality.columns.store: min / max are for numbers; features declare it categorical"
    ):
        spec_of("columns: {store: {min: 1}}", extra="    features: [price, {store: categorical}]\n")


# -- the rules ------------------------------------------------------------------------------------


def day(**columns) -> pd.DataFrame:
    rows = len(next(iter(columns.values())))
    return pd.DataFrame({**columns, TARGET: columns.pop(TARGET, [i % 2 for i in range(rows)])})


def results(frame: pd.DataFrame, contract: Contract) -> dict[str, RuleResult]:
    return {r.name: r for r in evaluate(frame, TARGET, None, contract)}


def test_null_shares_are_judged_per_column_against_their_own_limits():
    contract = contract_of("columns: {distance: {max_null_ratio: 0.6}}")
    frame = day(distance=[np.nan] * 5 + [1.0] * 5, price=[np.nan] * 2 + [1.0] * 8)
    result = results(frame, contract)["null_ratio_below_threshold"]
    assert not result.passed and result.severity == "block"
    assert result.message == "null ratio above 0.1 in: price (0.200)"
    table = rows_of(result)
    assert table["distance", "max_null_ratio"] == {
        "Column": "distance",
        "Rule": "max_null_ratio",
        "Observed": "0.5",
        "Limit": "0.6",
        "Passed": True,
        "Severity": "block",
    }
    assert table["price", "max_null_ratio"]["Passed"] is False
    assert list(result.rows)[0]["Column"] == "price"  # the failed rows first


def test_a_warn_rule_fails_as_a_warning_and_a_block_rule_blocks():
    contract = contract_of("columns: {distance: {max_null_ratio: 0.2, severity: warn}}")
    frame = day(distance=[np.nan] * 5 + [1.0] * 5, price=[1.0] * 10)
    result = results(frame, contract)["null_ratio_below_threshold"]
    assert not result.passed and result.severity == "warn"
    assert "(severity warn: the day is still used)" in result.message
    assert blocking_failures([result]) == []
    frame["price"] = [np.nan] * 5 + [1.0] * 5  # a block rule fails too: the check blocks
    assert results(frame, contract)["null_ratio_below_threshold"].severity == "block"


def test_the_label_is_judged_by_target_missing_not_by_the_null_share():
    frame = day(x=[1.0] * 10, target=[np.nan] * 3 + [0, 1] * 3 + [1])
    outcome = results(frame, Contract())
    assert outcome["null_ratio_below_threshold"].passed  # the features have no nulls
    missing = outcome["target_missing_below_threshold"]
    assert not missing.passed
    assert missing.message == "3 of 10 rows (0.300) have no label, above 0.1"
    assert missing.metadata["Rows without a label"] == 3
    assert results(frame, contract_of("target_missing: {max_ratio: 0.3}"))["target_missing_below_threshold"].passed


def test_declared_value_rules_name_the_column_and_what_was_seen():
    contract = contract_of("""
min_rows: 20
columns:
  price: {min: 0, max: 100}
  store: {allowed: [north, south]}
  order_id: {unique: true}
  city: {max_categories: 2}
  zone: {min: 1, severity: warn}
""")
    frame = day(
        price=[5.0, -1.0, 250.0, np.nan, 7.0],
        store=["north", "east", "south", "west", None],
        order_id=["a", "b", "b", "c", "d"],
        city=["x", "y", "z", "x", "y"],
        zone=[1, 2, 3, 4, 5],
    )
    result = results(frame, contract)["declared_rules_met"]
    assert not result.passed and result.severity == "block"
    for part in (
        "5 rows, fewer than min_rows 20",
        "'price' has 1 value(s) below min 0 (lowest -1)",
        "'price' has 1 value(s) above max 100 (highest 250)",
        "'store' has 2 value(s) outside allowed, such as ['east', 'west']",
        "'order_id' repeats 1 value(s), such as ['b']",
        "'city' has 3 distinct values, more than max_categories 2",
    ):
        assert part in result.message
    table = rows_of(result)
    assert table["zone", "min"]["Passed"] and table["zone", "min"]["Severity"] == "warn"
    assert table["price", "max"] == {
        "Column": "price",
        "Rule": "max",
        "Observed": "250",
        "Limit": "100",
        "Passed": False,
        "Severity": "block",
    }
    assert table["(day)", "min_rows"]["Observed"] == "5"


def test_a_declared_column_missing_from_the_day_fails_its_rules():
    result = results(day(x=[1.0, 2.0]), contract_of("columns: {price: {min: 0}}"))["declared_rules_met"]
    assert not result.passed and result.message == "'price' is missing"
    assert rows_of(result)["price", "min"]["Observed"] == "column missing"


def test_numbers_declared_allowed_match_numbers_and_text_alike():
    contract = contract_of("columns: {store: {allowed: [1, 2, 3]}}")
    for values in ([1, 2, 3, 2], [1.0, 2.0, np.nan, 3.0], ["1", "2", "3", "1"]):
        assert results(day(store=values), contract)["declared_rules_met"].passed, values


def test_rule_names_grow_by_declared_rules_met_only_when_something_is_declared():
    assert rule_names("classification", Contract()) == RULE_NAMES
    assert rule_names("regression", contract_of("min_rows: 5"))[-1] == "declared_rules_met"


# -- kinds ----------------------------------------------------------------------------------------


def test_booleans_with_nulls_are_booleans():
    frame = day(flag=pd.Series([True, None, False, True], dtype=object))
    assert column_kind(frame["flag"]) == ("boolean", None)
    assert results(frame, Contract.of(0.5))["feature_columns_valid"].passed


@pytest.mark.parametrize(
    "values",
    [
        ["2026-01-03", "2026-01-04 10:30", "2026-02-01T08:00:00Z", None],
        ["03/01/2026", "04/01/2026 10:30", "15.02.2026", "16.02.2026"],
    ],
)
def test_text_dates_are_a_datetime_column_to_declare(values):
    frame = day(x=[1.0] * 4, seen_at=values)
    result = feature_types(frame, TARGET)
    assert not result.passed
    assert (
        "column 'seen_at' holds dates and times (str): declare it `{seen_at: datetime}` under features (its"
        " hour, weekday and month become inputs) or leave it out of the data"
    ) in result.message
    declared = feature_types(frame, TARGET, {"seen_at": "datetime"})
    assert declared.passed, declared.message


def test_a_declared_datetime_that_is_not_dates_fails_naming_values():
    frame = day(seen_at=["2026-01-03", "soon", "later", "2026-01-04"])
    result = feature_types(frame, TARGET, {"seen_at": "datetime"})
    assert not result.passed
    assert "column 'seen_at' is declared datetime but holds values that are not dates, such as" in result.message


def test_category_text_is_one_text_per_category():
    assert category_text(pd.Series([7, 8])).tolist() == ["7", "8"]
    assert category_text(pd.Series([7.0, np.nan, 2.5])).tolist()[::2] == ["7", "2.5"]
    assert category_text(pd.Series([True, False])).tolist() == ["True", "False"]
    mixed = category_text(pd.Series(["a", 3, None, 4.0], dtype=object))
    assert mixed.tolist()[:2] == ["a", "3"] and pd.isna(mixed[2]) and mixed[3] == "4"


# -- duplicates -----------------------------------------------------------------------------------


def test_rows_equal_in_the_features_but_not_in_every_column_are_distinct_events():
    first = pd.DataFrame({"event_id": ["e1", "e2", "e3"], "price": [1.0, 1.0, 2.0], TARGET: [0, 0, 1]})
    second = pd.DataFrame({"event_id": ["e4", "e1"], "price": [1.0, 1.0], TARGET: [0, 0]})
    repeated = repeated_rows({"2026-01-02": second, "2026-01-01": first})
    assert repeated["2026-01-01"].tolist() == [False, False, False]
    assert repeated["2026-01-02"].tolist() == [False, True]  # e1 again, in every column: delivered twice
    by_key = repeated_rows({"2026-01-01": first, "2026-01-02": second}, ["event_id"])
    assert by_key["2026-01-02"].tolist() == [False, True]
    by_features = repeated_rows({"2026-01-01": first, "2026-01-02": second}, ["price"])
    assert by_features["2026-01-01"].tolist() == [False, True, False]


def test_a_day_delivered_twice_is_caught_even_when_an_int_column_became_float():
    first = pd.DataFrame({"qty": [1, 2, 3], "price": [1.5, 2.5, 3.5]})
    again = first.astype({"qty": "float64"})
    repeated = repeated_rows({"2026-01-01": first, "2026-01-02": again})
    assert repeated["2026-01-02"].all() and not repeated["2026-01-01"].any()


def test_rows_of_days_with_other_columns_never_repeat_each_other():
    first = pd.DataFrame({"a": [1.0], "b": [np.nan]})
    other = pd.DataFrame({"a": [1.0]})
    assert not repeated_rows({"2026-01-01": first, "2026-01-02": other})["2026-01-02"].any()


def test_a_dedupe_key_missing_from_a_day_names_it():
    with pytest.raises(DataValidationError, match="quality.dedupe.key: 'event_id' is not in 2026-01-02"):
        repeated_rows(
            {"2026-01-01": pd.DataFrame({"event_id": [1]}), "2026-01-02": pd.DataFrame({"id": [1]})}, ["event_id"]
        )


# -- the suggested contract -----------------------------------------------------------------------


def test_the_suggested_contract_is_met_by_the_days_it_was_read_from():
    rng = np.random.default_rng(3)
    frames = {}
    for index in range(5):
        n = 100 + index
        frame = pd.DataFrame(
            {
                "price": rng.uniform(3, 900, n),
                "store": rng.choice(["north", "south", "east"], n),
                "product": [f"p{i}" for i in rng.integers(0, 400, n)],
                "order_id": [f"o{index}-{i}" for i in range(n)],
                TARGET: rng.choice(["yes", "no"], n).astype(object),
            }
        )
        if index == 3:  # a burst: 40 % of one column empty, the label empty on the same rows
            burst = rng.random(n) < 0.4
            frame.loc[burst, "price"] = np.nan
            frame.loc[burst, TARGET] = None
        frames[f"2026-01-0{index + 1}"] = frame
    suggested, notes = suggest_contract(frames, TARGET, "classification")
    # Five days are not a year: what they show of the values warns (the module's docstring says why).
    assert suggested["min_rows"] == {"value": 50, "severity": "warn"}
    assert 0.4 < suggested["target_missing"]["max_ratio"] <= 0.6
    columns = suggested["columns"]
    assert 0.4 < columns["price"]["max_null_ratio"] <= 0.6 and "empty on a day" in notes["price"]
    prices = pd.concat([f["price"] for f in frames.values()])
    low, high = columns["price"]["min"], columns["price"]["max"]
    assert low["severity"] == high["severity"] == "warn"
    # A tenth of the range further out on each side, rounded outward; not below zero, where no price was.
    widened = prices.max() + 0.1 * (prices.max() - prices.min())
    assert low["value"] == 0.0 and widened <= high["value"] < widened + 1e-3
    assert columns["store"] == {"allowed": {"value": ["east", "north", "south"], "severity": "warn"}}
    assert columns[TARGET] == {"allowed": ["no", "yes"]}  # a yes / no pair: no season adds a third
    assert "allowed" not in columns["product"] and columns["product"]["max_categories"]["value"] >= 100
    assert columns["product"]["max_categories"]["severity"] == "warn"
    assert columns["order_id"]["unique"] is True and "an id?" in notes["order_id"]
    # Pasted into pipelines.yaml, every day meets it.
    import yaml

    contract = spec_of(yaml.safe_dump(suggested, default_flow_style=False)).quality.contract()
    for name, frame in frames.items():
        failed = [r for r in evaluate(frame, TARGET, None, contract) if not r.passed]
        assert not failed, (name, [r.message for r in failed])
    # The same days spanning a year: what they show blocks.
    yearly, _ = suggest_contract({**frames, "2026-12-31": frames["2026-01-05"]}, TARGET, "classification")
    assert yearly["min_rows"] == 50 and yearly["columns"]["store"] == {"allowed": ["east", "north", "south"]}
    assert yearly["columns"]["price"]["min"] == 0.0 and yearly["columns"]["price"]["max"] == high["value"]


@pytest.mark.parametrize(
    ("name", "values", "rules"),
    [
        ("month", [12, 12, 12, 12], {"min": 1, "max": 12}),
        ("order_month", [3.0, 3.0, 4.0, np.nan], {"max_null_ratio": 0.3, "min": 1, "max": 12}),
        ("day_of_week", [0, 5, 5, 0], {"min": 0, "max": 6}),
        ("weekday", [7, 3, 3, 7], {"min": 1, "max": 7}),
        ("dayOfWeek", [2, 2, 3, 3], {"min": 0, "max": 7}),  # neither 0 nor 7 seen: both conventions
        ("day", [4, 4, 30, 30], {"min": 1, "max": 31}),
        ("pickup_hour", [23, 23, 22, 22], {"min": 0, "max": 23}),
        (
            "month",
            [0, 0, 500, 500],
            {"min": {"value": 0, "severity": "warn"}, "max": {"value": 550, "severity": "warn"}},
        ),
        (
            "hours",
            [1.5, 1.5, 7.5, 7.5],
            {"min": {"value": 0.9, "severity": "warn"}, "max": {"value": 8.1, "severity": "warn"}},
        ),
        (
            "is_weekday",
            [0, 0, 1, 1],
            {"min": {"value": 0, "severity": "warn"}, "max": {"value": 2, "severity": "warn"}},
        ),
    ],
)
def test_a_calendar_field_gets_the_calendar_s_whole_range_blocking(name, values, rules):
    """Named as one and holding whole numbers inside it, from any window; otherwise a number as any."""
    frames = {"2025-12-30": pd.DataFrame({name: values, TARGET: [0, 1, 0, 1]})}
    suggested, notes = suggest_contract(frames, TARGET, "classification")
    assert suggested["columns"][name] == rules
    assert ("the calendar's" in notes.get(name, "")) is isinstance(rules["min"], int)


def test_a_calendar_field_declared_categorical_allows_the_whole_calendar():
    frames = {"2025-12-30": pd.DataFrame({"month": [12, 12], TARGET: [0, 1]})}
    suggested, _ = suggest_contract(frames, TARGET, "classification", {"month": "categorical"})
    assert suggested["columns"]["month"] == {"allowed": list(range(1, 13))}
