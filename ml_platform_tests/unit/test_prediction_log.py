"""The prediction log's writer on a real local model store: parts per model and day with every
answered row, excluded columns never written, sampling (seeded), retention on a set clock, and a
store that cannot be written: rows dropped and counted, never an exception on the request path; a
rollout's two models in one log (role, answered), and parts written before them."""

import datetime as dt
import io
import queue
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_platform.backends.local import LocalModelStore
from ml_platform.serving.prediction_log import COLUMNS, Entry, LogSettings, PredictionLog, part_frame, read_log
from ml_platform_tests.support.clock import SetClock, local_time


def entry(model: str, request_id: str, rows: int, day: str = "2026-12-03") -> Entry:
    frame = pd.DataFrame({"age": np.arange(rows, dtype=float), "plan": ["basic"] * rows, "ssn": ["123"] * rows})
    proba = pd.DataFrame({"no": np.full(rows, 0.8), "yes": np.full(rows, 0.2)})
    at = dt.datetime.fromisoformat(f"{day}T12:00:00+00:00")
    return Entry(model, "v1", request_id, at, 3.5, frame, np.array(["no"] * rows), proba)


def test_every_row_is_written_per_model_and_day_without_excluded_columns(tmp_path: Path):
    store = LocalModelStore(root=str(tmp_path / "store"))
    counts: list[tuple[str, str, int]] = []
    log = PredictionLog(
        store.write_bytes,
        {"churn": LogSettings(exclude=("ssn",))},
        lambda model, outcome, rows: counts.append((model, outcome, rows)),
        flush_s=0.05,
    )
    for i in range(20):
        log.record(entry("churn", f"r{i}", 1 + i % 3))
    log.record(entry("churn", "yesterday", 2, day="2026-12-02"))
    log.record(entry("other", "o1", 4))
    log.close()
    logged = read_log(store.read_bytes, store.list_children, "churn")
    assert sorted(store.list_children("churn/prediction_log")) == ["2026-12-02", "2026-12-03"]
    assert len(logged) == sum(1 + i % 3 for i in range(20)) + 2
    assert set(logged["request_id"]) == {f"r{i}" for i in range(20)} | {"yesterday"}
    assert "ssn" not in logged.columns and {"age", "plan", "proba_no", "proba_yes", "prediction"} <= set(logged)
    assert logged.groupby("request_id")["row"].max().to_dict()["r2"] == 2  # rows 0, 1, 2 of request r2
    assert (logged["version"] == "v1").all() and (logged["latency_ms"] == 3.5).all()
    assert str(logged["logged_at"].dtype) == "datetime64[us, UTC]"
    other = read_log(store.read_bytes, store.list_children, "other")
    assert "ssn" in other.columns  # excluded for churn only
    assert sum(rows for model, outcome, rows in counts if model == "churn" and outcome == "written") == len(logged)


def test_a_sample_keeps_about_its_share(tmp_path: Path):
    """A seeded draw: the same requests are kept on every run, about a quarter of them."""
    store = LocalModelStore(root=str(tmp_path / "store"))
    settings = {"churn": LogSettings(sample=0.25)}
    log = PredictionLog(store.write_bytes, settings, lambda *a: None, flush_s=0.05, rng=random.Random(7))
    for i in range(800):
        log.record(entry("churn", f"r{i}", 1))
    log.close()
    kept = set(read_log(store.read_bytes, store.list_children, "churn")["request_id"])
    draws = random.Random(7)
    assert kept == {f"r{i}" for i in range(800) if draws.random() < 0.25}
    assert 170 < len(kept) < 230  # 200 expected


def test_a_store_that_cannot_be_written_drops_and_counts(tmp_path: Path):
    root = tmp_path / "store"
    (root / "churn").mkdir(parents=True)
    (root / "churn" / "prediction_log").write_text("a file where the log's folder should be")
    store = LocalModelStore(root=str(root))
    counts: list[tuple[str, str, int]] = []
    log = PredictionLog(store.write_bytes, {}, lambda *a: counts.append(a), flush_s=0.05)
    for i in range(5):
        log.record(entry("churn", f"r{i}", 2))  # never raises
    log.close()
    assert sum(rows for _, outcome, rows in counts if outcome == "dropped") == 10
    assert not any(outcome == "written" for _, outcome, _ in counts)


def test_a_column_of_mixed_text_and_numbers_is_written_as_text(tmp_path: Path):
    store = LocalModelStore(root=str(tmp_path / "store"))
    mixed = entry("churn", "m1", 3)
    mixed.rows["plan"] = ["basic", 7, None]  # what a loose categorical column may hold
    log = PredictionLog(store.write_bytes, {}, lambda *a: None, flush_s=0.05)
    log.record(mixed)
    log.close()
    logged = read_log(store.read_bytes, store.list_children, "churn")
    assert logged["plan"].tolist()[:2] == ["basic", "7"] and pd.isna(logged["plan"].iloc[2])


def test_batch_scoring_ids_come_from_the_declared_column_and_bad_ones_are_refused():
    import dagster as dg
    import pytest

    from ml_platform.assets.scoring import row_ids
    from ml_platform.loading import pipelines_from_text
    from ml_platform.runtime import PipelineRuntime
    from ml_platform.settings import load_settings

    text = "pipelines:\n  - name: shop\n    target: y\n    scoring: {landing: to_score, id: order_id}\n"
    settings = load_settings(environ={})
    pipeline = PipelineRuntime(pipelines_from_text(text, "pipelines.yaml", settings)[0], settings)
    rows = pd.DataFrame({"order_id": ["A-1", "A-2", "A-3"], "x": [1.0, 2.0, 3.0]})
    assert row_ids(pipeline, rows, "2026-12-03") == ["A-1", "A-2", "A-3"]
    for bad, says in (
        (rows.drop(columns="order_id"), "scoring.id: 'order_id' is not a column of scoring_data 2026-12-03"),
        (rows.assign(order_id=["A-1", None, "A-3"]), "'order_id' is missing on 1 row(s) of 2026-12-03 (first: row 1)"),
        (rows.assign(order_id=["A-1", "A-1", "A-3"]), "'order_id' repeats 1 value(s) on 2026-12-03 (first: 'A-1')"),
    ):
        with pytest.raises(dg.Failure) as raised:
            row_ids(pipeline, bad, "2026-12-03")
        assert says in raised.value.description


ZONE = "Europe/Berlin"
TODAY = "2026-03-10"  # in Berlin; the log's days are Berlin's


def retention_log(store: LocalModelStore, clock: SetClock, list_children=None) -> PredictionLog:
    return PredictionLog(
        store.write_bytes,
        {"churn": LogSettings(timezone=ZONE, retention_days=3), "other": LogSettings()},
        lambda *a: None,
        flush_s=0.05,
        list_children=list_children or store.list_children,
        delete_tree=store.delete_tree,
        clock=clock,
    )


def old_days(store: LocalModelStore) -> list[str]:
    """Six day folders of each model, TODAY and the five days before it."""
    days = [(dt.date.fromisoformat(TODAY) - dt.timedelta(days=n)).isoformat() for n in range(6)]
    for day in days:
        store.write_bytes(f"churn/prediction_log/{day}/old.bin", b"x")
        store.write_bytes(f"other/prediction_log/{day}/old.bin", b"x")
    return sorted(days)


def test_retention_keeps_today_and_the_days_before_it_in_the_logs_time_zone(tmp_path: Path):
    """retention_days 3 at 00:30 in Berlin (still yesterday in UTC): TODAY and the two days before it
    stay, older day folders go when the log starts; other models' logs stay."""
    store = LocalModelStore(root=str(tmp_path / "store"))
    days = old_days(store)
    log = retention_log(store, SetClock(local_time(TODAY, "00:30", ZONE)))
    log.record(entry("churn", "r1", 2, day=TODAY))
    log.close()  # the retention ran when the log started, before the first part
    assert store.list_children("churn/prediction_log") == days[-3:]
    assert store.list_children("other/prediction_log") == days
    assert len(read_log(store.read_bytes, store.list_children, "churn")) == 2  # the request, written


def test_retention_runs_again_once_the_clock_moved_an_hour(tmp_path: Path):
    """The log's clock moves a day on: the next look (hourly by that clock) deletes one more day."""
    store = LocalModelStore(root=str(tmp_path / "store"))
    days = old_days(store)
    clock = SetClock(local_time(TODAY, "12:00", ZONE))
    looked: queue.Queue = queue.Queue()

    def list_children(prefix: str) -> list[str]:
        children = store.list_children(prefix)
        looked.put(clock())  # when the retention looked, by its clock
        return children

    log = retention_log(store, clock, list_children)
    assert looked.get(timeout=30) == local_time(TODAY, "12:00", ZONE)  # at start
    clock.move(days=1)
    assert looked.get(timeout=30) == local_time(TODAY, "12:00", ZONE) + dt.timedelta(days=1)
    log.close()
    assert store.list_children("churn/prediction_log") == days[-2:]
    assert store.list_children("other/prediction_log") == days


# -- a rollout's two models in one log -----------------------------------------------------------------


def rollout_day(store: LocalModelStore) -> None:
    """One day of a shadow rollout, as the server logs it: r1 and r2 answered by production (r2 of 2
    rows), the candidate's rows of both (not answered), a request production refused (422) and one
    the candidate failed on after production answered it; then, in a part written before rollouts
    (no role, no answered), r0."""
    log = PredictionLog(store.write_bytes, {}, lambda *a: None, flush_s=600)
    for request_id, rows in (("r1", 1), ("r2", 2), ("r3", 1)):
        answered = entry("churn", request_id, rows)
        log.record(answered)
        if request_id != "r3":
            shadow = entry("churn", request_id, rows)
            shadow.version, shadow.role, shadow.answered = "v2", "candidate", False
            shadow.predictions = np.array(["yes"] * rows)
            log.record(shadow)
    at = dt.datetime.fromisoformat("2026-12-03T12:00:00+00:00")
    log.record(Entry.refusal("churn", "v1", "bad", at, 1.0, 3, "missing feature column(s) 'age'"))
    log.record(Entry.refusal("churn", "v2", "r3", at, 2.0, 1, "RuntimeError: boom", "candidate", False))
    log.close()
    old = entry("churn", "r0", 1)
    old_part = part_frame([old]).drop(columns=["role", "answered"])
    buffer = io.BytesIO()
    old_part.to_parquet(buffer, index=False)
    store.write_bytes("churn/prediction_log/2026-12-03/20261203T000000000000Z-1-000001.parquet", buffer.getvalue())


def test_every_row_says_its_models_role_and_whether_it_answered(tmp_path: Path):
    """Both models' rows of a request are in the log, each with its role and whether it answered; a
    part written before rollouts reads as production's answers; the readers of "what was answered"
    keep the answers only (the summary, the answered rows, the ids outcomes are matched to)."""
    from ml_platform import traffic
    from ml_platform.outcomes import live_scores, logged_ids

    store = LocalModelStore(root=str(tmp_path / "store"))
    rollout_day(store)
    day = traffic.read_day(store.read_bytes, store.list_children, "churn", "2026-12-03")
    assert {"role", "answered"} <= set(COLUMNS)
    assert day["answered"].dtype == bool and set(day["role"]) == {"production", "candidate"}
    roles = day.groupby(["request_id", "role", "answered"]).size().to_dict()
    assert roles == {
        ("bad", "production", True): 3,
        ("r0", "production", True): 1,  # the old part: production's answer
        ("r1", "candidate", False): 1,
        ("r1", "production", True): 1,
        ("r2", "candidate", False): 2,
        ("r2", "production", True): 2,
        ("r3", "candidate", False): 1,
        ("r3", "production", True): 1,
    }
    shadow = day[day["role"] == "candidate"]
    assert shadow["prediction"].tolist()[:3] == ["yes"] * 3 and shadow["proba_yes"].notna().sum() == 3
    assert shadow[shadow["request_id"] == "r3"]["refused"].tolist() == ["RuntimeError: boom"]

    answered = traffic.answered(day)
    assert len(answered) == 8 and answered["answered"].all()
    summary = traffic.summarize(day)
    assert (summary.requests, summary.rows, summary.refused_requests, summary.refused_rows) == (5, 8, 1, 3)
    assert [v["Version"] for v in summary.versions] == ["v1"] and traffic.main_version(day) == "v1"
    assert len(traffic.features(day)) == 5  # the answered rows that met the signature

    ids = logged_ids(store.read_bytes, store.list_children, "churn", ["2026-12-03"])
    assert sorted(zip(ids["request_id"], ids["row"])) == [("r0", 0), ("r1", 0), ("r2", 0), ("r2", 1), ("r3", 0)]
    outcomes = pd.DataFrame(
        {"request_id": ["r1", "r2", "r2"], "row": [0, 0, 1], "label": ["no", "no", "yes"], "arrived": "2026-12-05"}
    )
    scores = live_scores(day, outcomes, "2026-12-03", "classification", ["no", "yes"], "accuracy")
    assert scores["Version"].tolist() == ["v1"] and scores["Rows"].tolist() == [5]
    assert scores["Labelled"].tolist() == [3] and scores["accuracy"].tolist() == [pytest.approx(2 / 3)]


def test_a_requests_draw_keeps_both_models_rows_or_neither(tmp_path: Path):
    """With a sample, a request is drawn once: its production and candidate rows are kept together."""
    store = LocalModelStore(root=str(tmp_path / "store"))
    log = PredictionLog(
        store.write_bytes, {"churn": LogSettings(sample=0.5)}, lambda *a: None, flush_s=600, rng=random.Random(3)
    )
    for i in range(200):
        kept = log.draw("churn")
        log.record(entry("churn", f"r{i}", 1), kept)
        shadow = entry("churn", f"r{i}", 1)
        shadow.role, shadow.answered = "candidate", False
        log.record(shadow, kept)
    log.close()
    logged = read_log(store.read_bytes, store.list_children, "churn")
    per_request = logged.groupby("request_id")["role"].apply(frozenset)
    assert set(per_request) == {frozenset({"production", "candidate"})} and 70 < len(per_request) < 130


def test_probabilities_of_two_models_classes_and_a_refusal_land_on_their_own_rows():
    """The writer stacks probabilities at once when every entry has the same classes (two models'
    equal columns, as a rollout's production and candidate give them) and row by row otherwise."""
    from ml_platform.checked_model import Probabilities

    def answered(request_id: str, columns: pd.Index, values: list[list[float]]) -> Entry:
        first = entry("m", request_id, len(values))
        first.probabilities = Probabilities(np.array(values), columns)
        return first

    production, candidate = pd.Index(["no", "yes"]), pd.Index(["no", "yes"])
    same = [answered("a", production, [[0.9, 0.1]]), answered("a", candidate, [[0.6, 0.4], [0.3, 0.7]])]
    frame = part_frame(same)
    assert frame[["proba_no", "proba_yes"]].to_numpy().tolist() == [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]

    other = answered("b", pd.Index(["low", "high"]), [[0.2, 0.8]])
    refused = Entry.refusal("m", "v1", "c", dt.datetime(2026, 12, 3, tzinfo=dt.UTC), 1.0, 1, "bad row")
    frame = part_frame([*same, other, refused])
    assert frame["proba_yes"].tolist()[:3] == [0.1, 0.4, 0.7] and frame["proba_yes"].isna().tolist()[3:] == [True] * 2
    assert frame["proba_high"].isna().tolist() == [True, True, True, False, True]
    assert frame["proba_high"].tolist()[3] == 0.8
