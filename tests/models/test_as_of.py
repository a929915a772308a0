"""`--as-of`: the warehouse as it stood at a past instant, from the lake's versions and history.

The lake was extracted Wed 2026-02-18 12:00 UTC (W7). The past instant is Wed 2026-02-04 12:00
(W5). Weeks (Mondays): W1 01-05, W2 01-12, W3 01-19, W4 01-26, W5 02-02, W6 02-09, W7 02-16.
LIN-A = LIN-26-000001, LIN-B = LIN-26-000002.

  T1  LIN-A, done Tue 01-06 (W1)                                   W1 in both builds
  T2  LIN-A, in progress 01-20, done Tue 02-10 (W6, after as_of)   open (in progress) at as_of
  T3  LIN-A, created and done after as_of (02-09, 02-10)           absent at as_of
  T4  done Tue 02-03 (W5) in LIN-A, moved to LIN-B on 02-12        LIN-A W5 at as_of, LIN-B now
  T5  LIN-A, done 01-13 (W2), missing since 02-15                  W2 at as_of, nowhere now
  T6  LIN-B, done without history, updated 02-11; no older version backlog at as_of; W6 now
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date

import duckdb
import pytest

from scrums_velocity.errors import ConfigError
from scrums_velocity.models.runner import BuildSettings, build
from tests.models.lakes import Lake, ts

PAST = ts("2026-02-04 12:00")
A, B = "LIN-26-000001", "LIN-26-000002"


def scenario() -> Lake:
    lake = Lake()
    t = lake.task
    t("TSK-26-000001", A, "2026-01-05 09:00", "done",
      changes=[("2026-01-06 10:00", "backlog", "done")])  # fmt: skip
    t("TSK-26-000002", A, "2026-01-05 09:00", "done",
      changes=[("2026-01-20 10:00", "backlog", "in_progress"),
               ("2026-02-10 10:00", "in_progress", "done")])  # fmt: skip
    t("TSK-26-000003", A, "2026-02-09 09:00", "done",
      changes=[("2026-02-10 11:00", "backlog", "done")])  # fmt: skip
    t("TSK-26-000004", B, "2026-01-05 09:00", "done", updated="2026-02-12 09:00",
      changes=[("2026-02-03 10:00", "backlog", "done")])  # fmt: skip
    lake.version("TSK-26-000004", A, "2026-01-05 09:00", "backlog")
    lake.version("TSK-26-000004", A, "2026-02-03 10:00", "done")
    t("TSK-26-000005", A, "2026-01-05 09:00", "done", missing_since="2026-02-15 00:00",
      changes=[("2026-01-13 10:00", "backlog", "done")])  # fmt: skip
    t("TSK-26-000006", B, "2026-01-05 09:00", "done", updated="2026-02-11 09:00")
    return lake


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    now_dir = scenario().write(tmp_path_factory.mktemp("now"))
    build(BuildSettings(data_dir=now_dir))
    past_dir = scenario().write(tmp_path_factory.mktemp("past"))
    build(BuildSettings(data_dir=past_dir, as_of=PAST))
    return (
        duckdb.connect(str(now_dir / "warehouse.duckdb"), read_only=True),
        duckdb.connect(str(past_dir / "warehouse.duckdb"), read_only=True),
    )


def weekly(con, lin):
    return dict(
        con.execute(
            "select week_start, completed from marts.lin_velocity_weekly "
            "where service_line_id = ? order by week_start",
            [lin],
        ).fetchall()
    )


def W(n: int) -> date:
    return date(2026, 1, 5 + 7 * (n - 1)) if n <= 4 else date(2026, 2, 2 + 7 * (n - 5))


def test_the_past_build_counts_as_things_stood_then(builds):
    _, past = builds
    assert weekly(past, A) == {W(1): 1, W(2): 1, W(3): 0, W(4): 0, W(5): 1}
    assert weekly(past, B) == {W(1): 0, W(2): 0, W(3): 0, W(4): 0, W(5): 0}
    assert past.execute("select as_of from marts.build_info").fetchall()[0][0] == PAST


def test_the_current_build_counts_the_lake_as_it_is(builds):
    now, _ = builds
    assert weekly(now, A) == {W(1): 1, W(2): 0, W(3): 0, W(4): 0, W(5): 0, W(6): 2, W(7): 0}
    assert weekly(now, B) == {W(1): 0, W(2): 0, W(3): 0, W(4): 0, W(5): 1, W(6): 1, W(7): 0}


def test_nothing_after_the_instant_counts(builds):
    _, past = builds
    assert past.execute(
        "select count(*) from marts.task_completions where closed_at > ?", [PAST]
    ).fetchall() == [(0,)]
    assert past.execute(
        "select count(*) from intermediate.int_task_status_changes where changed_at > ?", [PAST]
    ).fetchall() == [(0,)]
    assert past.execute("select max(week_start) from marts.lin_velocity_weekly").fetchall() == [
        (W(5),)
    ]


def test_open_work_and_states_at_the_instant(builds):
    _, past = builds
    assert past.execute(
        "select task_id, service_line_id, status from marts.lin_aging_wip order by task_id"
    ).fetchall() == [("TSK-26-000002", A, "in_progress"), ("TSK-26-000006", B, "backlog")]
    assert past.execute(
        "select task_id, service_line_id, status, missing_since from intermediate.int_tasks_as_of "
        "order by task_id"
    ).fetchall() == [
        ("TSK-26-000001", A, "done", None),
        ("TSK-26-000002", A, "in_progress", None),
        ("TSK-26-000004", A, "done", None),
        ("TSK-26-000005", A, "done", None),
        ("TSK-26-000006", B, "backlog", None),
    ]


def test_a_time_before_the_first_task_is_refused(tmp_path):
    data_dir = scenario().write(tmp_path)
    with pytest.raises(ConfigError, match=r"is before the lake's first task \(2026-01-05T09:00"):
        build(BuildSettings(data_dir=data_dir, as_of=ts("1900-01-01 00:00")))
    assert not (data_dir / "warehouse.duckdb").exists()


def test_a_time_after_the_latest_extraction_is_refused(tmp_path):
    data_dir = scenario().write(tmp_path)
    with pytest.raises(ConfigError, match=r"is after the lake's latest extraction \(2026-02-18"):
        build(BuildSettings(data_dir=data_dir, as_of=ts("2026-02-18 12:01")))
    assert not (data_dir / "warehouse.duckdb").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "3026-01-01T00:00:00Z",
            "Error: --as-of 3026-01-01T00:00:00+00:00 is after the lake's latest extraction "
            "(2026-02-18T12:00:00+00:00): use an earlier time, or extract first",
        ),
        (
            "yesterday",
            "Error: --as-of must be an ISO timestamp like 2026-11-23T09:00:00Z; got 'yesterday'",
        ),
        (
            "2026-02-01T00:00:00",
            "Error: --as-of needs a time zone (append Z for UTC); got '2026-02-01T00:00:00'",
        ),
    ],
)
def test_cli_as_of_errors_are_one_line_and_quick(tmp_path, value, message):
    data_dir = scenario().write(tmp_path)
    started = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "build", "--data-dir", str(data_dir),
         "--as-of", value],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert r.returncode == 2
    assert r.stderr.splitlines() == [message]
    assert not (data_dir / "warehouse.duckdb").exists()
    assert elapsed < 30  # generous: the refusal itself reads one column (figures in the README)
