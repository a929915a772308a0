"""marts.lin_forecast: the Monte Carlo forecast of each service line's open work.

A Python model: run once per service line on its rows of the inputs (DuckDB: here; Spark:
``applyInArrow``). The numerics and their definition are in ``scrums_velocity.models.forecast``.
"""

from __future__ import annotations

import polars as pl

from scrums_velocity.models import forecast

INPUTS = ("intermediate.int_lin_daily_throughput", "marts.lin_status_daily")
PARTITION_BY = "service_line_id"
SCHEMA = pl.DataFrame(schema=forecast.FORECAST_SCHEMA).to_arrow().schema


def model(inputs, context) -> pl.DataFrame:
    return forecast.run_model(forecast.forecast_service_line, inputs, context, INPUTS)
