"""Golden tests for process-behaviour signals and Monte Carlo forecasts, and the backtest."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from scrums_velocity.api_server import generate
from scrums_velocity.api_server.lake_export import write_lake
from scrums_velocity.config import ModelConfig
from scrums_velocity.models.forecast import (
    NO_THROUGHPUT,
    days_to_finish,
    forecast_line,
    rng_for,
)
from scrums_velocity.models.runner import BuildSettings, build
from tests.conftest import NOW
from tests.models.lakes import Lake, ts

W1 = date(2026, 1, 5)  # a Monday
X1 = [10, 12, 8, 10, 2]
X2 = [20, 24, 16, 20, 19, 18, 17, 16, 15, 14, 13, 12]


def weekly_lake() -> Lake:
    """LINs whose weekly completions are exactly the series above (done on Wednesdays)."""
    lake = Lake()
    n = 1
    for lin, series in (("LIN-26-000001", X1), ("LIN-26-000002", X2)):
        for week, count in enumerate(series):
            monday = W1 + timedelta(weeks=week)
            for _ in range(count):
                lake.task(
                    f"TSK-26-{n:06d}",
                    lin,
                    f"{monday} 08:00",
                    "done",
                    changes=[(f"{monday + timedelta(days=2)} 12:00", "backlog", "done")],
                )
                n += 1
    # a LIN with open work and nothing completed in the window: no forecast
    for _ in range(3):
        lake.task(
            f"TSK-26-{n:06d}",
            "LIN-26-000003",
            f"{W1} 09:00",
            "in_progress",
            changes=[(f"{W1} 10:00", "backlog", "in_progress")],
        )
        n += 1
    return lake


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    path = tmp_path_factory.mktemp("xmr")
    as_of = ts(f"{W1 + timedelta(weeks=12, days=1)} 12:00")  # Tuesday after W12: W1-W12 complete
    lake = weekly_lake()
    lake.extracted = str(as_of)[:16]
    lake.write(path)
    build(BuildSettings(data_dir=path, model=ModelConfig(baseline_weeks=4), as_of=as_of))
    return duckdb.connect(str(path / "warehouse.duckdb"), read_only=True)


def signals(con, lin):
    return (
        con.table("marts.lin_velocity_signals")
        .filter(f"service_line_id = '{lin}'")
        .order("week_start")
        .pl()
    )


def test_xmr_limits_and_a_point_below_the_lower_limit(con):
    s = signals(con, "LIN-26-000001").head(5)  # later weeks are zero-filled up to as_of
    assert s["completed"].to_list() == X1
    w5 = s.row(4, named=True)
    # centre = mean(10, 12, 8, 10) = 10; moving ranges 2, 4, 2 -> 8/3
    assert w5["centre_line"] == pytest.approx(10.0)
    assert w5["mean_moving_range"] == pytest.approx(8 / 3)
    assert w5["upper_limit"] == pytest.approx(10 + 2.66 * 8 / 3)
    assert w5["lower_limit"] == pytest.approx(10 - 2.66 * 8 / 3)  # 2.9067
    assert w5["signal_below_lower_limit"] is True
    assert w5["reason"] == "2 completed, below the lower limit of 2.9/week"
    assert s["has_signal"].to_list() == [False] * 4 + [True]
    assert s["centre_line"][:4].to_list() == [None] * 4  # fewer than 4 baseline weeks


def test_eight_below_the_centre_and_three_of_four_nearer_the_lower_limit(con):
    s = signals(con, "LIN-26-000002")
    flags = list(
        zip(
            s["signal_8_below_centre"],
            s["signal_3_of_4_near_lower"],
            s["signal_below_lower_limit"],
            strict=True,
        )
    )
    # W10: W8, W9 and W10 are nearer the lower limit (16 < 17.17, 15 < 16.17, 14 < 15.17)
    assert flags[:9] == [(False, False, False)] * 9
    assert flags[9] == (False, True, False)
    assert flags[10] == (False, True, False)
    assert flags[11] == (True, True, False)  # W5-W12 each below their centre line
    w12 = s.row(11, named=True)
    assert w12["centre_line"] == pytest.approx(14.5)  # mean(16, 15, 14, 13)
    assert w12["lower_limit"] == pytest.approx(14.5 - 2.66)  # moving ranges all 1
    assert w12["reason"] == (
        "8 weeks in a row below the usual 14.5/week; "
        "3 of the last 4 weeks nearer the lower limit (11.8) than the usual 14.5/week"
    )


def test_a_lin_without_throughput_gets_no_forecast_not_a_crash(con):
    f = (
        con.table("marts.lin_forecast")
        .filter("service_line_id = 'LIN-26-000003'")
        .pl()
        .row(0, named=True)
    )
    assert f["open_tasks"] == 3
    assert f["note"] == NO_THROUGHPUT
    assert (f["p50_date"], f["p85_date"], f["p95_date"]) == (None, None, None)
    assert f["by_2w_p50"] == 0


def test_constant_throughput_gives_the_exact_answer():
    daily = np.full(84, 2)  # two a day, every day
    start = date(2026, 3, 2)
    row = forecast_line("LIN-26-000009", daily, 10, start, seed=1)
    assert (row["p50_days"], row["p85_days"], row["p95_days"]) == (5, 5, 5)
    assert row["p85_date"] == date(2026, 3, 7)
    assert (row["by_2w_p50"], row["by_2w_p85"], row["by_4w_p85"]) == (28, 28, 56)
    assert row["note"] is None
    assert forecast_line("LIN-26-000009", daily, 0, start, seed=1)["p95_days"] == 0


def test_percentiles_on_a_two_valued_window():
    # each day completes 0 or 1 with equal chance; 1 task: P(done by day d) = 1 - 0.5^d
    # -> 50%: day 1; 85%: day 3 (1 - 1/8 = 0.875); 95%: day 5 (1 - 1/32 = 0.969)
    row = forecast_line("LIN-26-000008", np.array([0, 1] * 42), 1, date(2026, 3, 2), seed=3)
    assert (row["p50_days"], row["p85_days"], row["p95_days"]) == (1, 3, 5)


def test_forecasts_are_deterministic_and_vectorised():
    daily = rng_for(0, "window").poisson(3, 84)
    a = days_to_finish(daily, 60, 10_000, rng_for(7, "LIN-26-000001"))
    b = days_to_finish(daily, 60, 10_000, rng_for(7, "LIN-26-000001"))
    c = days_to_finish(daily, 60, 10_000, rng_for(8, "LIN-26-000001"))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (10_000,)
    assert np.isfinite(a).all()
    assert 15 <= np.median(a) <= 25  # about 60 / 3 days
    assert days_to_finish(np.zeros(84), 5, 100, rng_for(7, "x")) is None


def test_backtest_calibration_on_stationary_throughput(tmp_path):
    ds = generate(tasks=20_000, seed=61, now=NOW)
    write_lake(ds, tmp_path)
    build(BuildSettings(data_dir=tmp_path))
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    bt = con.table("marts.lin_forecast_backtest").pl()
    steady = [s.id for s in ds.service_lines if s.profile == "steady"]
    pooled = bt.filter(pl.col("service_line_id").is_in(steady))
    assert pooled.height > 300
    met85 = pooled["hit_p85"].mean()
    print(
        f"backtest on {pooled.height} forecasts of {len(steady)} stationary LINs: "
        f"85% date met {met85:.1%}, 50% {pooled['hit_p50'].mean():.1%}, 95% {pooled['hit_p95'].mean():.1%}"
    )
    assert 0.80 <= met85 <= 0.90
    assert pooled["hit_p50"].mean() < met85 < pooled["hit_p95"].mean()
