"""index.html in headless Chromium: no errors, every chart drawn, hostile titles inert, no network.

Uses Debian's chromium (/usr/bin/chromium), which .ci/run installs when absent, driven by
Playwright's Python API (its driver ships in the wheel; no browser download).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from scrums_velocity.report.render import write_report
from tests.report.conftest import IMG_TITLE, SCRIPT_TITLE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing in CI: .ci/run should have installed it")
    pytest.skip(
        "Debian's chromium is not installed here (apt-get install chromium); CI installs it",
        allow_module_level=True,
    )

from playwright.sync_api import sync_playwright  # noqa: E402


@pytest.mark.slow
def test_report_in_headless_chromium(built, tmp_path):
    report = write_report(built.data_dir, built.config())
    assert (report.directory / "index.html").stat().st_size <= 2_000_000
    index = (report.directory / "index.html").resolve()
    events: dict[str, list] = {"console": [], "pageerror": [], "dialog": [], "requests": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: events["console"].append((m.type, m.text)))
        page.on("pageerror", lambda e: events["pageerror"].append(str(e)))
        page.on("dialog", lambda d: (events["dialog"].append(d.message), d.dismiss()))
        page.on("request", lambda r: events["requests"].append(r.url))
        page.goto(index.as_uri())
        page.wait_for_function(
            "[...document.querySelectorAll('.chart')].every(c => c.querySelector('.main-svg'))"
        )
        drawn = page.eval_on_selector_all(
            ".chart",
            "els => els.map(e => [e.id, e.querySelectorAll('.main-svg').length, "
            "e.querySelectorAll('g.trace, g.hm, .heatmaplayer image, .heatmaplayer g').length])",
        )
        page.wait_for_selector("#drilldown[data-ready=true]")
        drill = _click_through(page)
        aging_text = page.inner_text("#aging-table")
        dq_text = page.inner_text("#data-quality")
        injected = page.evaluate(
            "() => document.querySelectorAll('#aging-table script, #data-quality img').length"
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"))
        page.screenshot(path=str(ARTIFACTS / "report-full.png"), full_page=True)
        browser.close()
    errors = [t for kind, t in events["console"] if kind == "error"]
    assert errors == []
    assert events["pageerror"] == []
    assert events["dialog"] == []  # no script from task data ran (the titles call alert)
    assert len(drawn) == 6
    for chart_id, svgs, marks in drawn:
        assert svgs >= 1, chart_id
        assert marks >= 1, chart_id  # something was plotted, not just empty axes
    assert SCRIPT_TITLE in aging_text  # shown as text
    assert IMG_TITLE in dq_text
    assert injected == 0
    assert all(u.startswith(("file:", "data:", "about:", "blob:")) for u in events["requests"])
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
    _check_drill(built, report, drill)


# the last bar of the first LIN (the report week) and the one before it, a heatmap cell, the CFD
CLICK_JS = """([kind, lin, week]) => {
  const gd = document.getElementById(kind === "bar" ? "chart-completions" : "chart-heatmap");
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  const x = xa.l2p(xa.d2l(week)) + xa._offset + box.left;
  let y;
  if (kind === "bar") {
    const trace = gd.data.findIndex(t => t.type === "bar" && t.visible !== false);
    const i = gd.data[trace].x.findIndex(d => String(d).slice(0, 10) === week);
    y = ya.l2p(gd.data[trace].y[i] / 2) + ya._offset + box.top;
  } else {
    y = ya.l2p(ya.d2l(lin)) + ya._offset + box.top;
  }
  return [x, y];
}"""


def _rows(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        "#drill-tasks tr", "trs => trs.slice(1).map(tr => [...tr.cells].map(c => c.innerText))"
    )


def _click_through(page) -> dict:
    lins = page.evaluate(
        "() => [...document.querySelectorAll('details.lin-drill')].map(d => d.dataset.lin)"
    )
    weeks = page.evaluate(
        "() => document.getElementById('chart-completions').data"
        ".find(t => t.type === 'bar').x.map(d => String(d).slice(0, 10))"
    )
    out: dict = {"lin": lins[0], "weeks": weeks[-2:], "bars": [], "links": []}
    for week in weeks[-2:]:
        page.evaluate("() => { document.getElementById('drill-panel').textContent = ''; }")
        page.locator("#chart-completions").scroll_into_view_if_needed()
        x, y = page.evaluate(CLICK_JS, ["bar", lins[0], week])
        page.mouse.click(x, y)
        page.wait_for_selector("#drill-panel h3")
        out["bars"].append((page.inner_text("#drill-panel h3"), _rows(page)))
    out["links"] = page.eval_on_selector_all(
        "#drilldown a", "as => as.map(a => [a.getAttribute('href'), a.target, a.rel])"
    )
    # a heatmap cell: the first LIN's row (its label on the y axis), the week before the last
    label = page.evaluate("() => document.getElementById('chart-heatmap').data[0].y[0]")
    page.evaluate("() => { document.getElementById('drill-panel').textContent = ''; }")
    page.locator("#chart-heatmap").scroll_into_view_if_needed()
    x, y = page.evaluate(CLICK_JS, ["heatmap", label, weeks[-2]])
    page.mouse.click(x, y)
    page.wait_for_selector("#drill-panel h3")
    out["heatmap"] = (page.inner_text("#drill-panel h3"), _rows(page))
    # cumulative flow: work in progress first, done and cancelled one click away
    visible = "() => document.getElementById('chart-cfd').data.filter(t => t.meta === 'closed' && t.visible !== false).map(t => t.visible)"
    out["cfd_before"] = page.evaluate(visible)
    page.click("#cfd-toggle")
    out["cfd_after"] = page.evaluate(visible)
    out["open_rows"] = page.eval_on_selector_all(
        f"#drill-{lins[0]} .open-tasks tr", "trs => trs.length - 1"
    )
    return out


def _check_drill(built, report, drill) -> None:
    import duckdb

    con = duckdb.connect(str(built.data_dir / "warehouse.duckdb"), read_only=True)
    try:
        for (heading, rows), week in zip(drill["bars"], drill["weeks"], strict=True):
            expected = con.execute(
                "select task_id from marts.lin_week_tasks where service_line_id = ? "
                "and week_start = ?",
                [drill["lin"], week],
            ).fetchall()
            assert week in heading
            assert rows, heading  # the bar's tasks are listed
            assert sorted(r[1] for r in rows) == sorted(t for (t,) in expected)
        heading, rows = drill["heatmap"]
        assert drill["weeks"][0] in heading
        assert rows == drill["bars"][0][1]  # the same LIN-week, from the other chart
    finally:
        con.close()
    assert drill["links"]
    for href, target, rel in drill["links"]:
        assert href.startswith(("https://", "http://")), href
        assert (target, rel) == ("_blank", "noopener")
    assert drill["cfd_before"]
    assert set(drill["cfd_before"]) == {"legendonly"}
    assert set(drill["cfd_after"]) == {True}
    assert drill["open_rows"] >= 1
