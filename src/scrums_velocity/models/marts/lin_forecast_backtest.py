"""marts.lin_forecast_backtest: the forecast replayed from every past week, against what happened.

A Python model: run once per service line on its rows of the inputs (DuckDB: here; Spark:
``applyInPandas``). The numerics and their definition are in ``scrums_velocity.models.forecast``.
"""

from __future__ import annotations

import polars as pl

from scrums_velocity.models import forecast

INPUTS = ("intermediate.int_lin_daily_throughput", "marts.lin_status_daily")
PARTITION_BY = "service_line_id"
SCHEMA = pl.DataFrame(schema=forecast.BACKTEST_SCHEMA).to_arrow().schema


def model(inputs, context) -> pl.DataFrame:
    daily, status = (pl.DataFrame(inputs[name]) for name in INPUTS)
    return forecast.backtest_service_line(
        daily,
        status,
        today=context.today,
        baseline_weeks=context.model.baseline_weeks,
        seed=context.model.forecast_seed,
    )
