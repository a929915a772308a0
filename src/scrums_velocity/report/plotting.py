"""The report's plotting toolkit: the one module chart code builds on.

:class:`Chart` (a figure as the page carries it), :func:`safe_json` and :func:`pack` (serialised
so that no data can break out of its ``<script>`` element), :func:`esc` (labels are HTML-escaped
before plotly sees them: plotly renders a subset of HTML in labels), :func:`layout`,
:func:`dropdown`, :func:`regular_x`, :func:`rounded`, and the palette: Okabe-Ito colours (readable
with colour-vision deficiencies), health always also given as a shape and a word.
"""

from __future__ import annotations

import base64
import gzip
import html
import itertools
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import plotly.graph_objects as go

__all__ = [
    "CLOSED",
    "FONT",
    "HEALTH_STYLE",
    "STATUS_COLOURS",
    "Chart",
    "dropdown",
    "esc",
    "layout",
    "pack",
    "regular_x",
    "rounded",
    "safe_json",
    "unpack",
]

HEALTH_STYLE = {
    "at_risk": ("▼", "At risk", "#D55E00"),
    "watch": ("◆", "Watch", "#E69F00"),
    "healthy": ("●", "Healthy", "#0072B2"),
    "insufficient_history": ("○", "New", "#6E6E6E"),
    "week_in_progress": ("…", "In progress", "#6E6E6E"),
}
STATUS_COLOURS = {
    "backlog": "#BBBBBB",
    "in_progress": "#56B4E9",
    "in_review": "#E69F00",
    "done": "#009E73",
    "cancelled": "#CC79A7",
}
CLOSED = ("done", "cancelled")
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    caption: str
    json: str  # safe to place inside a <script> element

    @property
    def packed(self) -> str:
        """The figure as the page carries it: :func:`pack`ed (a fifth of the bytes)."""
        return pack(self.json)


def pack(text: str) -> str:
    """JSON for the page: gzipped and base64-encoded; the page inflates it with the browser's
    own ``DecompressionStream``. Base64 has no ``<``, ``>``, ``&`` or quote: the string can end
    neither its ``<script>`` element nor its JavaScript string literal."""
    return base64.b64encode(gzip.compress(text.encode("utf-8"), mtime=0)).decode("ascii")


def unpack(text: str) -> str:
    """:func:`pack`'s input back (for tests and analysts)."""
    return gzip.decompress(base64.b64decode(text)).decode("utf-8")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def safe_json(fig: go.Figure) -> str:
    # plotly.py's default template (about 7 KB a chart) is left out: every colour, grid and font
    # the report relies on is set explicitly in _layout and on the traces.
    fig.layout.template = None
    text = json.dumps(json.loads(fig.to_json()), separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def rounded(values: list, digits: int = 2) -> list:
    """Rounded for the page: the chart shows at most two decimals, the JSON needs no more."""
    return [None if v is None else round(v, digits) for v in values]


def regular_x(days: list[date], step_days: int) -> dict[str, Any]:
    """``x`` of a trace: as ``x0`` + ``dx`` (milliseconds on a date axis) when the dates are
    evenly spaced by ``step_days``, the explicit list otherwise: a fraction of the bytes."""
    if len(days) > 1 and all((b - a).days == step_days for a, b in itertools.pairwise(days)):
        return {"x0": days[0].isoformat(), "dx": step_days * 86_400_000}
    return {"x": days}


def layout(fig: go.Figure, title: str, x: str, y: str, height: int = 420) -> go.Figure:
    fig.update_layout(
        title={"text": esc(title), "x": 0, "font": {"size": 16}},
        xaxis_title=esc(x),
        yaxis_title=esc(y),
        font={"family": FONT, "size": 12},
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.2},
    )
    fig.update_xaxes(showgrid=False, linecolor="#999")
    fig.update_yaxes(gridcolor="#eee", zeroline=True, zerolinecolor="#999")
    return fig


def dropdown(
    fig: go.Figure,
    labels: list[str],
    traces_per: int,
    extra: int = 0,
    shown: list[bool | str] | None = None,
) -> None:
    """A menu showing ``traces_per`` traces per label (plus ``extra`` always-visible ones);
    ``shown`` gives each of a label's traces its visibility (default True, or "legendonly")."""
    buttons = []
    n = len(labels) * traces_per
    shown = shown or [True] * traces_per
    for i, label in enumerate(labels):
        visible = [
            shown[k % traces_per] if i * traces_per <= k < (i + 1) * traces_per else False
            for k in range(n)
        ] + [True] * extra
        buttons.append({"label": esc(label), "method": "update", "args": [{"visible": visible}]})
    fig.update_layout(
        updatemenus=[{"buttons": buttons, "x": 1, "xanchor": "right", "y": 1.15, "yanchor": "top"}]
    )
