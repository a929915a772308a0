"""The forecast and process-behaviour parts of the report (when the warehouse has those marts)."""

from __future__ import annotations

from typing import Any, cast

import plotly.graph_objects as go
import polars as pl

from scrums_velocity.report.data import ReportData
from scrums_velocity.report.plotting import (
    Chart,
    dropdown,
    esc,
    layout,
    regular_x,
    rounded,
    safe_json,
)


def _date(value) -> str:
    return "–" if value is None else f"{value:%a %d %b}"


def forecast_rows(data: ReportData) -> tuple[list[dict[str, Any]], str, int]:
    """Rows of the forecast table, the calibration sentence and the number of trials."""
    week = data.signals.filter(pl.col("week_start") == data.week)
    signals = dict(zip(week["service_line_id"], week["reason"], strict=True))
    order = data.table.select("service_line_id").with_row_index("_i")
    rows = []
    for f in data.forecast.join(order, on="service_line_id").sort("_i").iter_rows(named=True):
        note = f["note"]
        rows.append(
            {
                "service_line_id": f["service_line_id"],
                "open_tasks": f["open_tasks"],
                "p50": note or _date(f["p50_date"]),
                "p85": note or _date(f["p85_date"]),
                "p95": note or _date(f["p95_date"]),
                "by2": f["by_2w_p85"],
                "by4": f["by_4w_p85"],
                "signals": signals.get(f["service_line_id"]) or "",
            }
        )
    trials = int(cast(int, data.forecast["trials"].max() or 0))
    return rows, calibration_text(data), trials


def calibration_text(data: ReportData) -> str:
    bt = data.calibration
    if bt.is_empty():
        return "Not enough history yet to check how often these forecasts come true."
    n = bt.height
    met85 = float(cast(float, bt["hit_p85"].mean()))
    met50 = float(cast(float, bt["hit_p50"].mean()))
    return (
        f"How often such forecasts came true here: replaying {n} past forecasts, the 85% date was "
        f"met {met85:.0%} of the time and the 50% date {met50:.0%}."
    )


def xmr_chart(data: ReportData) -> Chart:
    fig = go.Figure()
    lins = data.table["service_line_id"].to_list()
    per = 5
    for i, lin in enumerate(lins):
        rows = data.signals.filter(pl.col("service_line_id") == lin).sort("week_start")
        weeks = rows["week_start"].to_list()
        wx = regular_x(weeks, 7)
        show = i == 0
        fig.add_trace(
            go.Scatter(
                **wx,
                y=rounded(rows["completed"].to_list()),
                mode="lines+markers",
                name="completed",
                line={"color": "#444"},
                visible=show,
            )
        )
        fig.add_trace(
            go.Scatter(
                **wx,
                y=rounded(rows["centre_line"].to_list()),
                mode="lines",
                name="centre line",
                line={"color": "#0072B2"},
                visible=show,
            )
        )
        fig.add_trace(
            go.Scatter(
                **wx,
                y=rounded(rows["upper_limit"].to_list()),
                mode="lines",
                name="upper limit",
                line={"color": "#999", "dash": "dot"},
                visible=show,
            )
        )
        fig.add_trace(
            go.Scatter(
                **wx,
                y=rounded(rows["lower_limit"].to_list()),
                mode="lines",
                name="lower limit",
                line={"color": "#D55E00", "dash": "dot"},
                visible=show,
            )
        )
        flagged = rows.filter(pl.col("has_signal"))
        fig.add_trace(
            go.Scatter(
                x=flagged["week_start"].to_list(),
                y=flagged["completed"].to_list(),
                mode="markers",
                name="signal",
                marker={"symbol": "x", "size": 12, "color": "#D55E00"},
                visible=show,
                customdata=[esc(r) for r in flagged["reason"]],
                hovertemplate="%{x|%d %b}: %{customdata}<extra></extra>",
            )
        )
    dropdown(fig, [data.labels.get(lin, lin) for lin in lins], per)
    first = esc(data.labels.get(lins[0], lins[0])) if lins else ""
    layout(
        fig,
        f"Process behaviour (XmR) of weekly completions: {first} (pick a LIN)",
        "Week (starting Monday)",
        "Tasks completed per week",
    )
    return Chart(
        "xmr",
        "Is a dip real? Process-behaviour chart",
        "Centre line: the usual weekly completions; dotted: natural process limits (centre "
        "± 2.66 x mean moving range). Crosses mark signals: a week below the lower limit, "
        "8 weeks in a row below the centre, or 3 of 4 nearer the lower limit.",
        safe_json(fig),
    )


def forecast_charts(data: ReportData) -> list[Chart]:
    return [xmr_chart(data)] if data.signals is not None and data.table.height else []
