"""What a sensor or the CLI reads of an asset's materialization goes through the records of
ml_platform/asset_records.py, whose keys the assets write: a display label renamed at the writer can
no longer silently stop a reader."""

from __future__ import annotations

import ast

import pandas as pd

from ml_platform import outcomes
from ml_platform.asset_records import DeployedRecord, LiveMetricsRecord, OutcomesRecord, live_metric_key
from ml_platform.assets.monitoring import live_metadata, outcomes_metadata
from ml_platform_tests.support.constants import ROOT
from ml_platform_tests.unit.test_import_rules import module_files

# Modules that write metadata (assets, checks) may build it as they like; every other module that
# touches a materialization's metadata must read it through a record.
WRITERS = ("ml_platform.assets", "ml_platform.checks")


def _metadata_reads(path) -> list[tuple[int, str]]:
    """Each ``X.metadata`` of a module that is not the argument of a ``….from_metadata(...)`` call."""
    tree = ast.parse(path.read_text(), str(path))
    allowed = {
        id(arg)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_metadata"
        for arg in node.args
    }
    return [
        (node.lineno, ast.unparse(node))
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "metadata"
        and id(node) not in allowed
        # an object's own field, and the standard library's importlib.metadata, are not materializations
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "importlib"))
    ]


def test_readers_read_materializations_through_records_only():
    found = {
        name: reads
        for name, path in module_files(ROOT).items()
        if not name.startswith(WRITERS) and (reads := _metadata_reads(path))
    }
    assert found == {}, f"metadata read by label, not through ml_platform.asset_records: {found}"


def test_the_static_check_sees_a_read_by_label(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('labelled = record.asset_materialization.metadata.get("Days labelled")\n')
    good = tmp_path / "good.py"
    good.write_text("days = OutcomesRecord.from_metadata(record.asset_materialization.metadata).days_labelled\n")
    assert [line for line, _ in _metadata_reads(bad)] == [1]
    assert _metadata_reads(good) == []


def _served_and_labels() -> tuple[pd.DataFrame, pd.DataFrame]:
    served = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(6)],
            "row": 0,
            "version": "v1",
            "prediction": ["yes", "no", "yes", "no", "yes", "no"],
        }
    )
    labels = pd.DataFrame(
        {
            "request_id": ["r0", "r1", "r2", "r3"],
            "row": 0,
            "label": ["yes", "no", "no", "no"],
            "arrived": "2026-01-11",
        }
    )
    return served, labels


def test_live_metrics_writes_every_key_the_decay_sensor_and_monitor_read():
    served, labels = _served_and_labels()
    table = outcomes.live_scores(served, labels, "2026-01-10", "classification", ["no", "yes"], "accuracy")
    metadata = live_metadata(table, "accuracy")
    assert set(LiveMetricsRecord.keys()) <= set(metadata)
    assert live_metric_key("accuracy") in metadata
    record = LiveMetricsRecord.from_metadata(metadata)
    assert (record.answered_rows, record.labelled_rows) == (6, 4)
    assert record.score("accuracy") == 0.75  # 3 of the 4 labelled rows right


def test_outcomes_writes_the_days_the_late_label_sensor_reads():
    frame = pd.DataFrame({"prediction_day": ["2026-01-09", "2026-01-10", "2026-01-10"], "label": [1, 0, 1]})
    metadata = outcomes_metadata(frame, "landing/outcomes/2026-01-11.csv")
    assert set(OutcomesRecord.keys()) <= set(metadata)
    assert OutcomesRecord.from_metadata(metadata).days_labelled == ("2026-01-09", "2026-01-10")


def test_records_round_trip_their_metadata():
    deployed = DeployedRecord("v3", True, "promoted: better", "/store/m/v3", "f1", 0.8125)
    assert DeployedRecord.from_metadata(deployed.to_metadata()) == deployed
    live = LiveMetricsRecord(100, 40, 0.4, {"accuracy": 0.9, "log_loss": 0.31})
    assert LiveMetricsRecord.from_metadata(live.to_metadata()) == live
    assert OutcomesRecord.from_metadata({}) == OutcomesRecord(())
