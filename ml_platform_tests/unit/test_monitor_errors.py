"""`ml-platform monitor` when something is missing or wrong, in-process (``ml_platform.cli.main.main``).

What it cannot read beside the log (the instance of DAGSTER_HOME, the pipelines file) is one note
on stderr, and the day's traffic is still printed (exit 0; `--json` stays JSON); no log for the
model is one sentence (exit 0, as `ml-platform models` says "no versions"); a refused argument or
model name is the CLI's one line on stderr with exit code 2. Never a traceback.
"""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from ml_platform.backends.local import LocalModelStore
from ml_platform.cli import main as cli
from ml_platform.serving.prediction_log import Entry, LogSettings, PredictionLog

# With feedback, monitor reads each day's live metrics from the instance of DAGSTER_HOME.
FEEDBACK = """\
pipelines:
  - name: shop
    partitions: {start: "2026-01-01"}
    monitoring: {}
    feedback: {landing: shop_outcomes, id: order_id}
"""
HEADER = "day         requests      rows  refused"


@pytest.fixture
def logged(tmp_path, monkeypatch):
    """A store with today's log of ``shop`` (one request of two rows), its pipeline with feedback."""
    store = LocalModelStore(root=str(tmp_path / "store"))
    log = PredictionLog(store.write_bytes, {"shop": LogSettings()}, lambda *a: None, flush_s=60)
    rows = pd.DataFrame({"x": [1.0, 2.0]})
    log.record(Entry("shop", "v1", "r1", dt.datetime.now(dt.UTC), 2.0, rows, np.array(["a", "b"])))
    log.close()
    (tmp_path / "pipelines.yaml").write_text(FEEDBACK)
    monkeypatch.setenv("ML_PLATFORM_PIPELINES", str(tmp_path / "pipelines.yaml"))
    monkeypatch.setenv("ML_PLATFORM_MODEL_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return tmp_path


def monitor(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["monitor", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "Error:" not in out
    return code, out, err


def traffic_printed(out: str) -> None:
    lines = out.splitlines()
    assert lines[0] == "shop: the prediction log, 1 day(s) (drift: features over their threshold vs the"
    assert lines[2].startswith(HEADER)
    (row,) = lines[3:]
    assert row.split()[1:3] == ["1", "2"] and row.endswith("v1")  # 1 request, 2 rows, answered by v1


def test_the_log_alone_prints_the_day_and_no_note(logged, capsys):
    code, out, err = monitor(capsys, "--model", "shop")
    assert (code, err) == (0, "")
    traffic_printed(out)


def _home_missing(root):
    return root / "no-such-home"


def _home_a_file(root):
    (root / "home").write_text("not a folder")
    return root / "home"


def _home_not_yaml(root):
    (root / "home").mkdir()
    (root / "home" / "dagster.yaml").write_text("storage: [\n")
    return root / "home"


def _home_wrong_config(root):
    (root / "home").mkdir()
    (root / "home" / "dagster.yaml").write_text("storage:\n  no_such_storage: {}\n")
    return root / "home"


@pytest.mark.parametrize("home", [_home_missing, _home_a_file, _home_not_yaml, _home_wrong_config])
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_an_unreadable_dagster_home_is_one_note_and_the_traffic_without_live_metrics(
    logged, capsys, monkeypatch, home, as_json
):
    monkeypatch.setenv("DAGSTER_HOME", str(home(logged)))
    code, out, err = monitor(capsys, "--model", "shop", *(["--json"] if as_json else []))
    assert code == 0
    (note,) = err.splitlines()  # one line, even where Dagster's message runs over many
    assert note.startswith("note: no live metrics: the instance of DAGSTER_HOME cannot be read (")
    assert len(note) < 400
    if as_json:
        (day,) = json.loads(out)  # the note stays out of the JSON
        assert (day["requests"], day["rows"], day["version_names"]) == (1, 2, ["v1"])
        assert "live_metric" not in day
    else:
        traffic_printed(out)


@pytest.mark.parametrize(
    ("pipelines", "why"),
    [
        ("missing.yaml", "does not exist (set ML_PLATFORM_PIPELINES to a pipelines.yaml)"),
        (".", "cannot be read: [Errno 21] Is a directory"),
        ("broken.yaml", "line 2, column 1 is not valid YAML"),
    ],
    ids=["missing", "a_folder", "not_yaml"],
)
def test_an_unreadable_pipelines_file_is_one_note_and_the_traffic_with_default_drift(
    logged, capsys, monkeypatch, pipelines, why
):
    (logged / "broken.yaml").write_text("pipelines: [\n")
    monkeypatch.setenv("ML_PLATFORM_PIPELINES", str(logged / pipelines))
    monkeypatch.setenv("DAGSTER_HOME", str(logged / "no-such-home"))  # not read: no pipeline says feedback
    code, out, err = monitor(capsys, "--model", "shop")
    assert code == 0
    (note,) = err.splitlines()
    assert note.startswith("note: the pipelines file was not read (") and why in note
    assert note.endswith("): drift by PSI at 0.2, no live metrics")
    traffic_printed(out)
    code, out, _ = monitor(capsys, "--model", "shop", "--json")
    assert code == 0 and json.loads(out)[0]["rows"] == 2


@pytest.mark.parametrize("model", ["shop", "no_such_model"], ids=["nothing_logged", "unknown_model"])
def test_no_prediction_log_is_one_sentence(logged, capsys, monkeypatch, model):
    empty = logged / "empty-store"
    code, out, err = monitor(capsys, "--model", model, "--store-dir", str(empty))
    assert (code, err) == (0, "")
    assert out == f"no prediction log of {model} in {empty / model} (is `ml-platform serve` logging it?)\n"
    # The store that has shop's log: a model it does not know has none either.
    code, out, err = monitor(capsys, "--model", "no_such_model")
    assert (code, err) == (0, "")
    assert out.startswith("no prediction log of no_such_model in ") and out.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--model", "shop", "--days", "0"], "--days must be >= 1"),
        (["--model", "shop", "--days", "-3"], "--days must be >= 1"),
        (["--model", "../shop"], "'..' cannot be used as a storage path segment (store key segment)"),
    ],
    ids=["days_0", "days_negative", "model_outside_the_store"],
)
def test_a_refused_argument_is_one_line_on_stderr_and_exit_code_2(logged, capsys, args, said):
    code, out, err = monitor(capsys, *args)
    assert (code, out) == (2, "")
    assert err == f"ml-platform: error: {said}\n"
