"""day_work: one day's ingest and check, and a range of them in real worker processes."""

import hashlib
import os

import pandas as pd
import pytest

from ml_platform import constants, day_work
from ml_platform.errors import CorruptLandingFileError, EmptyLandingFileError
from ml_platform.quality.rules import Contract, rule_names
from ml_platform_tests.support.constants import TARGET

CONTRACT = day_work.DayContract(target=TARGET, schema=None, contract=Contract.of(0.1), task="classification")


def _frame(rows: int = 40, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [float(i + offset) for i in range(rows)],
            "segment": ["a" if i % 3 else "b" for i in range(rows)],
            TARGET: [i % 2 for i in range(rows)],
        }
    )


def _landing(tmp_path, days: int) -> list[tuple[str, str, str]]:
    jobs = []
    for n in range(days):
        day = f"2026-01-{n + 1:02d}"
        source = tmp_path / "landing" / f"{day}.parquet"
        source.parent.mkdir(exist_ok=True)
        _frame(30 + n, offset=n).to_parquet(source, index=False)
        jobs.append((day, str(source), str(tmp_path / "stored" / f"{day}.parquet")))
    return jobs


def test_a_parquet_day_is_stored_as_its_own_bytes_and_reads_back_as_parsed(tmp_path):
    ((day, source, destination),) = _landing(tmp_path, 1)
    ingested = day_work.ingest_day(day, source, destination, CONTRACT)
    data = open(source, "rb").read()
    assert open(destination, "rb").read() == data
    assert ingested.sha256 == hashlib.sha256(data).hexdigest() and ingested.size == len(data)
    assert ingested.summary.rows == 30 and ingested.summary.nulls == {"x": 0, "segment": 0, TARGET: 0}
    assert len(ingested.summary.head) == constants.PREVIEW_ROWS
    assert [r.name for r in ingested.checked.results] == list(rule_names("classification"))
    assert all(r.passed for r in ingested.checked.results)


@pytest.mark.parametrize(
    ("write", "holds"),
    [
        pytest.param(lambda frame, path: frame.to_csv(path.with_suffix(".csv"), index=False), lambda f: f, id="csv"),
        # A stored index becomes a column, first, as pandas' reset_index makes it.
        pytest.param(
            lambda frame, path: frame.set_index("x").to_parquet(path),
            lambda f: f[["x", "segment", TARGET]],
            id="parquet-with-index",
        ),
    ],
)
def test_other_days_are_encoded_as_the_io_manager_does(tmp_path, write, holds):
    source = tmp_path / "2026-01-01.parquet"
    write(_frame(), source)
    source = next(tmp_path.glob("2026-01-01.*"))
    destination = tmp_path / "stored.parquet"
    day_work.ingest_day("2026-01-01", str(source), str(destination))
    # The frame the test wrote, not the parser's reading of it: the stored day holds its rows.
    pd.testing.assert_frame_equal(pd.read_parquet(destination), holds(_frame()))


def test_a_range_runs_in_worker_processes_in_the_jobs_order(tmp_path):
    jobs = [(*job, CONTRACT) for job in _landing(tmp_path, 6)]
    seen = []
    results = day_work.each_day(day_work.ingest_day, jobs, 2, done=lambda n, r: seen.append(n))
    assert [r.day for r in results] == [job[0] for job in jobs]
    assert [r.summary.rows for r in results] == [30 + n for n in range(6)]
    assert seen == [1, 2, 3, 4, 5, 6]
    for _day, source, destination, _ in jobs:
        pd.testing.assert_frame_equal(pd.read_parquet(destination), pd.read_parquet(source))
    # The work ran in worker processes, started by the pool.
    assert day_work._POOL is not None and day_work._POOL._processes


def test_a_bad_file_in_a_range_raises_its_typed_error_naming_it(tmp_path):
    jobs = _landing(tmp_path, 4)
    open(jobs[2][1], "wb").write(b"not parquet at all")
    open(jobs[3][1], "wb").close()
    with pytest.raises((CorruptLandingFileError, EmptyLandingFileError)) as raised:
        day_work.each_day(day_work.ingest_day, jobs, 2)
    assert jobs[2][1] in str(raised.value) or jobs[3][1] in str(raised.value)


def test_a_kept_check_result_is_used_only_for_the_same_file_and_contract(tmp_path):
    ((day, source, destination),) = _landing(tmp_path, 1)
    ingested = day_work.ingest_day(day, source, destination, CONTRACT)
    day_work.remember_checked(destination, CONTRACT, ingested.checked)
    assert day_work.recall_checked(destination, CONTRACT) == ingested.checked
    stricter = day_work.DayContract(target=TARGET, schema=None, contract=Contract.of(0.0), task="classification")
    assert day_work.recall_checked(destination, stricter) is None
    _frame(12).to_parquet(destination, index=False)  # the stored day is replaced
    assert day_work.recall_checked(destination, CONTRACT) is None


def test_one_usable_core_means_no_worker_processes():
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert day_work.processes_for(30, 10 * 2**20) <= 1
    finally:
        os.sched_setaffinity(0, before)
    assert day_work.processes_for(30, 10 * 2**20) == min(30, len(before))
    assert day_work.processes_for(1, 10 * 2**20) == 1
