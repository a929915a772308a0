"""Golden tests: a hand-built lake whose every expected number is worked out by hand below.

Calendar (2026, ISO weeks starting Monday): W1 = 01-05, W2 = 01-12, W3 = 01-19, W4 = 01-26,
W5 = 02-02, W6 = 02-09, W7 = 02-16 (the current week: as_of is Wed 02-18 12:00 UTC).

LIN-A completions in UTC: W1 2 (A1, A2 at Sun 23:30), W2 1 (A3 at Mon 00:30), W3 4 (A4-A7),
W4 2 (A8 reopened then done again, A9 done without history), W5 3, W6 0, W7 1.
In America/New_York (UTC-5) A2 and A3 both fall on Sunday evening of W1: W1 3, W2 0.
LIN-B completes 10 a week in W1-W4, then 2 in W5 (one of them moved in from LIN-A), 0 in W6.
LIN-Y is born in W5. An unlinked task and a deleted (missing) task count nowhere.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from scrums_velocity.config import ModelConfig
from scrums_velocity.models.runner import BuildSettings, build
from tests.models.lakes import Lake, ts

AS_OF = ts("2026-02-18 12:00")
W = {i: date(2026, 1, 5) + timedelta(weeks=i - 1) for i in range(1, 8)}


def scenario() -> Lake:
    lake = Lake()
    t = lake.task
    # ---- LIN-A --------------------------------------------------------------------------
    t(
        "TSK-26-000001",
        "LIN-26-000001",
        "2026-01-05 09:00",
        "done",
        changes=[
            ("2026-01-05 10:00", "backlog", "in_progress"),
            ("2026-01-06 10:00", "in_progress", "done"),
        ],
    )
    t(
        "TSK-26-000002",
        "LIN-26-000001",
        "2026-01-05 09:00",
        "done",
        changes=[
            ("2026-01-07 09:00", "backlog", "in_progress"),
            ("2026-01-11 23:30", "in_progress", "done"),
        ],
    )
    t(
        "TSK-26-000003",
        "LIN-26-000001",
        "2026-01-05 09:00",
        "done",
        changes=[
            ("2026-01-09 12:00", "backlog", "in_progress"),
            ("2026-01-12 00:30", "in_progress", "done"),
        ],
    )
    # W3: cycle times 10, 20, 30, 40 h; lead times 11, 21, 31, 41 h; review 1, 2, 3, 4 h
    for n, hours in zip((4, 5, 6, 7), (10, 20, 30, 40), strict=True):
        done = ts("2026-01-19 08:00") + timedelta(hours=hours)
        review_from = done - timedelta(hours=n - 3)
        t(
            f"TSK-26-00000{n}",
            "LIN-26-000001",
            "2026-01-19 07:00",
            "done",
            changes=[
                ("2026-01-19 08:00", "backlog", "in_progress"),
                (f"{review_from:%Y-%m-%d %H:%M}", "in_progress", "in_review"),
                (f"{done:%Y-%m-%d %H:%M}", "in_review", "done"),
            ],
        )
    # reopened: done in W1, reopened Mon of W2, done again in W4 (counts once, in W4)
    t(
        "TSK-26-000008",
        "LIN-26-000001",
        "2026-01-05 09:00",
        "done",
        changes=[
            ("2026-01-05 12:00", "backlog", "in_progress"),
            ("2026-01-07 12:00", "in_progress", "done"),
            ("2026-01-12 10:00", "done", "in_progress"),
            ("2026-01-27 12:00", "in_progress", "done"),
        ],
    )
    # done without history: completion = updated_at (W4), flagged
    t("TSK-26-000009", "LIN-26-000001", "2026-01-26 09:00", "done", updated="2026-01-28 12:00")
    for n, hours in ((10, 5), (11, 6), (12, 7)):  # W5: cycle 5, 6, 7 h; lead 6, 7, 8 h
        t(
            f"TSK-26-0000{n}",
            "LIN-26-000001",
            "2026-02-03 08:00",
            "done",
            changes=[
                ("2026-02-03 09:00", "backlog", "in_progress"),
                (f"2026-02-03 {9 + hours:02d}:00", "in_progress", "done"),
            ],
        )
    t(
        "TSK-26-000013",
        "LIN-26-000001",
        "2026-02-16 08:00",
        "done",
        changes=[
            ("2026-02-16 09:00", "backlog", "in_progress"),
            ("2026-02-17 12:00", "in_progress", "done"),
        ],
    )
    # cancelled from the backlog in W3: cancelled, not completed
    t(
        "TSK-26-000014",
        "LIN-26-000001",
        "2026-01-19 09:00",
        "cancelled",
        changes=[("2026-01-21 12:00", "backlog", "cancelled")],
    )
    # WIP: in progress at the end of W5, in review at the end of W6 and now
    t(
        "TSK-26-000015",
        "LIN-26-000001",
        "2026-02-02 09:00",
        "in_review",
        changes=[
            ("2026-02-03 12:00", "backlog", "in_progress"),
            ("2026-02-11 12:00", "in_progress", "in_review"),
        ],
    )
    # never started
    t("TSK-26-000016", "LIN-26-000001", "2026-02-02 09:00", "backlog")
    # deleted from the API (missing): counts nowhere
    t(
        "TSK-26-000017",
        "LIN-26-000001",
        "2026-01-19 09:00",
        "done",
        missing_since="2026-02-10 00:00",
        changes=[("2026-01-20 12:00", "backlog", "done")],
    )
    # unlinked: invisible to velocity
    t(
        "TSK-26-000018",
        None,
        "2026-01-19 09:00",
        "done",
        changes=[("2026-01-20 12:00", "backlog", "done")],
    )
    # ---- LIN-B: 10 a week, then 2, then 0 ------------------------------------------------------
    n = 100
    for week, count in ((1, 10), (2, 10), (3, 10), (4, 10), (5, 1)):
        monday, wednesday = W[week], W[week] + timedelta(days=2)
        for _ in range(count):
            t(
                f"TSK-26-000{n}",
                "LIN-26-000002",
                f"{monday} 08:00",
                "done",
                changes=[
                    (f"{monday} 09:00", "backlog", "in_progress"),
                    (f"{wednesday} 12:00", "in_progress", "done"),
                ],
            )
            n += 1
    # moved from LIN-A to LIN-B (its current LIN): counts for LIN-B in W5
    t(
        "TSK-26-000099",
        "LIN-26-000002",
        "2026-01-13 09:00",
        "done",
        changes=[
            ("2026-02-04 09:00", "backlog", "in_progress"),
            ("2026-02-05 12:00", "in_progress", "done"),
        ],
    )
    # ---- LIN-Y: born in W5, one completion in W6 -------------------------------------------------
    t(
        "TSK-26-000200",
        "LIN-26-000003",
        "2026-02-03 10:00",
        "done",
        changes=[("2026-02-10 12:00", "backlog", "done")],
    )
    return lake


def built(tmp_path: Path, **settings) -> duckdb.DuckDBPyConnection:
    scenario().write(tmp_path)
    build(BuildSettings(data_dir=tmp_path, as_of=AS_OF, model=ModelConfig(**settings)))
    return duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)


def rows(con, sql, *params):
    cur = con.execute(sql, params[0] if params and isinstance(params[0], dict) else list(params))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def weekly(con, lin):
    return rows(
        con,
        "select * from marts.lin_velocity_weekly where service_line_id = ? order by week_start",
        lin,
    )


@pytest.fixture(scope="module")
def utc(tmp_path_factory):
    return built(tmp_path_factory.mktemp("utc"), baseline_weeks=4)


def test_weekly_completions_cancellations_reopens_in_utc(utc):
    a = weekly(utc, "LIN-26-000001")
    assert [r["week_start"] for r in a] == [W[i] for i in range(1, 8)]
    assert [r["completed"] for r in a] == [2, 1, 4, 2, 3, 0, 1]  # zero week W6 is a row with 0
    assert [r["cancelled"] for r in a] == [0, 0, 1, 0, 0, 0, 0]
    assert [r["reopened"] for r in a] == [0, 1, 0, 0, 0, 0, 0]
    assert [r["completed_without_history"] for r in a] == [0, 0, 0, 1, 0, 0, 0]
    assert [r["week_complete"] for r in a] == [True] * 6 + [False]


def test_baseline_ratio_p_value_and_health(utc):
    a = weekly(utc, "LIN-26-000001")
    assert [r["baseline_weeks"] for r in a] == [0, 1, 2, 3, 4, 4, 4]
    assert [r["health"] for r in a] == ["insufficient_history"] * 4 + [
        "healthy",
        "watch",
        "week_in_progress",
    ]
    assert [r["velocity_ratio"] for r in a[:4]] == [None] * 4
    w5, w6, w7 = a[4], a[5], a[6]
    # W5: baseline W1-W4 = [2, 1, 4, 2]
    assert w5["baseline_mean"] == pytest.approx(2.25)
    assert w5["baseline_median"] == pytest.approx(2.0)
    assert w5["baseline_stddev"] == pytest.approx(math.sqrt(4.75 / 3))
    assert w5["velocity_ratio"] == pytest.approx(3 / 2.25)
    lam = 2.25
    assert w5["p_value_below"] == pytest.approx(
        math.exp(-lam) * (1 + lam + lam**2 / 2 + lam**3 / 6)
    )
    # W6: baseline [1, 4, 2, 3], nothing completed: ratio 0 < 0.5 but p = e^-2.5 = 0.082 >= 0.05
    assert w6["baseline_mean"] == pytest.approx(2.5)
    assert w6["baseline_median"] == pytest.approx(2.5)
    assert w6["baseline_stddev"] == pytest.approx(math.sqrt(5 / 3))
    assert w6["velocity_ratio"] == 0
    assert w6["p_value_below"] == pytest.approx(math.exp(-2.5))
    # the current week: no verdict, baseline [4, 2, 3, 0]
    assert w7["velocity_ratio"] is None
    assert w7["p_value_below"] is None
    assert w7["baseline_mean"] == pytest.approx(2.25)


def test_at_risk_and_a_moved_task_counts_for_its_current_lin(utc):
    b = weekly(utc, "LIN-26-000002")
    assert [r["completed"] for r in b] == [10, 10, 10, 10, 2, 0, 0]
    w5, w6 = b[4], b[5]
    assert w5["velocity_ratio"] == pytest.approx(0.2)
    assert w5["p_value_below"] == pytest.approx(61 * math.exp(-10))  # P(X<=2 | 10)
    assert w5["health"] == "at_risk"
    assert w6["baseline_mean"] == pytest.approx(8.0)  # [10, 10, 10, 2]
    assert w6["p_value_below"] == pytest.approx(math.exp(-8))
    assert w6["health"] == "at_risk"


def test_a_young_lin_has_insufficient_history(utc):
    y = weekly(utc, "LIN-26-000003")
    assert [r["week_start"] for r in y] == [W[5], W[6], W[7]]
    assert [r["completed"] for r in y] == [0, 1, 0]
    assert [r["health"] for r in y] == [
        "insufficient_history",
        "insufficient_history",
        "week_in_progress",
    ]


def test_unlinked_and_missing_tasks_count_nowhere_but_in_data_quality(utc):
    lins = {
        r["service_line_id"]
        for r in rows(utc, "select distinct service_line_id from marts.lin_velocity_weekly")
    }
    assert lins == {"LIN-26-000001", "LIN-26-000002", "LIN-26-000003"}
    dq = {
        (r["check_name"], r["workspace_id"]): r
        for r in rows(utc, "select * from marts.data_quality where service_line_id is null")
    }
    assert dq[("unlinked_tasks", "WS-26-000001")]["count"] == 1
    assert dq[("missing_tasks", "WS-26-000001")]["count"] == 1
    assert dq[("done_without_history", None)]["count"] == 1


def test_latest_week_streak_and_week_to_date(utc):
    latest = {r["service_line_id"]: r for r in rows(utc, "select * from marts.lin_velocity_latest")}
    a = latest["LIN-26-000001"]
    assert a["week_start"] == W[6]
    assert a["health"] == "watch"
    assert a["weeks_in_health"] == 1
    assert a["health_since"] == W[6]
    assert a["current_week_start"] == W[7]
    assert a["week_fraction_elapsed"] == pytest.approx(2.5 / 7)  # Mon 00:00 -> Wed 12:00
    assert a["wtd_completed"] == 1
    assert a["wtd_expected"] == pytest.approx(2.25 * 2.5 / 7)
    assert a["wtd_ratio"] == pytest.approx(1 / (2.25 * 2.5 / 7))
    b = latest["LIN-26-000002"]
    assert (b["health"], b["weeks_in_health"], b["health_since"]) == ("at_risk", 2, W[5])
    assert latest["LIN-26-000003"]["health"] == "insufficient_history"
    assert latest["LIN-26-000003"]["wtd_expected"] is None


def test_wip_at_week_end_and_cycle_time_percentiles(utc):
    flow = rows(
        utc,
        "select * from marts.lin_flow_weekly where service_line_id = 'LIN-26-000001' order by week_start",
    )
    # A3 in progress over the W1 boundary; A8 reopened across W2 and W3; A15 from W5 on
    assert [r["wip_at_week_end"] for r in flow] == [1, 1, 1, 0, 1, 1, 1]
    w3 = flow[2]
    assert w3["completed"] == 4
    assert w3["cycle_time_p50_hours"] == pytest.approx(25.0)
    assert w3["cycle_time_p85_hours"] == pytest.approx(35.5)  # 30 + 0.55 * (40 - 30)
    assert w3["lead_time_p50_hours"] == pytest.approx(26.0)
    assert w3["lead_time_p85_hours"] == pytest.approx(36.5)
    assert w3["in_review_p50_hours"] == pytest.approx(2.5)
    assert flow[5]["cycle_time_p50_hours"] is None  # nothing completed in W6


def test_status_daily_matches_hand_counts_and_week_end_wip(utc):
    day = {
        r["status"]: r["tasks"]
        for r in rows(
            utc,
            "select status, tasks from marts.lin_status_daily where service_line_id = 'LIN-26-000001' and day = ?",
            date(2026, 2, 10),
        )
    }
    # done: A1-A12 (A9 counts as done from its creation: it has no history); A15 in progress
    assert day == {"done": 12, "backlog": 1, "in_progress": 1, "in_review": 0, "cancelled": 1}
    sundays = rows(
        utc,
        """
        select f.week_start, f.wip_at_week_end, sum(d.tasks) as daily
        from marts.lin_flow_weekly f join marts.lin_status_daily d
          on d.service_line_id = f.service_line_id and d.day = f.week_start + 6
         and d.status in ('in_progress', 'in_review')
        where f.week_complete group by all""",
    )
    assert sundays
    assert all(r["wip_at_week_end"] == r["daily"] for r in sundays)


def test_week_end_wip_equals_an_independent_asof_join(utc):
    """The mart's WIP, recomputed here from the raw history with an ASOF join."""
    asof = rows(
        utc,
        """
        with weeks as (select * from intermediate.int_lin_weeks),
        tasks as (select * from staging.stg_tasks where missing_since is null and service_line_id is not null),
        history as (select * from staging.stg_task_history),
        first_entry as (select task_id, arg_min(from_status, changed_at) as initial from history group by all),
        pairs as (
            select w.service_line_id, w.week_start, least(w.week_end_at, $as_of) as t,
                   tasks.task_id, coalesce(f.initial, tasks.status) as initial
            from weeks w join tasks on tasks.service_line_id = w.service_line_id
                and tasks.created_at <= least(w.week_end_at, $as_of)
            left join first_entry f using (task_id)
        ),
        status as (
            select p.service_line_id, p.week_start, coalesce(h.to_status, p.initial) as status
            from pairs p asof left join history h on h.task_id = p.task_id and p.t >= h."changed_at"
        )
        select service_line_id, week_start, count(*) filter (where status in ('in_progress', 'in_review')) as wip
        from status group by all""",
        {"as_of": AS_OF},
    )
    flow = {
        (r["service_line_id"], r["week_start"]): r["wip_at_week_end"]
        for r in rows(utc, "select * from marts.lin_flow_weekly")
    }
    assert len(asof) == len(flow)
    for r in asof:
        assert flow[(r["service_line_id"], r["week_start"])] == r["wip"], r


def test_aging_wip_against_the_lins_p85(utc):
    aging = {r["task_id"]: r for r in rows(utc, "select * from marts.lin_aging_wip")}
    assert set(aging) == {"TSK-26-000015", "TSK-26-000016"}
    started = aging["TSK-26-000015"]
    assert started["age_basis"] == "since_started"
    assert started["age_hours"] == pytest.approx(15 * 24)  # 02-03 12:00 -> 02-18 12:00
    # cycle times of W3-W6 completions: 5, 6, 7, 10, 20, 30, 40, 528 -> p85 = 30 + 0.95 * 10
    assert started["reference_p85_hours"] == pytest.approx(39.5)
    assert started["exceeds_p85"] is True
    backlog = aging["TSK-26-000016"]
    assert backlog["age_basis"] == "since_created"
    assert backlog["age_hours"] == pytest.approx(16 * 24 + 3)
    # lead times: 6, 7, 8, 11, 21, 31, 41, 51, 531 -> p85 = 41 + 0.8 * 10
    assert backlog["reference_p85_hours"] == pytest.approx(49.0)


def test_week_boundaries_move_with_the_time_zone(tmp_path):
    con = built(tmp_path, baseline_weeks=4, timezone="America/New_York")
    a = weekly(con, "LIN-26-000001")
    assert [r["completed"] for r in a] == [3, 0, 4, 2, 3, 0, 1]  # A2 and A3: Sunday evening in NY
    assert a[5]["p_value_below"] == pytest.approx(math.exp(-2.25))  # baseline [0, 4, 2, 3]
    flow = rows(
        con,
        "select wip_at_week_end from marts.lin_flow_weekly where service_line_id = 'LIN-26-000001' order by week_start",
    )
    assert flow[0]["wip_at_week_end"] == 0  # W1 ends Mon 05:00 UTC in NY: A3 was done at 00:30


def test_default_baseline_is_twelve_weeks(tmp_path):
    con = built(tmp_path)
    a = weekly(con, "LIN-26-000001")
    assert [r["baseline_weeks"] for r in a] == [0, 1, 2, 3, 4, 5, 6]
    assert a[5]["baseline_mean"] == pytest.approx((2 + 1 + 4 + 2 + 3) / 5)


def test_columns_carry_their_definitions(utc):
    missing = rows(
        utc,
        """
        select table_name, column_name from duckdb_columns()
        where schema_name = 'marts' and (comment is null or comment = '')""",
    )
    assert missing == []
    comment = rows(
        utc,
        """select comment from duckdb_columns() where table_name = 'lin_velocity_weekly'
                           and column_name = 'p_value_below'""",
    )[0]["comment"]
    assert comment.startswith("Poisson P(X <= completed)")
