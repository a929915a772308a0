"""Charts of the forecast and process-behaviour marts (present only when the warehouse has them)."""

from __future__ import annotations

from scrums_velocity.report.data import ReportData


def charts(data: ReportData) -> list:
    if data.signals is None or data.forecast is None:
        return []
    from scrums_velocity.report.forecast_view import forecast_charts

    return forecast_charts(data)
