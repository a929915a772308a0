"""Golden tests of the drill-down mart (marts.lin_week_tasks), agents' completions and names.

The lake is test_velocity_golden's scenario plus, written here:
- TSK-99's earlier states: in LIN-A (seen 01-13 09:00), then in LIN-B from 02-02 10:00 (W5);
- TSK-300 (LIN-B) done in W6 by an agent (AGT-26-000001) after a person started it;
- TSK-301 (LIN-B) done in W6 by a person after an agent moved it to in_review;
- TSK-302 moved from LIN-B to no LIN in W6 (seen in LIN-B 02-09 09:00, unlinked 02-10 09:00);
- names configured for LIN-A and LIN-B only; LIN-Y falls back to its id.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from scrums_velocity.config import ModelConfig
from scrums_velocity.models.runner import BuildSettings, build
from tests.models.lakes import ts
from tests.models.test_velocity_golden import AS_OF, W, rows, scenario

A, B, Y = "LIN-26-000001", "LIN-26-000002", "LIN-26-000003"
NAMES = ((A, "Payments"), (B, "Platform <Core> & 'Ops'"))


def extended():
    lake = scenario()
    lake.version("TSK-26-000099", A, "2026-01-13 09:00", "backlog")
    lake.version("TSK-26-000099", B, "2026-02-02 10:00", "backlog")
    lake.task(
        "TSK-26-000300",
        B,
        "2026-02-09 08:00",
        "done",
        changes=[
            ("2026-02-09 09:00", "backlog", "in_progress", "USR-26-000002"),
            ("2026-02-11 15:00", "in_progress", "done", "AGT-26-000001"),
        ],
    )
    lake.task(
        "TSK-26-000301",
        B,
        "2026-02-09 08:00",
        "done",
        changes=[
            ("2026-02-10 09:00", "backlog", "in_review", "AGT-26-000001"),
            ("2026-02-12 09:00", "in_review", "done", "USR-26-000003"),
        ],
    )
    lake.task("TSK-26-000302", None, "2026-02-09 08:00", "backlog", updated="2026-02-10 09:00")
    lake.version("TSK-26-000302", B, "2026-02-09 09:00", "backlog")
    lake.version("TSK-26-000302", None, "2026-02-10 09:00", "backlog")
    return lake


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    data_dir: Path = tmp_path_factory.mktemp("week-tasks")
    extended().write(data_dir)
    build(
        BuildSettings(
            data_dir=data_dir,
            as_of=AS_OF,
            model=ModelConfig(baseline_weeks=4),
            service_lines=NAMES,
        )
    )
    return duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)


def events(con, lin, week):
    return [
        (r["event"], r["task_id"], r["event_at"], r["changed_by"], r["other_service_line_id"])
        for r in rows(
            con,
            """select * from marts.lin_week_tasks where service_line_id = ? and week_start = ?
               order by event, event_at, task_id""",
            lin,
            week,
        )
    ]


def test_a_week_of_completions_cancellations_and_reopens(con):
    assert events(con, A, W[3]) == [
        ("cancelled", "TSK-26-000014", ts("2026-01-21 12:00"), "USR-26-000001", None),
        ("completed", "TSK-26-000004", ts("2026-01-19 18:00"), "USR-26-000001", None),
        ("completed", "TSK-26-000005", ts("2026-01-20 04:00"), "USR-26-000001", None),
        ("completed", "TSK-26-000006", ts("2026-01-20 14:00"), "USR-26-000001", None),
        ("completed", "TSK-26-000007", ts("2026-01-21 00:00"), "USR-26-000001", None),
    ]
    # A8 was reopened on Monday of W2 and counts as completed once, in W4 (with A9, no history)
    assert events(con, A, W[2]) == [
        ("completed", "TSK-26-000003", ts("2026-01-12 00:30"), "USR-26-000001", None),
        ("reopened", "TSK-26-000008", ts("2026-01-12 10:00"), "USR-26-000001", None),
    ]
    assert events(con, A, W[4]) == [
        ("completed", "TSK-26-000008", ts("2026-01-27 12:00"), "USR-26-000001", None),
        ("completed", "TSK-26-000009", ts("2026-01-28 12:00"), None, None),
    ]
    assert events(con, A, W[6]) == []  # the zero week: nothing behind it


def test_moves_in_and_out_of_a_lin(con):
    moved = ("moved_out", "TSK-26-000099", ts("2026-02-02 10:00"), None, B)
    assert moved in events(con, A, W[5])
    assert ("moved_in", "TSK-26-000099", ts("2026-02-02 10:00"), None, A) in events(con, B, W[5])
    # completed in W5 for its current LIN, B: one of B's 2 completions that week
    b5 = [e[1] for e in events(con, B, W[5]) if e[0] == "completed"]
    assert sorted(b5) == ["TSK-26-000099", "TSK-26-000140"]
    # moved from B to no LIN: out of B, and no row for a null LIN
    assert events(con, B, W[6]) == [
        ("completed", "TSK-26-000300", ts("2026-02-11 15:00"), "AGT-26-000001", None),
        ("completed", "TSK-26-000301", ts("2026-02-12 09:00"), "USR-26-000003", None),
        ("moved_out", "TSK-26-000302", ts("2026-02-10 09:00"), None, None),
    ]
    assert rows(con, "select * from marts.lin_week_tasks where service_line_id is null") == []


def test_every_weekly_number_has_its_tasks(con):
    mismatched = rows(
        con,
        """
        select w.service_line_id, w.week_start, w.completed, w.cancelled, w.reopened,
               count(t.task_id) filter (where t.event = 'completed') as c,
               count(t.task_id) filter (where t.event = 'cancelled') as x,
               count(t.task_id) filter (where t.event = 'reopened') as r
        from marts.lin_velocity_weekly w
        left join marts.lin_week_tasks t using (service_line_id, week_start)
        group by all
        having c <> w.completed or x <> w.cancelled or r <> w.reopened""",
    )
    assert mismatched == []


def test_completions_by_agents(con):
    b = rows(
        con,
        """select week_start, completed, completed_by_agent, agent_share
           from marts.lin_velocity_weekly where service_line_id = ? order by week_start""",
        B,
    )
    # W6: TSK-300 closed by an agent, TSK-301 by a person (an agent only moved it before)
    assert [(r["completed"], r["completed_by_agent"]) for r in b] == [
        (10, 0),
        (10, 0),
        (10, 0),
        (10, 0),
        (2, 0),
        (2, 1),
        (0, 0),
    ]
    assert b[5]["agent_share"] == pytest.approx(0.5)
    assert b[6]["agent_share"] is None  # nothing completed: no share
    latest = rows(
        con,
        "select completed_by_agent, agent_share from marts.lin_velocity_latest "
        "where service_line_id = ?",
        B,
    )[0]
    assert (latest["completed_by_agent"], latest["agent_share"]) == (1, 0.5)
    by_agent = rows(
        con,
        "select task_id from marts.lin_week_tasks where by_agent order by task_id",
    )
    assert [r["task_id"] for r in by_agent] == ["TSK-26-000300"]


def test_names_from_the_configuration_with_the_id_as_fallback(con):
    names = {
        r["service_line_id"]: r["service_line_name"]
        for r in rows(con, "select * from marts.lin_velocity_latest")
    }
    assert names == {A: "Payments", B: "Platform <Core> & 'Ops'", Y: Y}
    for mart in ("lin_velocity_weekly", "lin_aging_wip", "lin_week_tasks"):
        got = rows(
            con,
            f"select distinct service_line_id, service_line_name from marts.{mart} order by 1",
        )
        assert got, mart
        assert all(names[r["service_line_id"]] == r["service_line_name"] for r in got), mart
    assert rows(con, "select * from staging.stg_service_lines order by 1") == [
        {"service_line_id": A, "service_line_name": "Payments"},
        {"service_line_id": B, "service_line_name": "Platform <Core> & 'Ops'"},
    ]


def test_open_work_carries_its_link(con):
    aging = rows(con, "select task_id, external_url, service_line_name from marts.lin_aging_wip")
    assert {r["task_id"] for r in aging} == {"TSK-26-000015", "TSK-26-000016"}
    assert all(r["service_line_name"] == "Payments" for r in aging)


def test_the_marts_document_the_new_columns(con):
    undocumented = rows(
        con,
        """select table_name, column_name from duckdb_columns()
           where schema_name = 'marts' and table_name in ('lin_week_tasks', 'lin_velocity_weekly')
             and (comment is null or comment = '')""",
    )
    assert undocumented == []
