"""int_task_status_changes worked out by hand: repeated entries count once, ties at one instant are
ordered by from/to status, and each entry knows when the task's next change came."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from scrums_velocity.models.runner import BuildSettings, build
from tests.models.lakes import Lake, ts

LIN = "LIN-26-000001"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    lake = Lake()
    reopen = ("2026-01-08 10:00", "done", "in_progress")
    start = ("2026-01-06 10:00", "backlog", "in_progress")
    lake.task(  # its start and its reopen each returned twice
        "TSK-26-000001",
        LIN,
        "2026-01-05 09:00",
        "done",
        changes=[
            start,
            start,
            ("2026-01-07 10:00", "in_progress", "done"),
            reopen,
            reopen,
            ("2026-01-09 10:00", "in_progress", "done"),
        ],
    )
    lake.task(  # started and finished at one instant, listed in the wrong order
        "TSK-26-000002",
        LIN,
        "2026-01-05 09:00",
        "done",
        changes=[
            ("2026-01-07 12:00", "in_progress", "done", "USR-26-000002"),
            ("2026-01-07 12:00", "backlog", "in_progress", "USR-26-000001"),
        ],
    )
    data_dir = lake.write(tmp_path_factory.mktemp("changes"))
    build(BuildSettings(data_dir=data_dir))
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    yield con
    con.close()


def test_repeated_entries_count_once_and_ties_go_by_status(warehouse):
    rows = warehouse.execute(
        """select task_id, entry_no, from_status, to_status, changed_at, next_changed_at
           from intermediate.int_task_status_changes order by task_id, entry_no"""
    ).fetchall()
    t1, t2 = "TSK-26-000001", "TSK-26-000002"
    assert rows == [
        (t1, 1, "backlog", "in_progress", ts("2026-01-06 10:00"), ts("2026-01-07 10:00")),
        (t1, 2, "in_progress", "done", ts("2026-01-07 10:00"), ts("2026-01-08 10:00")),
        (t1, 3, "done", "in_progress", ts("2026-01-08 10:00"), ts("2026-01-09 10:00")),
        (t1, 4, "in_progress", "done", ts("2026-01-09 10:00"), None),
        (t2, 1, "backlog", "in_progress", ts("2026-01-07 12:00"), ts("2026-01-07 12:00")),
        (t2, 2, "in_progress", "done", ts("2026-01-07 12:00"), None),
    ]


def test_the_weekly_numbers_count_a_repeated_reopen_once(warehouse):
    week = warehouse.execute(
        """select completed, reopened from marts.lin_velocity_weekly
           where service_line_id = ? and week_start = ?""",
        [LIN, date(2026, 1, 5)],
    ).fetchall()
    assert week == [(2, 1)]
    events = warehouse.execute(
        """select event, task_id, event_at from marts.lin_week_tasks
           where event = 'reopened'""",
    ).fetchall()
    assert events == [("reopened", "TSK-26-000001", ts("2026-01-08 10:00"))]
    # the first start of task 1 (its cycle begins there) and of task 2, started and done at once
    cycles = warehouse.execute(
        "select task_id, cycle_time_hours from marts.task_completions order by task_id"
    ).fetchall()
    assert cycles == [("TSK-26-000001", 72.0), ("TSK-26-000002", 0.0)]
