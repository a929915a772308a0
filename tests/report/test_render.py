"""The report files: content, escaping of task text, CSV/Parquet, weeks, leads, atomic swap."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date, timedelta
from types import SimpleNamespace

import duckdb
import polars as pl
import pytest

from scrums_velocity.errors import ConfigError
from scrums_velocity.report.plotting import unpack
from scrums_velocity.report.render import _write_dir, write_report
from tests.report.conftest import IMG_TITLE, SCRIPT_TITLE


@pytest.fixture(scope="module")
def report(built):
    return write_report(built.data_dir, built.config())


def marts(built, name):
    con = duckdb.connect(str(built.data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.table(f"marts.{name}").pl()
    finally:
        con.close()


def test_files_and_the_latest_complete_week(built, report):
    weekly = marts(built, "lin_velocity_weekly")
    latest = weekly.filter(pl.col("week_complete"))["week_start"].max()
    assert report.week == latest
    assert report.directory == built.data_dir / "reports" / latest.isoformat()
    assert report.directory.is_symlink()
    for name in ("index.html", "email.html", "velocity.csv", "velocity.parquet", "summary.txt"):
        assert (report.directory / name).stat().st_size > 0


def test_table_rows_match_the_warehouse(built, report):
    week = report.week
    weekly = marts(built, "lin_velocity_weekly").filter(pl.col("week_start") == week)
    table = pl.read_parquet(report.directory / "velocity.parquet")
    assert table.height == weekly.height == len(built.ds.service_lines)
    joined = table.join(weekly, on="service_line_id", suffix="_w")
    assert (joined["completed"] == joined["completed_w"]).all()
    assert (joined["health"] == joined["health_w"]).all()
    spark = table["completed_last_12_weeks"].to_list()
    assert all(1 <= len(s) <= 12 for s in spark)
    # the sparkline's last value is the week's completions
    assert [s[-1] for s in spark] == table["completed"].to_list()
    csv = pl.read_csv(report.directory / "velocity.csv")
    assert csv.height == table.height
    assert set(csv["health"]) == set(table["health"])


def test_headline_and_table_in_both_html_files(built, report):
    index = (report.directory / "index.html").read_text()
    email = (report.directory / "email.html").read_text()
    table = pl.read_parquet(report.directory / "velocity.parquet")
    counts = table["health"].value_counts()
    at_risk = dict(zip(counts["health"], counts["count"], strict=True)).get("at_risk", 0)
    assert at_risk >= 1  # the generator's slowdown LINs
    assert re.search(rf"<b>{at_risk}</b>▼ At risk", index)
    for lin in table["service_line_id"]:
        assert lin in index
        assert lin in email
    assert "Weekly completions against baseline" in index
    assert len(chart_figures(index)) == 6
    assert "Is a dip real? Process-behaviour chart" in index
    assert "Forecast: when will the open work be done?" in index
    assert "85% date was met" in index


def chart_figures(index: str) -> list[dict]:
    """The figures of the page's charts, unpacked."""
    packed = re.findall(r'plots\.push\(plot\("chart-[a-z-]+", "([^"]*)"\)\);', index)
    return [json.loads(unpack(p)) for p in packed]


def test_task_text_is_escaped_everywhere(built, report):
    for name in ("index.html", "email.html"):
        text = (report.directory / name).read_text()
        assert SCRIPT_TITLE not in text, name
        assert IMG_TITLE not in text, name
        assert "<img" not in text, name
    index = (report.directory / "index.html").read_text()
    # the aging table and the duplicates table show them, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "&#34;&gt;&lt;img src=x onerror=alert(document.cookie)&gt;" in index
    assert built.aging_task in index
    assert built.duplicate_pair[0] in index
    # charts travel packed (base64: no < > & or quote at all); inside, every < > & is a \\u
    # escape as well, so no string can close the <script> element even unpacked
    packed = re.findall(r'plots\.push\(plot\("chart-[a-z-]+", "([^"]*)"\)\);', index)
    assert len(packed) == 6
    assert all(re.fullmatch(r"[A-Za-z0-9+/=]+", p) for p in packed)
    assert not any(c in unpack(p) for p in packed for c in "<>&")
    # and the only <script> elements are plotly.js, the unpacker, six chart calls, the drill-down
    assert index.count("<script>") == 9


def test_email_has_forecast_dates_and_signals_in_words(built, report):
    email = (report.directory / "email.html").read_text()
    summary = (report.directory / "summary.txt").read_text()
    assert "Forecasts and signals" in email
    assert "85% likely done by" in email
    con = duckdb.connect(str(built.data_dir / "warehouse.duckdb"), read_only=True)
    reasons = (
        con.table("marts.lin_velocity_signals")
        .filter(f"week_start = DATE '{report.week}' and has_signal")
        .pl()
    )
    con.close()
    assert reasons.height >= 1  # the slowdown LINs show signals
    first = reasons["reason"][0]
    assert first.replace("'", "&#39;") in email or first in email
    assert first in summary
    assert "Forecasts (85% likely done by):" in summary


def test_email_is_self_contained_and_small(report):
    email = (report.directory / "email.html").read_text()
    assert "<script" not in email.lower()
    assert "<style" not in email.lower()  # inline CSS only
    # nothing is fetched: the only URLs are links to tasks, which open in a new tab
    assert not re.search(r"""src=["']?https?:""", email, re.IGNORECASE)
    assert "url(" not in email
    links = re.findall(r"<a [^>]*>", email)
    assert links  # the oldest open tasks of the at-risk and watch lines
    for a in links:
        assert re.match(r'<a href="https?://[^"]+" target="_blank" rel="noopener"', a), a
    assert len(email.encode()) < 60 * 1024


def test_index_needs_no_network(report):
    index = (report.directory / "index.html").read_text()
    bundle_start = index.index("<script>")
    bundle_end = index.index("</script>", bundle_start)
    markup = index[:bundle_start] + index[bundle_end:]  # the page without plotly.js's own source
    assert not re.search(r"""(src|href)=["']?https?://""", markup)
    assert "<script src" not in index
    assert "cdn.plot.ly" not in markup
    assert "default-src 'none'" in index  # the page may not fetch anything


def test_each_lead_gets_only_their_lins(built, report):
    ada = report.leads["ada@example.com"]
    table = pl.read_parquet(ada / "velocity.parquet")
    assert sorted(table["service_line_id"]) == sorted(built.lead_lins)
    others = set(s.id for s in built.ds.service_lines) - set(built.lead_lins)
    email = (ada / "email.html").read_text()
    assert not [lin for lin in others if lin in email]
    assert "Ada &lt;Lovelace&gt;" in email  # the lead's name is escaped too


def test_an_earlier_week_and_bad_weeks(built, report):
    earlier = report.week - timedelta(weeks=3)
    result = write_report(built.data_dir, built.config(), earlier)
    assert result.directory.name == earlier.isoformat()
    index = (result.directory / "index.html").read_text()
    assert "This week so far" not in index  # week-to-date only for the latest week
    # a bad --week is a bad argument (exit 2), not a failed report
    with pytest.raises(ConfigError, match="is not a Monday"):
        write_report(built.data_dir, built.config(), report.week + timedelta(days=1))
    with pytest.raises(ConfigError, match="is not a complete week"):
        write_report(built.data_dir, built.config(), report.week + timedelta(weeks=1))


def test_rewriting_a_week_swaps_the_whole_directory(built, report):
    first = report.directory.resolve()
    again = write_report(built.data_dir, built.config(), report.week)
    assert again.directory.resolve() != first
    assert not first.exists()  # the old version is gone once the new one is in place
    assert (again.directory / "index.html").exists()


def _one_row_table(**over) -> pl.DataFrame:
    row = {
        "service_line_id": "LIN-26-000001",
        "service_line_name": "+Payments",  # a configured name is neutralised like any text
        "workspace_id": "WS-26-000021",
        "week_start": date(2026, 11, 16),
        "health": "healthy",
        "weeks_in_health": 2,
        "health_since": date(2026, 11, 9),
        "completed": 5,
        "cancelled": 0,
        "reopened": 1,
        "completed_by_agent": 2,
        "agent_share": 0.4,
        "baseline_weeks": 12,
        "baseline_mean": 4.5,
        "baseline_median": 4.0,
        "baseline_stddev": 1.25,
        "velocity_ratio": 1.1,
        "p_value_below": 0.7,
        "wtd_completed": None,
        "wtd_expected": None,
        "wtd_ratio": -0.25,
        "spark": [3, 4, 5],
        **over,
    }
    return pl.DataFrame([row])


def test_csv_neutralises_formulas_and_parquet_keeps_exact_values(tmp_path):
    hostile = [
        '=HYPERLINK("http://evil","x")',
        "+1+2",
        "-2+3",
        "@SUM(A1:A9)",
        "\tTAB",
        "\rCR",
        "LIN-26-000001",
    ]
    table = pl.concat(
        [
            _one_row_table(service_line_id=lin, workspace_id=ws, health=health)
            for lin, ws, health in zip(hostile, reversed(hostile), ["=1+1"] * 7, strict=True)
        ]
    )
    files = _write_dir(tmp_path, {}, SimpleNamespace(table=table))
    exact = pl.read_parquet(files["velocity.parquet"])
    assert exact["service_line_id"].to_list() == hostile
    assert exact["workspace_id"].to_list() == list(reversed(hostile))
    csv = pl.read_csv(files["velocity.csv"])
    assert csv["service_line_id"].to_list() == [
        '\'=HYPERLINK("http://evil","x")',
        "'+1+2",
        "'-2+3",
        "'@SUM(A1:A9)",
        "'\tTAB",
        "'\rCR",
        "LIN-26-000001",
    ]
    assert csv["workspace_id"][0] == "LIN-26-000001"
    assert set(csv["service_line_name"]) == {"'+Payments"}
    assert exact["service_line_name"][0] == "+Payments"
    assert csv["workspace_id"][6] == '\'=HYPERLINK("http://evil","x")'
    assert set(csv["health"]) == {"'=1+1"}
    # numbers stay numbers, negative ones too; dates stay dates
    assert csv["wtd_ratio"].to_list() == [-0.25] * 7
    assert csv["completed"].to_list() == [5] * 7
    assert csv.schema["wtd_ratio"] == pl.Float64
    assert csv["completed_last_12_weeks"].to_list() == ["3 4 5"] * 7
    assert files["velocity.csv"].read_text().splitlines()[1] == (
        '"\'=HYPERLINK(""http://evil"",""x"")",\'+Payments,LIN-26-000001,2026-11-16,\'=1+1,2,'
        "2026-11-09,5,0,1,2,0.4,12,4.5,4.0,1.25,1.1,0.7,,,-0.25,3 4 5"
    )


def test_a_killed_report_leaves_tmp_dirs_that_the_next_report_removes(built, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(built.data_dir / "warehouse.duckdb", data_dir / "warehouse.duckdb")
    reports = data_dir / "reports"
    stale = reports / ".2026-11-09.4242.tmp"
    (stale / "leads" / "x").mkdir(parents=True)
    (stale / "index.html").write_text("half a report")
    other_week = reports / ".2026-10-05.77.tmp"
    other_week.mkdir()
    link = reports / ".2026-11-09.link.4242"
    link.symlink_to("nowhere")
    orphan = reports / ".versions" / "2026-11-09-20261110T050000000000"
    orphan.mkdir(parents=True)
    half_archive = reports / ".index.html.4242.tmp"
    half_archive.write_text("half an archive page")
    result = write_report(data_dir, built.config())
    assert sorted(p.name for p in reports.iterdir()) == [
        ".versions",
        result.week.isoformat(),
        "index.html",  # the archive of every week's report
    ]
    assert [p.name for p in (reports / ".versions").iterdir()] == [result.directory.resolve().name]
    again = write_report(data_dir, built.config())  # the live version of another run stays
    assert (again.directory / "index.html").exists()


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCRUMS_", "VELOCITY_"))}
    return subprocess.run(
        [sys.executable, "-m", "scrums_velocity", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=os.path.dirname(__file__),  # no velocity.toml here
    )


def test_a_truncated_warehouse_is_one_error_line_naming_the_fix(built, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(built.data_dir / "warehouse.duckdb", warehouse)
    whole = warehouse.stat().st_size
    os.truncate(warehouse, whole // 2)
    r = cli("report", "--data-dir", str(tmp_path))
    assert r.returncode == 6, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [
        f"Error: the warehouse {warehouse} is damaged (truncated: {whole // 2} of {whole} bytes): "
        "rebuild it with 'velocity build'"
    ]
    assert not (tmp_path / "reports").exists()


def test_bad_data_dirs_are_one_error_line(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    r = cli("report", "--data-dir", str(a_file))
    assert (r.returncode, r.stderr.splitlines()) == (
        2,
        [f"Error: data dir {a_file} is not a directory"],
    )
    missing = tmp_path / "missing"
    r = cli("email", "--data-dir", str(missing))
    assert (r.returncode, r.stderr.splitlines()) == (
        7,
        [f"Error: no report in {missing}/reports: run 'velocity report' first"],
    )
    r = cli("report", "--data-dir", str(missing))
    assert (r.returncode, r.stderr.splitlines()) == (
        6,
        [f"Error: no warehouse at {missing}/warehouse.duckdb: run 'velocity build' first"],
    )
    assert not missing.exists()
