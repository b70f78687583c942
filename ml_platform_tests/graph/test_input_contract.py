"""The input contract in the graph (`dg.materialize`): the schema a pipeline declares or its first
model pins, the window that must agree on its columns, and the signature each model records and the
UI shows."""

from __future__ import annotations

import textwrap

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform.errors import ConfigError
from ml_platform.settings import load_settings
from ml_platform.signature import Signature
from ml_platform.spec import parse_pipelines
from ml_platform_tests.support.constants import DAYS, END_DAY, MODEL_NAME, TARGET
from ml_platform_tests.support.pipelines import built_from
from ml_platform_tests.support.platform import Platform
from ml_platform_tests.support.results import (
    check_descriptions,
    check_results,
    materialized,
    step_errors,
)

FEATURES = ["mean radius", "mean texture", "mean smoothness"]


def declared(features: str, extra: str = "") -> object:
    return built_from(f"""
        pipelines:
          - name: demo
            landing: .
            model_name: {MODEL_NAME}
            model: {{estimator: random_forest, params: {{n_estimators: 20}}}}
            features: {features}
            {extra}
    """)


def run(platform: Platform, built, selection: str, day: str = END_DAY, range_: bool = False):
    """``selection`` of ``built`` for ``day``, or for all of DAYS in one run (``range_``)."""
    tags = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]}
    return dg.materialize(
        built.definitions,
        selection=selection,
        instance=platform.instance,
        resources=platform.resources,
        partition_key=None if range_ else day,
        tags=tags if range_ else None,
        raise_on_error=False,
    )


def test_declared_features_are_the_only_model_inputs_in_the_declared_order(seeded):
    built = declared(str(list(reversed(FEATURES))).replace("'", '"'))
    ingest = run(seeded, built, "key:demo/raw_data", range_=True)
    assert ingest.success, step_errors(ingest)
    # Every day has 27 more columns than declared: ignored, with a warning, not fed to the model.
    assert "ignored unexpected column(s) 'mean perimeter'" in check_descriptions(ingest)["schema_matches"]
    result = run(seeded, built, "key:demo/training_data+")
    assert result.success, step_errors(result)
    version = seeded.store.production(MODEL_NAME)
    signature = Signature.of_version(version.metadata)
    assert signature.columns == list(reversed(FEATURES))
    assert version.metadata["feature_columns"] == list(reversed(FEATURES))
    model, _ = seeded.store.load(MODEL_NAME)
    assert list(model.feature_names_in_) == list(reversed(FEATURES))


def test_a_declared_kind_is_enforced_at_ingest(platform, demo_frame):
    # Numbers declared categorical are categories (a store id); declared boolean, they are refused.
    built = declared('["mean radius", {"mean texture": boolean}]')
    platform.write_day(END_DAY, demo_frame.head(80))
    result = run(platform, built, "key:demo/raw_data")
    assert check_results(result)["schema_matches"] is False
    assert "column 'mean texture' is numeric, the schema says boolean" in check_descriptions(result)["schema_matches"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('["a", {"b": textual}]', "features.1.kind"),
        ('["a", {"b": numeric, "c": numeric}]', "give a column name, or one 'name: kind' pair"),
        ('["a", "a"]', "lists 'a' more than once"),
        ('["a", "target"]', "lists the target column 'target'"),
    ],
)
def test_bad_declared_features_are_named_at_load(text, says):
    with pytest.raises(ConfigError) as raised:
        parse_pipelines(
            textwrap.dedent(f"""
            pipelines:
              - name: churn
                features: {text}
        """),
            "test.yaml",
            load_settings(),
        )
    assert "pipelines[0] (churn): features" in str(raised.value) and says in str(raised.value)


def test_schema_policy_is_validated_at_load():
    with pytest.raises(ConfigError) as raised:
        parse_pipelines(
            "pipelines:\n  - name: churn\n    schema: {extra_columns: drop}\n", "test.yaml", load_settings()
        )
    assert "pipelines[0] (churn): schema.extra_columns" in str(raised.value)


def test_the_first_model_refuses_a_window_whose_days_disagree_on_columns(seeded):
    # No model yet: nothing pins the schema, but the window must still agree.
    for day in DAYS[-2:]:
        frame = pd.read_parquet(seeded.landing / f"{day}.parquet")
        seeded.write_day(day, frame.assign(segment="north"))
    assert seeded.ingest_range(DAYS).success
    result = seeded.train()
    assert not result.success and not materialized(result)
    errors = step_errors(result)
    assert f"disagree on their columns: 'segment' is in {DAYS[-2]}, {DAYS[-1]} but not in {DAYS[0]} …" in errors
    assert seeded.store.production(MODEL_NAME) is None


def test_the_first_model_refuses_a_column_whose_kind_differs_between_days(seeded):
    frame = pd.read_parquet(seeded.landing / f"{END_DAY}.parquet")
    seeded.write_day(END_DAY, frame.assign(**{"mean radius": np.where(frame["mean radius"] > 14, "large", "small")}))
    assert seeded.ingest_range(DAYS).success
    result = seeded.train()
    assert not result.success
    assert f"column 'mean radius' is numeric on {DAYS[0]}" in step_errors(result)
    assert f"but categorical on {END_DAY}" in step_errors(result)


def test_every_model_records_its_signature_and_the_ui_shows_it(seeded, demo_frame):
    assert seeded.ingest_range(DAYS).success
    result = seeded.train()
    assert result.success, step_errors(result)
    trained = result.asset_value(["demo", "trained_model"])
    features = [c for c in demo_frame.columns if c != TARGET]
    assert trained.fit.signature.columns == features and set(trained.fit.signature.kinds.values()) == {"numeric"}
    assert trained.fit.signature.classes == (0, 1)
    for node in ("demo__trained_model", "demo__deployed_model"):
        metadata = result.asset_materializations_for_node(node)[0].metadata
        table = metadata["Signature"].value
        assert [r.data["Column"] for r in table.records] == features
        assert {r.data["Kind"] for r in table.records} == {"numeric"}
        assert trained.fit.signature.digest in metadata["Signature digest"].value
    stored = Signature.of_version(seeded.store.production(MODEL_NAME).metadata)
    assert stored == trained.fit.signature
    metrics = result.asset_materializations_for_node("demo__model_metrics")[0].metadata
    assert metrics["Signature vs production"].value == "no production model yet"
