"""The report files: content, escaping of task text, CSV/Parquet, weeks, leads, atomic swap."""

from __future__ import annotations

import re
from datetime import timedelta

import duckdb
import polars as pl
import pytest

from scrums_velocity.errors import ReportError
from scrums_velocity.report.render import write_report
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
    assert index.count("Plotly.newPlot(") == 6
    assert "Is a dip real? Process-behaviour chart" in index
    assert "Forecast: when will the open work be done?" in index
    assert "85% date was met" in index


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
    # inside chart JSON every < > & is a \\u escape: no string can close the <script> element
    scripts = re.findall(r"var f = (.*?); Plotly\.newPlot", index)
    assert len(scripts) == 6
    assert not any(c in s for s in scripts for c in "<>&")
    # and the only <script> elements are plotly.js and the six chart calls
    assert index.count("<script>") == 7


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
    assert "http://" not in email
    assert "https://" not in email
    assert len(email.encode()) < 100 * 1024


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
    with pytest.raises(ReportError, match="is not a Monday"):
        write_report(built.data_dir, built.config(), report.week + timedelta(days=1))
    with pytest.raises(ReportError, match="is not a complete week"):
        write_report(built.data_dir, built.config(), report.week + timedelta(weeks=1))


def test_rewriting_a_week_swaps_the_whole_directory(built, report):
    first = report.directory.resolve()
    again = write_report(built.data_dir, built.config(), report.week)
    assert again.directory.resolve() != first
    assert not first.exists()  # the old version is gone once the new one is in place
    assert (again.directory / "index.html").exists()
