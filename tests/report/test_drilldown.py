"""Service-line names, the tasks behind the numbers, agents' share, links, sizes and the archive."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from scrums_velocity.config import ServiceLine
from scrums_velocity.report.charts import all_charts
from scrums_velocity.report.data import load_report_data
from scrums_velocity.report.drill import (
    DRILL_WEEKS,
    OPEN_LIMIT,
    drill_payload,
    read_drill_json,
    safe_url,
)
from scrums_velocity.report.render import PLOTLY_JS, render, with_names, write_report
from tests.report.conftest import HOSTILE_NAME
from tests.report.test_render import chart_figures

HOSTILE_ESCAPED = "Payments &lt;b&gt;&amp;&lt;/b&gt; &#39;Core&#39;"
INDEX_LIMIT = 2_000_000  # bytes: light enough to attach to every lead's email
EMAIL_LIMIT = 60 * 1024


@pytest.fixture(scope="module")
def report(built):
    return write_report(built.data_dir, built.config())


def sql(built, query: str, *params) -> list[dict]:
    con = duckdb.connect(str(built.data_dir / "warehouse.duckdb"), read_only=True)
    try:
        cur = con.execute(query, list(params))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def payload_of(index_html: str) -> dict:
    packed = re.search(r'return unpack\("([A-Za-z0-9+/=]*)"\)', index_html)
    assert packed, "no drill-down data in the page"
    return read_drill_json(packed.group(1))


def test_names_everywhere_with_the_id_as_fallback(built, report):
    named, platform = list(built.names)
    unnamed = built.ds.service_lines[2].id
    index = (report.directory / "index.html").read_text()
    email = (report.directory / "email.html").read_text()
    summary = (report.directory / "summary.txt").read_text()
    for text in (index, email):
        assert HOSTILE_ESCAPED in text  # shown, escaped like task text
        assert "<b>&</b>" not in text
        assert ">Platform<" in text or ">Platform " in text
    assert f"{HOSTILE_NAME} ({named}):" in summary  # plain text: the name as written
    assert f"Platform ({platform}):" in summary
    assert f"- {unnamed}: " in summary  # no name: the id alone
    csv = pl.read_csv(report.directory / "velocity.csv")
    names = dict(zip(csv["service_line_id"], csv["service_line_name"], strict=True))
    assert names[named] == HOSTILE_NAME
    assert names[platform] == "Platform"
    assert names[unnamed] == unnamed
    latest = sql(built, "select service_line_id, service_line_name from marts.lin_velocity_latest")
    assert {r["service_line_id"]: r["service_line_name"] for r in latest} == names
    # the chart labels carry the names too (escaped before plotly sees them)
    charts = json.dumps(chart_figures(index), ensure_ascii=False)
    assert "Payments &lt;b&gt;" in charts


def test_a_name_changed_in_the_configuration_shows_before_the_next_build(built):
    config = built.config()
    config = config.model_copy(
        update={"service_lines": [ServiceLine(id=list(built.names)[1], name="Platform Renamed")]}
    )
    data = with_names(load_report_data(built.data_dir), config)
    assert data.names[list(built.names)[1]] == "Platform Renamed"
    assert data.names[next(iter(built.names))] == HOSTILE_NAME  # still the warehouse's


def test_drill_down_rows_equal_the_marts_for_a_lin_week(built, report):
    index = (report.directory / "index.html").read_text()
    payload = payload_of(index)
    assert payload["week"] == report.week.isoformat()
    assert len(payload["weeks"]) == DRILL_WEEKS
    lin = built.ds.service_lines[3].id
    checked = 0
    for back in range(DRILL_WEEKS):
        week = report.week - timedelta(weeks=back)
        got = [
            (payload["tasks"][r[0]][0], payload["kinds"][r[1]])
            for r in payload["events"].get(f"{lin}|{week.isoformat()}", [])
        ]
        expected = sql(
            built,
            """select task_id, replace(event, '_', ' ') as event from marts.lin_week_tasks
               where service_line_id = ? and week_start = ?""",
            lin,
            week,
        )
        assert sorted(got) == sorted((r["task_id"], r["event"]) for r in expected), week
        checked += len(got)
    assert checked > 10  # the LIN had work in those weeks
    # each week's completed rows are the week's completed count
    weekly = sql(
        built,
        "select completed from marts.lin_velocity_weekly where service_line_id = ? "
        "and week_start = ?",
        lin,
        report.week,
    )[0]
    rows = payload["events"].get(f"{lin}|{report.week.isoformat()}", [])
    assert sum(payload["kinds"][r[1]] == "completed" for r in rows) == weekly["completed"]
    # open work: the oldest first, as many as OPEN_LIMIT, with assignee
    oldest = sql(
        built,
        """select task_id, assignee_id, round(age_hours / 24, 1) as age from marts.lin_aging_wip
           where service_line_id = ? order by age_hours desc, task_id limit ?""",
        lin,
        OPEN_LIMIT,
    )
    opened = payload["open"][lin]
    assert [payload["tasks"][r[0]][0] for r in opened] == [r["task_id"] for r in oldest]
    assert [payload["tasks"][r[0]][3] for r in opened] == [r["assignee_id"] or "" for r in oldest]
    assert [r[1] for r in opened] == [float(r["age"]) for r in oldest]


def test_only_http_urls_become_links():
    assert (
        safe_url("https://acme.atlassian.net/browse/APEX-1")
        == "https://acme.atlassian.net/browse/APEX-1"
    )
    assert safe_url("HTTP://linear.app/x/issue/X-1") == "HTTP://linear.app/x/issue/X-1"
    for bad in (
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        " javascript:alert(1)",
        "\tjavascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "//evil.example/x",
        "https://x.example/a b",
        'https://x.example/"onmouseover=alert(1)',
        "https://x.example/<script>",
        "https://x.example/\nSet-Cookie: a",
        "",
        None,
    ):
        assert safe_url(bad) is None, bad


def test_a_javascript_url_from_the_api_is_never_a_link(built):
    data = with_names(load_report_data(built.data_dir), built.config())
    evil = "javascript:alert('pwned')"
    aged = data.aging.with_columns(pl.lit(evil).alias("external_url"))
    weekly = data.week_tasks.with_columns(pl.lit(evil).alias("external_url"))
    data = dataclasses.replace(data, aging=aged, week_tasks=weekly)
    texts = render(data, built.config(), plotly_js="/* plotly */")
    for name, text in texts.items():
        assert "javascript:" not in text.lower(), name
    payload = drill_payload(data)
    assert payload["prefixes"] == []
    assert all(t[4] == -1 and t[5] == "" for t in payload["tasks"])
    # the page checks again before it makes a link (defence in depth)
    assert "function link(url) { return /^https?:" in texts["index.html"]


def test_links_open_in_a_new_tab_and_only_to_the_tasks(built, report):
    payload = payload_of((report.directory / "index.html").read_text())
    urls = [payload["prefixes"][t[4]] + t[5] for t in payload["tasks"] if t[4] >= 0]
    assert urls  # synced tasks are linked
    assert all(re.match(r"^https?://", u) for u in urls)
    email = (report.directory / "email.html").read_text()
    for a in re.findall(r"<a [^>]*>", email):
        assert ' target="_blank" rel="noopener"' in a


def test_the_email_explains_each_flagged_lin_with_its_oldest_open_tasks(built, report):
    email = (report.directory / "email.html").read_text()
    summary = (report.directory / "summary.txt").read_text()
    table = pl.read_parquet(report.directory / "velocity.parquet")
    flagged = table.filter(pl.col("health").is_in(["at_risk", "watch"]))
    assert flagged.height >= 1
    start = email.index("Why, and the oldest open work")
    section = email[start : email.index("Forecasts and signals", start)]
    for r in flagged.iter_rows(named=True):
        sentence = f"{r['completed']} done vs usual {r['baseline_mean']:.1f}"
        assert sentence in section, r["service_line_id"]
        assert sentence in summary
        oldest = sql(
            built,
            """select task_id from marts.lin_aging_wip where service_line_id = ?
               order by status = 'backlog', age_hours desc, task_id limit 3""",
            r["service_line_id"],
        )
        for task in oldest:
            assert task["task_id"] in section
    healthy = table.filter(pl.col("health") == "healthy")["service_line_id"][0]
    assert f"({healthy})" not in section
    assert f">{healthy}<" not in section
    assert re.search(r"\d+ tasks? in (review|progress) for over \d+ days", summary)


def test_agents_share_per_lin_and_week(built, report):
    index = (report.directory / "index.html").read_text()
    assert '<th class="num">By agents</th>' in index
    weekly = sql(
        built,
        """select service_line_id, completed, completed_by_agent from marts.lin_velocity_weekly
           where week_start = ?""",
        report.week,
    )
    assert sum(r["completed_by_agent"] for r in weekly) > 0  # agents close about 25%
    csv = pl.read_csv(report.directory / "velocity.csv")
    by_lin = {r["service_line_id"]: r for r in weekly}
    for r in csv.iter_rows(named=True):
        w = by_lin[r["service_line_id"]]
        assert r["completed_by_agent"] == w["completed_by_agent"]
        if w["completed"]:
            assert r["agent_share"] == pytest.approx(w["completed_by_agent"] / w["completed"])
    # every week's bar says it on hover
    assert "by agents (AGT-*)" in json.dumps(chart_figures(index))


def test_sizes(report):
    index = (report.directory / "index.html").stat().st_size
    email = (report.directory / "email.html").stat().st_size
    assert index <= INDEX_LIMIT, index
    assert email < EMAIL_LIMIT, email


def test_vendored_plotly_is_the_cartesian_bundle_with_its_licence(report):
    vendor = PLOTLY_JS.parent
    version = (vendor / "VERSION").read_text().strip()
    js = PLOTLY_JS.read_text(encoding="utf-8")
    assert js.startswith(f"/**\n* plotly.js (cartesian - minified) v{version}\n")
    assert hashlib.sha256(js.encode()).hexdigest() == (
        "79542150855a52c567260e3137095dbe2b744e6d702a5cabe67da246942fba7a"
    )
    licence = (vendor / "plotly-cartesian.LICENSE").read_text()
    assert "MIT" in licence or "Permission is hereby granted" in licence
    from plotly.offline import get_plotlyjs_version

    assert version.split(".")[0] == get_plotlyjs_version().split(".")[0]  # same major
    bundled = set(re.findall(r'moduleType:"trace",name:"(\w+)"', js))
    index = (report.directory / "index.html").read_text()
    used = {
        trace.get("type", "scatter") for figure in chart_figures(index) for trace in figure["data"]
    }
    assert {"bar", "scatter", "heatmap"} <= used
    assert used <= bundled, used - bundled
    assert js in index  # the page carries the vendored bundle, not the full one


def test_every_trace_type_the_charts_use_is_in_the_bundle(built):
    js = PLOTLY_JS.read_text(encoding="utf-8")
    bundled = set(re.findall(r'moduleType:"trace",name:"(\w+)"', js))
    data = load_report_data(built.data_dir)
    types = {
        trace.get("type", "scatter")
        for chart in all_charts(data)
        for trace in json.loads(chart.json)["data"]
    }
    assert types
    assert types <= bundled, types - bundled


def test_the_archive_lists_every_week_newest_first(built, report, tmp_path):
    earlier = write_report(built.data_dir, built.config(), report.week - timedelta(weeks=2))
    archive = (built.data_dir / "reports" / "index.html").read_text()
    links = re.findall(r'<a href="(\d{4}-\d{2}-\d{2})/index.html">', archive)
    assert links[:1] == [report.week.isoformat()]
    assert earlier.week.isoformat() in links
    assert links == sorted(links, reverse=True)
    weeks = sorted(p.name for p in (built.data_dir / "reports").glob("????-??-??"))
    assert sorted(links) == weeks
    assert "at risk" in archive  # each week's headline
    assert "<script" not in archive


def test_config_check_warns_about_unknown_ids(built, tmp_path):
    import os
    import subprocess
    import sys

    known = built.ds.service_lines[0].id
    toml = tmp_path / "velocity.toml"
    toml.write_text(
        f'data_dir = "{built.data_dir}"\n'
        f'[[service_lines]]\nid = "{known}"\nname = "Payments"\n'
        '[[service_lines]]\nid = "LIN-26-999999"\nname = "Typo"\nlead = "nobody@example.com"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCRUMS_", "VELOCITY_"))}
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "config", "check", "-c", str(toml)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "Warning: service_lines.1.id: LIN-26-999999 (Typo) is not in the warehouse",
        "Warning: service_lines.1.lead: nobody@example.com is not a configured lead (no "
        "[[leads]] entry with that address): nobody gets this LIN's report",
    ]
    assert '"name": "Payments"' in r.stdout


def test_a_service_lines_lead_gets_it_in_their_report(built, tmp_path):
    lin = built.ds.service_lines[4].id
    config = built.config()
    config = config.model_copy(
        update={
            "service_lines": [
                *config.service_lines,
                ServiceLine(id=lin, name="Search", lead="GRACE@example.com"),
            ]
        }
    )
    grace = next(lead for lead in config.leads if lead.email == "grace@example.com")
    assert config.lins_of(grace) == [built.ds.service_lines[0].id, lin]


def test_index_size_is_measured_on_disk(report):
    assert Path(report.directory / "index.html").stat().st_size == report.sizes["index.html"]
