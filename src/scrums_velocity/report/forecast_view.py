"""The forecast and process-behaviour parts of the report (when the warehouse has those marts)."""

from __future__ import annotations

from typing import Any

from scrums_velocity.report.data import ReportData


def forecast_rows(data: ReportData) -> tuple[list[dict[str, Any]], str, int]:
    """Rows of the forecast table, the calibration sentence and the number of trials."""
    if data.forecast is None:
        return [], "", 0
    raise NotImplementedError  # replaced with the forecast issue


def forecast_charts(data: ReportData) -> list:
    return []
