"""What a report shows, read from the warehouse's marts (read-only) into polars frames."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from scrums_velocity.errors import BuildError, ConfigError, ReportError
from scrums_velocity.models import open_warehouse, warehouse_path

HEALTH_ORDER = {"at_risk": 0, "watch": 1, "insufficient_history": 2, "healthy": 3}
SPARK_WEEKS = 12
HISTORY_WEEKS = 26
CFD_DAYS = 84


@dataclass
class ReportData:
    week: date
    is_latest_week: bool
    as_of: datetime
    timezone: str
    baseline_weeks: int
    table: pl.DataFrame  # one row per LIN for the report week
    weekly: pl.DataFrame  # lin_velocity_weekly, complete weeks up to the report week
    flow: pl.DataFrame
    daily: pl.DataFrame
    aging: pl.DataFrame
    data_quality: pl.DataFrame
    duplicates: pl.DataFrame
    forecast: pl.DataFrame
    signals: pl.DataFrame
    calibration: pl.DataFrame  # lin_forecast_backtest
    week_tasks: pl.DataFrame  # lin_week_tasks, the drill-down weeks

    @property
    def names(self) -> dict[str, str]:
        """LIN id -> its configured name, or the id itself when it has none."""
        ids = self.table["service_line_id"].to_list()
        got = self.table["service_line_name"].to_list()
        return {lin: name or lin for lin, name in zip(ids, got, strict=True)}

    @property
    def labels(self) -> dict[str, str]:
        """LIN id -> how charts and headings name it: its name, with the id when two LINs share
        that name, the id alone when it has none."""
        names = self.names
        seen: dict[str, int] = {}
        for name in names.values():
            seen[name] = seen.get(name, 0) + 1
        return {
            lin: name if name == lin or seen[name] == 1 else f"{name} ({lin})"
            for lin, name in names.items()
        }

    @property
    def counts(self) -> dict[str, int]:
        vc = self.table["health"].value_counts()
        got = dict(zip(vc["health"], vc["count"], strict=True))
        return {h: int(got.get(h, 0)) for h in HEALTH_ORDER}

    def for_lins(self, lins: set[str]) -> ReportData:
        """The same report restricted to some service lines (a lead's)."""

        def keep(df: pl.DataFrame) -> pl.DataFrame:
            if "service_line_id" not in df.columns:
                return df
            return df.filter(pl.col("service_line_id").is_in(sorted(lins)))

        return ReportData(
            week=self.week,
            is_latest_week=self.is_latest_week,
            as_of=self.as_of,
            timezone=self.timezone,
            baseline_weeks=self.baseline_weeks,
            table=keep(self.table),
            weekly=keep(self.weekly),
            flow=keep(self.flow),
            daily=keep(self.daily),
            aging=keep(self.aging),
            data_quality=keep(self.data_quality).filter(pl.col("service_line_id").is_not_null()),
            duplicates=keep(self.duplicates),
            forecast=keep(self.forecast),
            signals=keep(self.signals),
            calibration=keep(self.calibration),
            week_tasks=keep(self.week_tasks),
        )


def _table(con, name: str) -> pl.DataFrame:
    return con.table(name).pl()


def _unreadable(path: Path, exc: Exception) -> BuildError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return BuildError(
        f"the warehouse {path} is damaged or unreadable ({first}): rebuild it with 'velocity build'"
    )


def load_report_data(data_dir: Path, week: date | None = None) -> ReportData:
    """The report's frames; a warehouse DuckDB cannot read is a BuildError naming the fix."""
    path = warehouse_path(data_dir)
    try:
        marts = _read_marts(path)
    except (duckdb.Error, pl.exceptions.PolarsError, IndexError, KeyError) as exc:
        raise _unreadable(path, exc) from None
    except OSError as exc:
        raise BuildError(f"cannot read the warehouse {path}: {exc.strerror or exc}") from None
    return _assemble(marts, week)


def _read_marts(path: Path) -> dict:
    con = open_warehouse(path)
    try:
        info = _table(con, "marts.build_info").row(0, named=True)
        weekly_all = _table(con, "marts.lin_velocity_weekly")
        latest = _table(con, "marts.lin_velocity_latest")
        flow = _table(con, "marts.lin_flow_weekly")
        daily = _table(con, "marts.lin_status_daily")
        aging = _table(con, "marts.lin_aging_wip")
        dq = _table(con, "marts.data_quality")
        dups = _table(con, "marts.dq_probable_duplicates")
        forecast = _table(con, "marts.lin_forecast")
        signals = _table(con, "marts.lin_velocity_signals")
        calibration = _table(con, "marts.lin_forecast_backtest")
        week_tasks = _table(con, "marts.lin_week_tasks")
    finally:
        con.close()
    return {
        "info": info,
        "weekly_all": weekly_all,
        "latest": latest,
        "flow": flow,
        "daily": daily,
        "aging": aging,
        "dq": dq,
        "dups": dups,
        "forecast": forecast,
        "signals": signals,
        "calibration": calibration,
        "week_tasks": week_tasks,
    }


def _assemble(marts: dict, week: date | None) -> ReportData:
    info, weekly_all, latest = marts["info"], marts["weekly_all"], marts["latest"]
    flow, daily, aging, dq = marts["flow"], marts["daily"], marts["aging"], marts["dq"]
    dups, forecast, signals = marts["dups"], marts["forecast"], marts["signals"]
    calibration = marts["calibration"]
    complete = weekly_all.filter(pl.col("week_complete"))
    if complete.is_empty():
        raise ReportError("the warehouse has no complete week yet: nothing to report")
    latest_week = complete["week_start"].max()
    if week is None:
        week = latest_week
    elif week.weekday() != 0:
        raise ConfigError(f"--week {week} is not a Monday (weeks start on Monday)")
    elif week not in set(complete["week_start"].to_list()):
        raise ConfigError(
            f"--week {week} is not a complete week in the warehouse "
            f"(complete weeks: {complete['week_start'].min()} to {latest_week})"
        )
    is_latest = week == latest_week
    upto = complete.filter(pl.col("week_start") <= week)
    window = upto.filter(pl.col("week_start") > week - timedelta(weeks=HISTORY_WEEKS))
    sparks = (
        upto.filter(pl.col("week_start") > week - timedelta(weeks=SPARK_WEEKS))
        .sort("week_start")
        .group_by("service_line_id", maintain_order=True)
        .agg(pl.col("completed").alias("spark"))
    )
    this_week = upto.filter(pl.col("week_start") == week)
    streak = _streaks(upto, week)
    table = (
        this_week.join(sparks, on="service_line_id", how="left")
        .join(streak, on="service_line_id", how="left")
        .with_columns(pl.col("health").replace_strict(HEALTH_ORDER, default=9).alias("_order"))
    )
    if is_latest:
        wtd = latest.select("service_line_id", "wtd_completed", "wtd_expected", "wtd_ratio")
        table = table.join(wtd, on="service_line_id", how="left")
    else:
        table = table.with_columns(
            pl.lit(None, dtype=pl.Int64).alias("wtd_completed"),
            pl.lit(None, dtype=pl.Float64).alias("wtd_expected"),
            pl.lit(None, dtype=pl.Float64).alias("wtd_ratio"),
        )
    table = table.sort(["_order", "velocity_ratio", "service_line_id"], nulls_last=True).drop(
        "_order"
    )
    week_end = week + timedelta(days=6)
    return ReportData(
        week=week,
        is_latest_week=is_latest,
        as_of=info["as_of"],
        timezone=info["timezone"],
        baseline_weeks=info["baseline_weeks"],
        table=table,
        weekly=window,
        flow=flow.filter((pl.col("week_start") <= week) & pl.col("week_complete")),
        daily=daily.filter(
            (pl.col("day") <= week_end) & (pl.col("day") > week_end - timedelta(days=CFD_DAYS))
        ),
        aging=aging.sort("age_hours", descending=True),
        data_quality=dq,
        duplicates=dups,
        forecast=forecast,
        signals=signals.filter(pl.col("week_start") <= week),
        calibration=calibration,
        week_tasks=_drill_weeks(marts["week_tasks"], week),
    )


def _drill_weeks(frame: pl.DataFrame, week: date) -> pl.DataFrame:
    from scrums_velocity.report.drill import DRILL_WEEKS

    first = week - timedelta(weeks=DRILL_WEEKS - 1)
    return frame.filter((pl.col("week_start") >= first) & (pl.col("week_start") <= week))


def _streaks(weekly: pl.DataFrame, week: date) -> pl.DataFrame:
    """Per LIN: how many weeks up to ``week`` in a row had the same health, and since when."""
    ordered = weekly.sort("service_line_id", "week_start", descending=[False, True])
    current = ordered.filter(pl.col("week_start") == week).select(
        "service_line_id", pl.col("health").alias("_now")
    )
    return (
        ordered.join(current, on="service_line_id")
        .with_columns(
            (pl.col("health") != pl.col("_now")).cum_sum().over("service_line_id").alias("_b")
        )
        .filter(pl.col("_b") == 0)
        .group_by("service_line_id")
        .agg(pl.len().alias("weeks_in_health"), pl.col("week_start").min().alias("health_since"))
    )
