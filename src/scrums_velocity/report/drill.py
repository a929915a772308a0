"""The tasks behind the numbers: per service line and week, the task events of
``marts.lin_week_tasks`` and the open work of ``marts.lin_aging_wip``, for the report's
drill-down and the email.

Task text (titles, assignees, URLs) is untrusted: templates escape it, the drill-down JSON is
embedded gzipped and base64-encoded and shown by the page through ``textContent`` only,
and a URL becomes a link only when it is a plain ``http``/``https`` URL (:func:`safe_url`), checked
here and again in the page.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

import polars as pl

from scrums_velocity.report.data import ReportData
from scrums_velocity.report.plotting import pack, unpack

DRILL_WEEKS = 4  # weeks whose task lists a click on a bar or heatmap cell can show
OPEN_LIMIT = 10  # open tasks listed per service line, oldest first
EMAIL_OPEN = 3  # oldest open tasks per at-risk or watch service line in the email
TITLE_CHARS = 100
JSON_TITLE_CHARS = 80
EMAIL_TITLE_CHARS = 60
STUCK_DEFAULT_DAYS = 7  # "stuck" threshold when the LIN has no p85 cycle time yet
EVENT_ORDER = {"completed": 0, "cancelled": 1, "reopened": 2, "moved_in": 3, "moved_out": 4}
EVENT_LABEL = {
    "completed": "completed",
    "cancelled": "cancelled",
    "reopened": "reopened",
    "moved_in": "moved in",
    "moved_out": "moved out",
}
_URL = re.compile(r"^https?://[^\s\x00-\x1f\x7f\"'<>\\`]+$", re.IGNORECASE)


def safe_url(value: str | None) -> str | None:
    """``value`` when it is an http(s) URL a browser opens as such, else None (never a link).

    Refuses ``javascript:``, ``data:``, scheme-relative and anything with whitespace, control
    characters, quotes or angle brackets (browsers strip some of them before parsing).
    """
    if not value or len(value) > 2048 or not _URL.match(value):
        return None
    return value


def clip(text: str | None, limit: int = TITLE_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _days(hours: float | None) -> str:
    return "–" if hours is None else f"{hours / 24:.1f}"


def week_events(data: ReportData, lin: str, week: date) -> list[dict[str, Any]]:
    """The task events behind ``lin``'s numbers in ``week``, in a stable order."""
    rows = data.week_tasks.filter(
        (pl.col("service_line_id") == lin) & (pl.col("week_start") == week)
    )
    rows = rows.with_columns(
        pl.col("event").replace_strict(EVENT_ORDER, default=9).alias("_o")
    ).sort("_o", "event_at", "task_id")
    out = []
    for r in rows.iter_rows(named=True):
        out.append(
            {
                "task_id": r["task_id"],
                "event": r["event"],
                "event_label": EVENT_LABEL.get(r["event"], r["event"]),
                "event_at": r["event_at"],
                "when": f"{r['event_at']:%a %d %b %H:%M}",
                "by": r["changed_by"] or "",
                "by_agent": bool(r["by_agent"]),
                "other": r["other_service_line_id"] or "",
                "title": clip(r["title"]),
                "status": (r["status"] or "").replace("_", " "),
                "assignee": r["assignee_id"] or "",
                "url": safe_url(r["external_url"]),
                "source": r["external_source"] or "",
            }
        )
    return out


def open_work(
    data: ReportData, lin: str, limit: int | None = OPEN_LIMIT, *, started_first: bool = False
) -> list[dict[str, Any]]:
    """``lin``'s open tasks, oldest first (age since started, or since created for backlog).

    ``started_first``: work in progress or in review before the backlog (the email's "oldest
    open work": what is stuck, not what was never picked up)."""
    rows = data.aging.filter(pl.col("service_line_id") == lin).with_columns(
        (pl.col("status") == "backlog").alias("_backlog")
        if started_first
        else pl.lit(False).alias("_backlog")
    )
    rows = rows.sort(["_backlog", "age_hours", "task_id"], descending=[False, True, False])
    if limit is not None:
        rows = rows.head(limit)
    return [
        {
            "task_id": r["task_id"],
            "title": clip(r["title"]),
            "status": (r["status"] or "").replace("_", " "),
            "age": _days(r["age_hours"]),
            "age_basis": "since started" if r["age_basis"] == "since_started" else "since created",
            "in_status": _days(r.get("hours_in_status")),
            "assignee": r["assignee_id"] or "",
            "url": safe_url(r.get("external_url")),
            "source": r.get("external_source") or "",
        }
        for r in rows.iter_rows(named=True)
    ]


def stuck_threshold_days(data: ReportData, lin: str) -> int:
    """Days in one status after which started work counts as stuck: the LIN's p85 cycle time."""
    ref = data.aging.filter(
        (pl.col("service_line_id") == lin) & (pl.col("age_basis") == "since_started")
    )["reference_p85_hours"].drop_nulls()
    if ref.is_empty():
        return STUCK_DEFAULT_DAYS
    return max(1, int(ref[0] // 24))


def explanation(data: ReportData, row: dict[str, Any]) -> str:
    """Why a LIN is flagged, in words:
    "4 done vs usual 22.9; 3 tasks in review for over 10 days"."""
    lin = row["service_line_id"]
    mean = row.get("baseline_mean")
    parts = [f"{row['completed']} done vs usual {mean:.1f}" if mean is not None else ""]
    days = stuck_threshold_days(data, lin)
    mine = data.aging.filter(pl.col("service_line_id") == lin)
    if "hours_in_status" in mine.columns:
        for status in ("in_review", "in_progress"):
            n = mine.filter(
                (pl.col("status") == status) & (pl.col("hours_in_status") > days * 24)
            ).height
            if n:
                noun = "task" if n == 1 else "tasks"
                parts.append(f"{n} {noun} {status.replace('_', ' ')} for over {days} days")
    return "; ".join(p for p in parts if p)


def drill_payload(data: ReportData) -> dict[str, Any]:
    """The data the page's drill-down renders (through ``textContent``, never as HTML).

    ``lins``: [id, label] in table order (the charts' order); ``week``: the report week;
    ``weeks``: every week a click can list (the report week and the ``DRILL_WEEKS - 1`` before);
    ``kinds``: event names; ``prefixes``: URL prefixes; ``tasks``: [id, title, status now,
    assignee, URL prefix index or -1, rest of the URL] (only http(s) URLs: :func:`safe_url`);
    ``events``: "LIN|week" -> [[task index, kind index, when, by, other LIN], ...];
    ``open``: LIN -> its ``OPEN_LIMIT`` oldest open tasks [[task index, age days, days in status,
    "s" since started or "c" since created], ...] and ``open_total``: LIN -> how many are open.
    """
    labels = data.labels
    lins = data.table["service_line_id"].to_list()
    first = data.week - timedelta(weeks=DRILL_WEEKS - 1)
    weeks = [first + timedelta(weeks=i) for i in range(DRILL_WEEKS)]
    tasks: list[list[Any]] = []
    index: dict[str, int] = {}
    prefixes: dict[str, int] = {}

    def task(tid: str, title: str | None, status: str | None, assignee, url) -> int:
        if tid not in index:
            link = safe_url(url)
            p, rest = -1, ""
            if link:
                head, _, rest = link.rpartition("/")
                p = prefixes.setdefault(head + "/", len(prefixes))
            index[tid] = len(tasks)
            tasks.append(
                [
                    tid,
                    clip(title, JSON_TITLE_CHARS),
                    (status or "").replace("_", " "),
                    assignee or "",
                    p,
                    rest,
                ]
            )
        return index[tid]

    events: dict[str, list[list[Any]]] = {}
    frame = (
        data.week_tasks.filter(
            (pl.col("week_start") >= first)
            & (pl.col("week_start") <= data.week)
            & pl.col("service_line_id").is_in(lins)
        )
        .with_columns(pl.col("event").replace_strict(EVENT_ORDER, default=9).alias("_o"))
        .sort("service_line_id", "week_start", "_o", "event_at", "task_id")
    )
    for r in frame.iter_rows(named=True):
        i = task(r["task_id"], r["title"], r["status"], r["assignee_id"], r["external_url"])
        key = f"{r['service_line_id']}|{r['week_start'].isoformat()}"
        events.setdefault(key, []).append(
            [
                i,
                EVENT_ORDER.get(r["event"], 0),
                f"{r['event_at']:%a %H:%M}",
                r["changed_by"] or "",
                r["other_service_line_id"] or "",
            ]
        )
    aging = data.aging.filter(pl.col("service_line_id").is_in(lins)).sort(
        ["service_line_id", "age_hours", "task_id"], descending=[False, True, False]
    )
    open_total = dict(aging.group_by("service_line_id").len().iter_rows()) if aging.height else {}
    opened: dict[str, list[list[Any]]] = {}
    for r in (
        aging.group_by("service_line_id", maintain_order=True)
        .head(OPEN_LIMIT)
        .iter_rows(named=True)
    ):
        i = task(r["task_id"], r["title"], r["status"], r["assignee_id"], r.get("external_url"))
        opened.setdefault(r["service_line_id"], []).append(
            [
                i,
                round(r["age_hours"] / 24, 1),
                None if r.get("hours_in_status") is None else round(r["hours_in_status"] / 24, 1),
                "s" if r["age_basis"] == "since_started" else "c",
            ]
        )
    return {
        "lins": [[lin, labels.get(lin, lin)] for lin in lins],
        "week": data.week.isoformat(),
        "weeks": [w.isoformat() for w in weeks],
        "kinds": [EVENT_LABEL[k] for k in EVENT_ORDER],
        "prefixes": list(prefixes),
        "tasks": tasks,
        "events": events,
        "open": opened,
        "open_total": open_total,
    }


def drill_json(data: ReportData) -> str:
    """:func:`drill_payload` for the page: JSON, gzipped and base64-encoded (a quarter of the
    bytes; the page inflates it with the browser's own DecompressionStream). Base64 has no
    ``<``, ``>``, ``&`` or quote: the string can neither end its ``<script>`` element nor its
    JavaScript string literal."""
    return pack(json.dumps(drill_payload(data), ensure_ascii=False, separators=(",", ":")))


def read_drill_json(text: str) -> dict[str, Any]:
    """The payload back from :func:`drill_json`'s text (for tests and analysts)."""
    return json.loads(unpack(text))
