"""Render and write the report: ``index.html``, ``email.html``, ``velocity.csv`` and
``velocity.parquet`` under ``<data-dir>/reports/<week>/``, and one report per lead under
``leads/<key>/`` (:func:`scrums_velocity.config.lead_key`: one directory per email address).

All task-derived text reaches HTML through Jinja2 with autoescaping on (and chart labels through
:mod:`charts`). A report directory is written beside the old one and swapped in whole, so a killed
run leaves the last good report in place; the next run (holding the data dir's lock, so no
other run can be using them) removes what a killed one left behind.

``velocity.csv`` is for spreadsheets: a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return is prefixed with ``'`` so that no spreadsheet runs it as a formula (OWASP's
CSV injection advice). ``velocity.parquet`` keeps every value exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import polars as pl
from markupsafe import Markup

from scrums_velocity import __version__
from scrums_velocity.config import Config
from scrums_velocity.errors import ConfigError, ReportError
from scrums_velocity.lock import data_dir_lock
from scrums_velocity.models.query import warehouse_path
from scrums_velocity.models.runner import WAREHOUSE
from scrums_velocity.observe import event
from scrums_velocity.report.charts import all_charts
from scrums_velocity.report.data import SPARK_WEEKS, ReportData, load_report_data
from scrums_velocity.report.drill import drill_json, open_work
from scrums_velocity.report.plotting import HEALTH_STYLE

# plotly.js's cartesian partial bundle (MIT; see vendor/README.md): every trace type the report
# draws (scatter, bar, heatmap) at a third of the full bundle's size.
PLOTLY_JS = Path(__file__).parent / "vendor" / "plotly-cartesian.min.js"
AGING_LIMIT = 25
DUPLICATES_LIMIT = 10
_BLOCKS = "▁▂▃▄▅▆▇█"

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("scrums_velocity.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=False,
)


@dataclass
class ReportResult:
    directory: Path
    week: date
    files: dict[str, Path] = field(default_factory=dict)
    leads: dict[str, Path] = field(default_factory=dict)  # lead email -> their directory
    sizes: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    def summary(self) -> str:
        sizes = ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in self.sizes.items())
        return (
            f"report for the week of {self.week} in {self.directory} ({sizes}); "
            f"{len(self.leads)} lead reports; {self.duration_s:.1f} s"
        )


def plotly_bundle() -> str:
    return PLOTLY_JS.read_text(encoding="utf-8")


def _share(part: int | None, whole: int | None) -> str:
    if not whole or part is None:
        return "–"
    return f"{part / whole:.0%}"


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def sparkline_svg(values: list[int]) -> Markup:
    """A tiny inline SVG of weekly completions (numbers only: nothing to escape)."""
    if not values:
        return Markup("")
    w, h, top = 96, 22, max(max(values), 1)
    step = w / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{h - 2 - (v / top) * (h - 4):.1f}" for i, v in enumerate(values)
    )
    last_x, last_y = points.split(" ")[-1].split(",")
    return Markup(  # noqa: S704 - built from numbers only, nothing from task data
        f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="weekly completions: {", ".join(str(int(v)) for v in values)}">'
        f'<polyline fill="none" stroke="#0072B2" stroke-width="1.5" points="{points}"/>'
        f'<circle cx="{last_x}" cy="{last_y}" r="2" fill="#0072B2"/></svg>'
    )


def sparkline_text(values: list[int]) -> str:
    if not values:
        return ""
    top = max(max(values), 1)
    return "".join(_BLOCKS[min(7, round(v / top * 7))] for v in values)


def _rows(data: ReportData) -> list[dict[str, Any]]:
    out = []
    labels = data.labels
    for r in data.table.iter_rows(named=True):
        symbol, label, colour = HEALTH_STYLE.get(r["health"], ("?", r["health"], "#6E6E6E"))
        ratio = r["velocity_ratio"]
        spark = [int(v) for v in (r.get("spark") or [])]
        wtd = None
        if r.get("wtd_completed") is not None:
            wtd = f"{r['wtd_completed']}" + (
                f" of ~{r['wtd_expected']:.1f}" if r.get("wtd_expected") is not None else ""
            )
        out.append(
            {
                "service_line_id": r["service_line_id"],
                "name": labels.get(r["service_line_id"], r["service_line_id"]),
                "workspace_id": r["workspace_id"],
                "symbol": symbol,
                "label": label,
                "colour": colour,
                "health": r["health"],
                "since": _since(r),
                "completed": r["completed"],
                "cancelled": r.get("cancelled"),
                "reopened": r.get("reopened"),
                "agent_share": _share(r.get("completed_by_agent"), r["completed"]),
                "baseline_mean_value": r["baseline_mean"],
                "baseline_mean": _fmt(r["baseline_mean"]),
                "ratio": _fmt(ratio, 2),
                "bar_pct": 0 if ratio is None else max(1, min(100, round(ratio / 2 * 100))),
                "sparkline": sparkline_svg(spark),
                "spark_text": sparkline_text(spark),
                "spark": spark,
                "wtd": wtd or "–",
            }
        )
    return out


def _since(r: dict[str, Any]) -> str:
    n = r.get("weeks_in_health")
    if not n:
        return "–"
    return f"{n} week{'s' if n != 1 else ''} (since {r['health_since']:%d %b})"


def _callouts(data: ReportData) -> list[str]:
    dq = data.data_quality
    out = []

    def total(check: str) -> dict[str, Any] | None:
        rows = dq.filter(
            (pl.col("check_name") == check)
            & pl.col("workspace_id").is_null()
            & pl.col("service_line_id").is_null()
        )
        return rows.row(0, named=True) if rows.height else None

    if (t := total("unlinked_tasks")) and t["count"]:
        out.append(
            f"{t['count']} tasks ({t['share']:.1%}) have no service line: they are invisible "
            "to velocity. Set service_line_id on them."
        )
    dup_count = data.duplicates.height
    if dup_count:
        out.append(
            f"{dup_count} probable duplicates: the same title created in an external tool "
            "and directly in Scrums within 7 days."
        )
    if (t := total("agent_share_of_status_changes")) and t["total"]:
        out.append(f"Agents (AGT-*) made {t['share']:.0%} of {t['total']} status changes.")
    if (t := total("done_without_history")) and t["count"]:
        out.append(
            f"{t['count']} done tasks have no status history; their completion date is their "
            "last update."
        )
    if (t := total("missing_tasks")) and t["count"]:
        out.append(
            f"{t['count']} tasks are no longer returned by the API; they are kept but not counted."
        )
    stale = data.aging.filter(
        pl.col("exceeds_p85").fill_null(False) & (pl.col("age_basis") == "since_created")
    ).height
    if stale:
        out.append(
            f"{stale} backlog tasks have waited longer than 85% of their LIN's recent tasks "
            "took from creation to done."
        )
    rejected = dq.filter(pl.col("check_name") == "rejected_records")["count"].sum()
    if rejected:
        out.append(
            f"{rejected} API records could not be parsed and were quarantined "
            "(see the rejects dataset)."
        )
    unknown = dq.filter(pl.col("check_name") == "unknown_statuses")
    for r in unknown.iter_rows(named=True):
        out.append(f"{r['count']} tasks have an undocumented status {r['item']!r}.")
    if not out:
        out.append("No data-quality issues found.")
    return out


def _context(
    data: ReportData, config: Config, audience: str | None, warehouse: Path
) -> dict[str, Any]:
    from scrums_velocity.report.forecast_view import forecast_rows

    aging = data.aging.filter(
        pl.col("exceeds_p85").fill_null(False) & (pl.col("age_basis") == "since_started")
    ).head(AGING_LIMIT)
    rows = _rows(data)
    frows, calibration, trials = forecast_rows(data)
    return {
        "lin_names": data.labels,
        "drill": _drill(data, config, rows),
        "flagged": _flagged(data, rows),
        "drill_weeks": _drill_weeks_text(data),
        "week_label": f"{data.week:%d %b %Y}",
        "audience": audience,
        "timezone": data.timezone,
        "as_of": f"{data.as_of:%Y-%m-%d %H:%M %Z}",
        "baseline_weeks": data.baseline_weeks,
        "counts": data.counts,
        "styles": HEALTH_STYLE,
        "thresholds": config.health,
        "rows": rows,
        "show_wtd": data.is_latest_week,
        "spark_weeks": SPARK_WEEKS,
        "aging_limit": AGING_LIMIT,
        "aging_rows": [
            {
                "task_id": a["task_id"],
                "service_line_id": a["service_line_id"],
                "status": a["status"].replace("_", " "),
                "title": a["title"] or "",
                "age": _fmt(a["age_hours"] / 24),
                "p85": _fmt((a["reference_p85_hours"] or 0) / 24),
            }
            for a in aging.iter_rows(named=True)
        ],
        "callouts": _callouts(data),
        "duplicates": [
            {
                "service_line_id": d["service_line_id"],
                "bound": d["bound_task_id"],
                "unbound": d["unbound_task_id"],
                "title": d["bound_title"],
                "hours": _fmt(d["hours_apart"], 0),
            }
            # the closest pairs first (the likeliest duplicates), in a stable order
            for d in data.duplicates.sort(
                "hours_apart", "service_line_id", "bound_task_id", "unbound_task_id"
            )
            .head(DUPLICATES_LIMIT)
            .iter_rows(named=True)
        ],
        "forecast_rows": frows,
        "calibration_text": calibration,
        "forecast_trials": trials,
        "version": __version__,
        "generated_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
        "warehouse": warehouse.name,
    }


def _drill_weeks_text(data: ReportData) -> str:
    from scrums_velocity.report.drill import DRILL_WEEKS

    first = data.week - timedelta(weeks=DRILL_WEEKS - 1)
    return f"the {DRILL_WEEKS} weeks from {first:%d %b} to {data.week:%d %b %Y}"


def _drill(data: ReportData, config: Config, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per service line: the tasks behind the report week and its open work, oldest first."""
    from scrums_velocity.report.drill import week_events

    leads = {line.id: line.lead for line in config.service_lines if line.lead}
    open_counts = dict(
        data.aging.group_by("service_line_id").len().iter_rows() if data.aging.height else []
    )
    out = []
    for r in rows:
        lin = r["service_line_id"]
        events = week_events(data, lin, data.week)
        moved_in = sum(e["event"] == "moved_in" for e in events)
        moved_out = sum(e["event"] == "moved_out" for e in events)
        summary = (
            f"{r['completed']} completed ({r['agent_share']} by agents), {r['cancelled']} "
            f"cancelled, {r['reopened']} reopened, {moved_in} moved in, {moved_out} moved out; "
            f"{open_counts.get(lin, 0)} open now"
        )
        out.append(
            {
                "id": lin,
                "name": r["name"],
                "lead": leads.get(lin),
                "health": r["health"],
                "symbol": r["symbol"],
                "label": r["label"],
                "colour": r["colour"],
                "summary": summary,
                "open_total": open_counts.get(lin, 0),
            }
        )
    return out


def _flagged(data: ReportData, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At-risk and watch service lines: why, in words, and their three oldest open tasks."""
    from scrums_velocity.report.drill import EMAIL_OPEN, EMAIL_TITLE_CHARS, clip, explanation

    out = []
    for r in rows:
        if r["health"] not in ("at_risk", "watch"):
            continue
        oldest = open_work(data, r["service_line_id"], EMAIL_OPEN, started_first=True)
        for task in oldest:
            task["title"] = clip(task["title"], EMAIL_TITLE_CHARS)
        out.append(
            {
                **r,
                "why": explanation(
                    data,
                    {
                        "service_line_id": r["service_line_id"],
                        "completed": r["completed"],
                        "baseline_mean": r["baseline_mean_value"],
                    },
                ),
                "oldest": oldest,
            }
        )
    return out


def with_names(data: ReportData, config: Config) -> ReportData:
    """``data`` with the configuration's service-line names over the warehouse's (a name changed
    since the last build shows at once); ids without either keep the id."""
    names = config.service_line_names
    table = data.table
    if "service_line_name" not in table.columns:
        table = table.with_columns(pl.col("service_line_id").alias("service_line_name"))
    if names:
        table = table.with_columns(
            pl.col("service_line_id")
            .replace_strict(names, default=pl.col("service_line_name"), return_dtype=pl.String)
            .alias("service_line_name")
        )
    table = table.with_columns(pl.col("service_line_name").fill_null(pl.col("service_line_id")))
    return dataclasses.replace(data, table=table)


def render(
    data: ReportData,
    config: Config,
    *,
    audience: str | None = None,
    warehouse: Path = Path(WAREHOUSE),
    plotly_js: str | None = None,
) -> dict[str, str]:
    """The report's three texts: ``index.html``, ``email.html`` and the plain-text summary."""
    ctx = _context(data, config, audience, warehouse)
    index = _env.get_template("index.html.j2").render(
        **ctx,
        charts=all_charts(data),
        plotly_js=Markup(plotly_js or plotly_bundle()),  # noqa: S704 - plotly.js itself
        drill_json=Markup(drill_json(data)),  # noqa: S704 - JSON with < > & escaped
    )
    email = _env.get_template("email.html.j2").render(**ctx)
    # text/plain: HTML-escaping would corrupt it, and no client renders it as HTML
    plain = jinja2.Environment(
        autoescape=False,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        loader=_env.loader,
    )
    text = plain.get_template("summary.txt.j2").render(**ctx)
    return {"index.html": index, "email.html": email, "summary.txt": text}


def _table_frame(data: ReportData) -> pl.DataFrame:
    table = data.table
    if "service_line_name" not in table.columns:  # a warehouse from before names
        table = table.with_columns(pl.col("service_line_id").alias("service_line_name"))
    if "completed_by_agent" not in table.columns:
        table = table.with_columns(
            pl.lit(None, dtype=pl.Int64).alias("completed_by_agent"),
            pl.lit(None, dtype=pl.Float64).alias("agent_share"),
        )
    cols = [
        "service_line_id",
        "service_line_name",
        "workspace_id",
        "week_start",
        "health",
        "weeks_in_health",
        "health_since",
        "completed",
        "cancelled",
        "reopened",
        "completed_by_agent",
        "agent_share",
        "baseline_weeks",
        "baseline_mean",
        "baseline_median",
        "baseline_stddev",
        "velocity_ratio",
        "p_value_below",
        "wtd_completed",
        "wtd_expected",
        "wtd_ratio",
        "spark",
    ]
    return table.select(cols).rename({"spark": f"completed_last_{SPARK_WEEKS}_weeks"})


# Cells a spreadsheet would take for a formula (OWASP, "CSV Injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every text cell that a spreadsheet would run as a formula prefixed by ``'``.

    Only string columns change: numbers (negative ones too), dates and booleans stay typed.
    """
    return frame.with_columns(
        pl.when(pl.any_horizontal(pl.col(name).str.starts_with(c) for c in FORMULA_PREFIXES))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.String
    )


def _write_dir(directory: Path, texts: dict[str, str], data: ReportData) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, text in texts.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        files[name] = path
    frame = _table_frame(data)
    frame.write_parquet(directory / "velocity.parquet")
    spark_col = f"completed_last_{SPARK_WEEKS}_weeks"
    csv_safe(
        frame.with_columns(pl.col(spark_col).cast(pl.List(pl.String)).list.join(" "))
    ).write_csv(directory / "velocity.csv")
    files["velocity.parquet"] = directory / "velocity.parquet"
    files["velocity.csv"] = directory / "velocity.csv"
    return files


def _check_data_dir(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"data dir {data_dir} is not a directory")
    warehouse_path(data_dir)  # BuildError naming 'velocity build' when there is none


def remove_leftovers(reports: Path) -> list[Path]:
    """Remove what killed report runs left in ``reports/``; call only under the data-dir lock.

    Holding the lock, no other report run can be writing: every ``.<week>.<pid>.tmp`` directory,
    every ``.<week>.link.<pid>`` symlink and every version no ``<week>`` link points at is stale.
    """
    if not reports.is_dir():
        return []
    removed: list[Path] = []
    for path in [*reports.glob(".*.tmp"), *reports.glob(".*.link.*")]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        removed.append(path)
    versions = reports / ".versions"
    if versions.is_dir():
        live = {
            (reports / os.readlink(link)).resolve()
            for link in reports.iterdir()
            if link.is_symlink() and not link.name.startswith(".")
        }
        for version in versions.iterdir():
            if version.resolve() not in live:
                shutil.rmtree(version, ignore_errors=True)
                removed.append(version)
    if removed:
        event("report.leftovers_removed", count=len(removed), directory=str(reports))
    return removed


def write_report(
    data_dir: Path, config: Config, week: date | None = None, *, lock: bool = True
) -> ReportResult:
    """``velocity report``: render the week's report (and each lead's) and swap it in.

    Takes the data dir's lock unless the caller holds it (``lock=False``: ``velocity nightly``).
    """
    _check_data_dir(data_dir)
    guard = data_dir_lock(data_dir, "velocity report") if lock else contextlib.nullcontext()
    with guard:
        return _write_report(data_dir, config, week)


def _lead_dirs(config: Config) -> dict[str, str]:
    """lead email -> directory name; two leads of one address are refused, never merged."""
    keys: dict[str, str] = {}
    for lead in config.leads:
        if lead.key in keys.values():
            raise ConfigError(
                f"{lead.email.lower()} is configured twice (emails are compared ignoring case): "
                "merge their service_lines into one lead"
            )
        keys[lead.email] = lead.key
    return keys


def _write_report(data_dir: Path, config: Config, week: date | None) -> ReportResult:
    t0 = time.monotonic()
    lead_dirs = _lead_dirs(config)
    data = with_names(load_report_data(data_dir, week), config)
    reports = data_dir / "reports"
    try:
        remove_leftovers(reports)
    except OSError as exc:
        raise ReportError(f"cannot clean up {reports}: {exc.strerror or exc}") from None
    final = reports / data.week.isoformat()
    tmp = reports / f".{data.week.isoformat()}.{os.getpid()}.tmp"
    plotly_js = plotly_bundle()
    warehouse = data_dir / WAREHOUSE
    result = ReportResult(final, data.week)
    try:
        files = _write_dir(
            tmp, render(data, config, warehouse=warehouse, plotly_js=plotly_js), data
        )
        known = set(data.table["service_line_id"].to_list())
        for lead in config.leads:
            lins = config.lins_of(lead)
            mine = set(lins) & known
            if not mine:
                event(
                    "report.lead_without_lins",
                    lead=lead.email,
                    service_lines=",".join(lins),
                )
            sub = data.for_lins(set(lins))
            _write_dir(
                tmp / "leads" / lead_dirs[lead.email],
                render(sub, config, audience=lead.name, warehouse=warehouse, plotly_js=plotly_js),
                sub,
            )
            result.leads[lead.email] = final / "leads" / lead_dirs[lead.email]
        _swap_in(tmp, final)
        write_archive(reports)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ReportError(f"cannot write the report to {final}: {exc.strerror or exc}") from None
    result.files = {name: final / path.name for name, path in files.items()}
    result.sizes = {n: (final / n).stat().st_size for n in ("index.html", "email.html")}
    result.duration_s = time.monotonic() - t0
    event(
        "report.done",
        week=str(data.week),
        directory=str(final),
        leads=len(result.leads),
        index_kib=result.sizes["index.html"] // 1024,
        email_kib=result.sizes["email.html"] // 1024,
    )
    return result


def write_archive(reports: Path) -> Path:
    """``reports/index.html``: every week's report, newest first, with its headline counts.

    Written beside and renamed over the old one (a reader never sees half a page); a killed
    run's ``.index.html.<pid>.tmp`` is removed with the other leftovers."""
    weeks = []
    for path in sorted(reports.glob("????-??-??"), reverse=True):
        if not (path / "index.html").exists():
            continue
        headline = ""
        with contextlib.suppress(OSError, UnicodeDecodeError):
            lines = (path / "summary.txt").read_text(encoding="utf-8").splitlines()
            headline = lines[1] if len(lines) > 1 else ""
        leads = (
            sorted(p.name for p in (path / "leads").iterdir()) if (path / "leads").is_dir() else []
        )
        weeks.append({"week": path.name, "headline": headline, "leads": leads})
    text = _env.get_template("archive.html.j2").render(
        weeks=weeks, generated_at=f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}", version=__version__
    )
    target = reports / "index.html"
    tmp = reports / f".index.html.{os.getpid()}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target


def _swap_in(tmp: Path, final: Path) -> None:
    """Make ``final`` (a symlink) point at the complete directory ``tmp``, atomically.

    ``reports/<week>`` is a link to ``reports/.versions/<week>-<stamp>``: readers see the old
    report or the new one, never a gap. Older versions of the week are removed afterwards.
    """
    versions = final.parent / ".versions"
    versions.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    target = versions / f"{final.name}-{stamp}"
    os.rename(tmp, target)
    if final.exists() and not final.is_symlink():  # a report directory from before versions
        shutil.rmtree(final)
    link_tmp = final.with_name(f".{final.name}.link.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        link_tmp.unlink()
    os.symlink(os.path.relpath(target, final.parent), link_tmp)
    os.replace(link_tmp, final)
    for old in versions.glob(f"{final.name}-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
