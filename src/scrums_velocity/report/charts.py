"""Plotly figures of the interactive report, serialised so that no data can break out.

Two layers of safety for text that comes from tasks (ids, titles, project names):

* every label is HTML-escaped before plotly sees it, because plotly renders a subset of HTML in
  labels (``<b>``, ``<a href>``...);
* the figure JSON is embedded with ``<``, ``>`` and ``&`` as ``\\u003c``-style escapes, so no string
  can close the ``<script>`` element that holds it.

Colours follow the Okabe-Ito palette (readable with colour-vision deficiencies); health is always
also given as a shape and a word.
"""

from __future__ import annotations

from datetime import timedelta

import plotly.graph_objects as go
import polars as pl

from scrums_velocity.report.data import ReportData
from scrums_velocity.report.forecast_view import forecast_charts
from scrums_velocity.report.plotting import (
    CLOSED,
    HEALTH_STYLE,
    STATUS_COLOURS,
    Chart,
    dropdown,
    esc,
    layout,
    regular_x,
    rounded,
    safe_json,
)


def _agents(by_agent: int | None, completed: int) -> str:
    if by_agent is None or not completed:
        return "no completions by agents" if by_agent is not None else ""
    return f"{by_agent / completed:.0%} by agents (AGT-*)"


def completions_vs_baseline(data: ReportData) -> Chart:
    fig = go.Figure()
    lins = data.table["service_line_id"].to_list()
    labels = data.labels
    for i, lin in enumerate(lins):
        rows = data.weekly.filter(pl.col("service_line_id") == lin).sort("week_start")
        weeks = rows["week_start"].to_list()
        agents = (
            rows["completed_by_agent"].to_list()
            if "completed_by_agent" in rows.columns
            else [None] * rows.height
        )
        mean = rows["baseline_mean"].to_list()
        sd = [s or 0.0 for s in rows["baseline_stddev"].to_list()]
        upper = [None if m is None else m + s for m, s in zip(mean, sd, strict=True)]
        lower = [None if m is None else max(0.0, m - s) for m, s in zip(mean, sd, strict=True)]
        show = i == 0
        wx = regular_x(weeks, 7)
        fig.add_trace(
            go.Scatter(
                **wx,
                y=rounded(upper),
                mode="lines",
                line={"width": 0},
                visible=show,
                hoverinfo="skip",
                showlegend=False,
            )
        )
        fig.add_trace(
            go.Scatter(
                **wx,
                y=rounded(lower),
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(0,114,178,0.15)",
                visible=show,
                name="baseline mean ± 1 sd",
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                **wx,
                y=rounded(mean),
                mode="lines",
                line={"color": "#0072B2", "dash": "dash"},
                name="baseline mean",
                visible=show,
            )
        )
        colours = [HEALTH_STYLE.get(h, HEALTH_STYLE["healthy"])[2] for h in rows["health"]]
        fig.add_trace(
            go.Bar(
                x=weeks,
                y=rows["completed"].to_list(),
                marker_color=colours,
                name="completed",
                visible=show,
                customdata=[
                    [esc(HEALTH_STYLE.get(h, ("", h, ""))[1]), _agents(a, c)]
                    for h, a, c in zip(rows["health"], agents, rows["completed"], strict=True)
                ],
                hovertemplate="%{x|%d %b %Y}: %{y} completed (%{customdata[0]}); "
                "%{customdata[1]}<br>click for the tasks<extra></extra>",
            )
        )
    dropdown(fig, [labels.get(lin, lin) for lin in lins], 4)
    first = esc(labels.get(lins[0], lins[0])) if lins else ""
    layout(
        fig,
        f"Weekly completions against baseline: {first} (pick a LIN)",
        "Week (starting Monday)",
        "Tasks completed per week",
    )
    return Chart(
        "completions",
        "Weekly completions against baseline",
        "Bars: tasks completed each week, coloured by health (hover for the agents' share). "
        "Band: baseline mean ± one standard deviation of the previous weeks. Click a bar to "
        "list that week's tasks.",
        safe_json(fig),
    )


def ratio_heatmap(data: ReportData) -> Chart:
    lins = data.table["service_line_id"].to_list()
    weeks = sorted(set(data.weekly["week_start"].to_list()))
    lookup = {
        (r["service_line_id"], r["week_start"]): r["velocity_ratio"]
        for r in data.weekly.iter_rows(named=True)
    }
    z = [rounded([lookup.get((lin, w)) for w in weeks]) for lin in lins]
    text = [["" if v is None else f"{v:.2f}" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=weeks,
            y=[esc(data.labels.get(lin, lin)) for lin in lins],
            text=text,
            texttemplate="%{text}",
            colorscale=[[0, "#D55E00"], [0.5, "#F7F7F7"], [1, "#0072B2"]],
            zmin=0,
            zmid=1,
            zmax=2,
            colorbar={"title": {"text": "ratio"}},
            hoverongaps=False,
            hovertemplate="%{y}, week of %{x|%d %b}: ratio %{z:.2f}<extra></extra>",
        )
    )
    layout(
        fig,
        "Velocity ratio (completed / baseline mean) by LIN and week",
        "Week (starting Monday)",
        "Service line",
        height=max(320, 24 * len(lins) + 140),
    )
    fig.update_yaxes(autorange="reversed", type="category")
    return Chart(
        "heatmap",
        "Velocity ratio heatmap",
        "1.0 is the LIN's usual rate; orange below, blue above; blank where there is not "
        "enough history yet. Each cell shows its value; click one to list that week's tasks.",
        safe_json(fig),
    )


def cycle_lead_times(data: ReportData) -> Chart:
    recent = data.flow.filter(
        pl.col("week_start") > data.week - timedelta(weeks=data.baseline_weeks)
    )
    per_lin = recent.group_by("service_line_id").agg(
        pl.col("cycle_time_p50_hours").median().alias("cycle_p50"),
        pl.col("cycle_time_p85_hours").median().alias("cycle_p85"),
        pl.col("lead_time_p50_hours").median().alias("lead_p50"),
        pl.col("lead_time_p85_hours").median().alias("lead_p85"),
    )
    order = data.table.select("service_line_id").join(per_lin, on="service_line_id", how="left")
    x = [esc(data.labels.get(v, v)) for v in order["service_line_id"]]
    fig = go.Figure()
    for col, name, colour in (
        ("cycle_p50", "cycle time p50", "#56B4E9"),
        ("cycle_p85", "cycle time p85", "#0072B2"),
        ("lead_p50", "lead time p50", "#F0E442"),
        ("lead_p85", "lead time p85", "#E69F00"),
    ):
        days = rounded([None if v is None else v / 24 for v in order[col].to_list()])
        fig.add_trace(
            go.Bar(
                x=x,
                y=days,
                name=name,
                marker_color=colour,
                hovertemplate="%{x}: %{y:.1f} days<extra>" + name + "</extra>",
            )
        )
    layout(
        fig,
        "Cycle and lead time percentiles "
        f"(median of weekly values, last {data.baseline_weeks} weeks)",
        "Service line",
        "Days",
    )
    fig.update_layout(barmode="group")
    return Chart(
        "times",
        "Cycle and lead times",
        "Cycle time: first in progress to done. Lead time: created to done. p85: 85% of "
        "tasks finished faster.",
        safe_json(fig),
    )


def cumulative_flow(data: ReportData) -> Chart:
    fig = go.Figure()
    statuses = [s for s in STATUS_COLOURS if s in set(data.daily["status"].to_list())]
    groups = [("All service lines", data.daily)] + [
        (data.labels.get(lin, lin), data.daily.filter(pl.col("service_line_id") == lin))
        for lin in data.table["service_line_id"].to_list()
    ]
    for i, (_, frame) in enumerate(groups):
        totals = frame.group_by("day", "status").agg(pl.col("tasks").sum()).sort("day")
        # stacked bottom-up: done first, backlog on top, as cumulative flow diagrams are drawn
        for status in reversed(statuses):
            part = totals.filter(pl.col("status") == status)
            fig.add_trace(
                go.Scatter(
                    **regular_x(part["day"].to_list(), 1),
                    y=part["tasks"].to_list(),
                    name=status.replace("_", " "),
                    stackgroup="one",
                    mode="lines",
                    line={"width": 0.5, "color": STATUS_COLOURS[status]},
                    # the work-in-progress view: closed statuses one click away (legend, button)
                    visible=(status not in CLOSED or "legendonly") if i == 0 else False,
                    meta="closed" if status in CLOSED else "open",
                    legendgroup=status,
                    showlegend=True,
                    hovertemplate="%{x|%d %b}: %{y} "
                    + status.replace("_", " ")
                    + "<extra></extra>",
                )
            )
    shown: list[bool | str] = [
        status not in CLOSED or "legendonly" for status in reversed(statuses)
    ]
    dropdown(fig, [g[0] for g in groups], len(statuses), shown=shown)
    layout(
        fig,
        "Cumulative flow: open tasks by status at the end of each day",
        "Day",
        "Tasks",
    )
    return Chart(
        "cfd",
        "Cumulative flow",
        "Work in progress: backlog, in progress and in review at the end of each day. Widening "
        "bands mean work piles up in that status. The button (or the legend) adds the done and "
        "cancelled bands: a flat done band means nothing is finishing. Pick a LIN from the menu.",
        safe_json(fig),
    )


def aging_wip(data: ReportData) -> Chart:
    aging = data.aging.filter(pl.col("status") != "backlog")
    fig = go.Figure()
    for exceeds, name, colour, symbol in (
        (False, "within the LIN's p85 cycle time", "#0072B2", "circle"),
        (True, "older than the LIN's p85 cycle time", "#D55E00", "x"),
    ):
        part = aging.filter(pl.col("exceeds_p85").fill_null(False) == exceeds)
        fig.add_trace(
            go.Scatter(
                x=[esc(data.labels.get(v, v)) for v in part["service_line_id"]],
                y=rounded((part["age_hours"] / 24).to_list(), 1),
                mode="markers",
                name=name,
                marker={"color": colour, "symbol": symbol, "size": 7, "opacity": 0.7},
                customdata=[
                    [esc(t), esc(s.replace("_", " "))]
                    for t, s in zip(part["task_id"], part["status"], strict=True)
                ],
                hovertemplate="%{customdata[0]} (%{customdata[1]}): %{y:.1f} days<extra></extra>",
            )
        )
    layout(
        fig,
        "Aging work in progress: days since started, per open task",
        "Service line",
        "Age (days)",
    )
    return Chart(
        "aging",
        "Aging work in progress",
        "Each mark is a started, unfinished task. Crosses have been open longer than 85% "
        "of the LIN's recently completed tasks took.",
        safe_json(fig),
    )


def all_charts(data: ReportData) -> list[Chart]:
    charts = [
        completions_vs_baseline(data),
        ratio_heatmap(data),
        cycle_lead_times(data),
        cumulative_flow(data),
        aging_wip(data),
        *forecast_charts(data),
    ]
    return charts
