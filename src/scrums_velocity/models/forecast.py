"""Monte Carlo forecasts of open work, and their backtest: the numerics of the Python models
``marts/lin_forecast.py`` and ``marts/lin_forecast_backtest.py`` (one service line at a time).

For each service line: N = its open tasks now (backlog + in progress + in review). Each trial
samples days, with replacement, from the LIN's zero-filled daily completions over the last K
complete weeks, until N more tasks are done; the completion dates at 50/85/95% are the smallest
days by which that share of trials finished. "How many by a date" sums sampled days up to the end
of the next 2 and 4 weeks. Everything is numpy over (trials x days) arrays; a generator seeded
from the build's seed and the LIN's id makes the result deterministic and order-independent.

The backtest replays history: from each past week start with K weeks of history before it, it
forecasts when the tasks open then would be matched by as many completions, and records whether
the actual day fell on or before each forecast date. Open-ended cases (not yet reached) are left
out.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import numpy as np
import polars as pl

TRIALS = 10_000
BACKTEST_TRIALS = 2_000
HORIZON_DAYS = 730
PERCENTILES = (0.50, 0.85, 0.95)
NO_THROUGHPUT = "no forecast: no throughput in the window"
BEYOND = f"no forecast within {HORIZON_DAYS} days"


def rng_for(seed: int, key: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return np.random.default_rng([seed, digest])


def days_to_finish(
    daily: np.ndarray, n: int, trials: int, rng: np.random.Generator, horizon: int = HORIZON_DAYS
) -> np.ndarray | None:
    """Per trial, the number of days until ``n`` more completions (inf past the horizon).

    None when the window has no throughput at all: no finite forecast exists.
    """
    if n <= 0:
        return np.zeros(trials)
    if daily.size == 0 or daily.sum() == 0:
        return None
    result = np.full(trials, np.inf)
    done = np.zeros(trials)
    pending = np.arange(trials)
    chunk = int(min(horizon, max(14, np.ceil(1.5 * n / daily.mean()))))
    offset = 0
    while pending.size and offset < horizon:
        width = min(chunk, horizon - offset)
        cum = done[pending, None] + np.cumsum(rng.choice(daily, size=(pending.size, width)), axis=1)
        reached = cum >= n
        hit = reached.any(axis=1)
        result[pending[hit]] = offset + reached[hit].argmax(axis=1) + 1
        done[pending] = cum[:, -1]
        pending = pending[~hit]
        offset += width
    return result


def percentile_days(days: np.ndarray, p: float) -> float:
    """The smallest day count by which at least a share ``p`` of trials had finished."""
    return float(np.quantile(days, p, method="inverted_cdf"))


def how_many(daily: np.ndarray, horizon: int, trials: int, rng: np.random.Generator) -> np.ndarray:
    if daily.size == 0 or horizon <= 0:
        return np.zeros(trials)
    return rng.choice(daily, size=(trials, horizon)).sum(axis=1)


def forecast_line(
    lin: str,
    daily: np.ndarray,
    open_tasks: int,
    start: date,
    *,
    seed: int,
    trials: int = TRIALS,
    horizons: tuple[int, int] = (14, 28),
) -> dict:
    rng = rng_for(seed, lin)
    row: dict = {
        "service_line_id": lin,
        "open_tasks": open_tasks,
        "window_days": int(daily.size),
        "daily_mean": float(daily.mean()) if daily.size else 0.0,
        "trials": trials,
        "forecast_from": start,
        "note": None,
    }
    days = days_to_finish(daily, open_tasks, trials, rng)
    for p in PERCENTILES:
        key = f"p{round(p * 100)}"
        value = None if days is None else percentile_days(days, p)
        finite = value is not None and bool(np.isfinite(value))
        row[f"{key}_days"] = int(value) if value is not None and finite else None
        row[f"{key}_date"] = (
            start + timedelta(days=int(value)) if value is not None and finite else None
        )
    if days is None:
        row["note"] = NO_THROUGHPUT
    elif not np.isfinite(days).all() and row["p95_days"] is None:
        row["note"] = BEYOND
    for weeks, horizon in zip((2, 4), horizons, strict=True):
        counts = how_many(daily, horizon, trials, rng)
        row[f"by_{weeks}w_date"] = start + timedelta(days=horizon)
        row[f"by_{weeks}w_p50"] = int(np.quantile(counts, 0.50, method="inverted_cdf"))
        # "85% likely to complete at least this many": the 15th percentile of the counts
        row[f"by_{weeks}w_p85"] = int(np.quantile(counts, 0.15, method="inverted_cdf"))
    return row


OPEN_STATUSES = ("backlog", "in_progress", "in_review")


def run_model(body, inputs: dict, context, names: tuple[str, str]) -> pl.DataFrame:
    """A forecast Python model's body: ``body`` (forecast_service_line or backtest_service_line)
    on one service line's daily throughput and daily status rows, with the build's settings."""
    daily, status = (pl.DataFrame(inputs[name]) for name in names)
    return body(
        daily,
        status,
        today=context.today,
        baseline_weeks=context.model.baseline_weeks,
        seed=context.model.forecast_seed,
    )


def open_by_day(status_daily: pl.DataFrame) -> dict[date, int]:
    """Open tasks (backlog, in progress, in review) at the end of each day, from one service
    line's rows of marts.lin_status_daily."""
    return dict(
        status_daily.filter(pl.col("status").is_in(OPEN_STATUSES))
        .group_by("day")
        .agg(pl.col("tasks").sum())
        .iter_rows()
    )


def forecast_service_line(
    daily: pl.DataFrame,
    status_daily: pl.DataFrame,
    *,
    today: date,
    baseline_weeks: int,
    seed: int,
    trials: int = TRIALS,
) -> pl.DataFrame:
    """One service line's forecast row from its zero-filled daily completions (day, completed)
    and its lin_status_daily rows; no row when the line has no days at all."""
    if daily.height == 0:
        return pl.DataFrame(schema=FORECAST_SCHEMA)
    lin = daily["service_line_id"][0]
    current_week = today - timedelta(days=today.weekday())
    window_start = current_week - timedelta(weeks=baseline_weeks)
    window = daily.sort("day").filter(
        (pl.col("day") >= window_start) & (pl.col("day") < current_week)
    )
    n = int(open_by_day(status_daily).get(today, 0))
    row = forecast_line(lin, window["completed"].to_numpy(), n, today, seed=seed, trials=trials)
    return pl.DataFrame([row], schema=FORECAST_SCHEMA)


def backtest_service_line(
    daily: pl.DataFrame,
    status_daily: pl.DataFrame,
    *,
    today: date,
    baseline_weeks: int,
    seed: int,
    trials: int = BACKTEST_TRIALS,
) -> pl.DataFrame:
    """One service line's backtest rows (see the module's docstring)."""
    if daily.height == 0:
        return pl.DataFrame(schema=BACKTEST_SCHEMA)
    frame = daily.sort("day")
    lin = frame["service_line_id"][0]
    weeks = baseline_weeks
    days = frame["day"].to_list()
    counts = frame["completed"].to_numpy()
    index = {d: i for i, d in enumerate(days)}
    opens = open_by_day(status_daily)
    rows = []
    first = days[0]
    origin = first + timedelta(days=(7 - first.weekday()) % 7) + timedelta(weeks=weeks)
    while origin < today:
        start = index[origin]
        n = int(opens.get(origin - timedelta(days=1), 0))
        window = counts[start - 7 * weeks : start]
        after = np.cumsum(counts[start:])
        reached = np.nonzero(after >= n)[0] if n > 0 else np.array([], dtype=int)
        forecast_days = days_to_finish(window, n, trials, rng_for(seed, f"{lin}@{origin}"))
        if n > 0 and reached.size and forecast_days is not None:
            actual = int(reached[0]) + 1
            row = {
                "service_line_id": lin,
                "origin": origin,
                "open_tasks": n,
                "actual_days": actual,
            }
            for p in PERCENTILES:
                predicted = percentile_days(forecast_days, p)
                key = f"p{round(p * 100)}"
                row[f"{key}_days"] = int(predicted) if np.isfinite(predicted) else None
                row[f"hit_{key}"] = bool(actual <= predicted)
            row["stationary_cv"] = _weekly_cv(counts[start - 7 * weeks : start + actual])
            rows.append(row)
        origin += timedelta(weeks=1)
    return pl.DataFrame(rows, schema=BACKTEST_SCHEMA)


def _weekly_cv(daily: np.ndarray) -> float | None:
    """Coefficient of variation of weekly totals (a rough stationarity gauge)."""
    weeks = daily[: daily.size // 7 * 7].reshape(-1, 7).sum(axis=1)
    if weeks.size < 2 or weeks.mean() == 0:
        return None
    return float(weeks.std(ddof=1) / weeks.mean())


def calibration(backtest_rows: pl.DataFrame) -> pl.DataFrame:
    """Share of backtests whose actual day fell on or before the 50/85/95% dates."""
    return backtest_rows.select(
        pl.len().alias("backtests"),
        pl.col("hit_p50").mean().alias("met_p50"),
        pl.col("hit_p85").mean().alias("met_p85"),
        pl.col("hit_p95").mean().alias("met_p95"),
    )


FORECAST_SCHEMA = {
    "service_line_id": pl.String,
    "open_tasks": pl.Int64,
    "window_days": pl.Int64,
    "daily_mean": pl.Float64,
    "trials": pl.Int64,
    "forecast_from": pl.Date,
    "note": pl.String,
    "p50_days": pl.Int64,
    "p50_date": pl.Date,
    "p85_days": pl.Int64,
    "p85_date": pl.Date,
    "p95_days": pl.Int64,
    "p95_date": pl.Date,
    "by_2w_date": pl.Date,
    "by_2w_p50": pl.Int64,
    "by_2w_p85": pl.Int64,
    "by_4w_date": pl.Date,
    "by_4w_p50": pl.Int64,
    "by_4w_p85": pl.Int64,
}
BACKTEST_SCHEMA = {
    "service_line_id": pl.String,
    "origin": pl.Date,
    "open_tasks": pl.Int64,
    "actual_days": pl.Int64,
    "p50_days": pl.Int64,
    "hit_p50": pl.Boolean,
    "p85_days": pl.Int64,
    "hit_p85": pl.Boolean,
    "p95_days": pl.Int64,
    "hit_p95": pl.Boolean,
    "stationary_cv": pl.Float64,
}
