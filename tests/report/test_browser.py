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


def test_report_in_headless_chromium(built, tmp_path):
    report = write_report(built.data_dir, built.config())
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
