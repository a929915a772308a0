"""The nightly run for cron: stage outcomes, a refusing SMTP server, overlap, and the demo."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from aiosmtpd.controller import Controller

from scrums_velocity.api_server import Knobs, free_port, generate
from scrums_velocity.lake import open_lake
from tests.conftest import NOW, live_server
from tests.report.test_email import Inbox


@pytest.fixture(scope="module")
def ds():
    return generate(tasks=1500, seed=59, now=NOW)


def write_config(path: Path, ds, base_url: str, data_dir: Path, smtp_port: int) -> Path:
    lins = [s.id for s in ds.service_lines]
    path.write_text(f"""
data_dir = "{data_dir}"
[api]
url = "{base_url}"
workspaces = [{", ".join(f'"{w.id}"' for w in ds.workspaces)}]
[[leads]]
name = "Ada"
email = "ada@example.com"
service_lines = ["{lins[0]}", "{lins[1]}"]
[[leads]]
name = "Grace"
email = "grace@example.com"
service_lines = ["{lins[2]}"]
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "velocity@example.com"
""")
    return path


def nightly(config: Path, token: str, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRUMS_")} | {
        "SCRUMS_API_TOKEN": token
    }
    return subprocess.Popen(
        [sys.executable, "-m", "scrums_velocity", "nightly", "-c", str(config), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def smtp(handler) -> tuple[Controller, int]:
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    return ctl, port


def runs(data_dir: Path) -> pl.DataFrame:
    return open_lake(data_dir).read("runs").sort("started_at")


@pytest.mark.slow
def test_refused_mail_fails_the_run_but_keeps_the_report_then_a_rerun_succeeds(ds, tmp_path):
    data_dir = tmp_path / "data"
    refusing, port = smtp(Inbox(reject_data=True))
    try:
        with live_server(ds) as server:
            config = write_config(tmp_path / "velocity.toml", ds, server.base_url, data_dir, port)
            proc = nightly(config, ds.admin_token)
            out, err = proc.communicate(timeout=300)
    finally:
        refusing.stop()
    assert proc.returncode == 8
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        "Error: nightly failed at email: 2 of 2 lead emails failed (ada@example.com: SMTP 554"
    )
    reports = sorted((data_dir / "reports").glob("????-??-??"))
    assert len(reports) == 1
    assert (reports[0] / "index.html").stat().st_size > 1_000_000
    row = runs(data_dir).filter(pl.col("command") == "nightly").row(-1, named=True)
    assert dict(row["stages"]) == {
        "extract": "succeeded",
        "build": "succeeded",
        "report": "succeeded",
        "email": "failed",
    }
    assert row["outcome"] == "failed"
    assert row["error"].startswith("email: 2 of 2 lead emails failed")

    inbox = Inbox()
    working, port2 = smtp(inbox)
    try:
        with live_server(ds) as server:
            config = write_config(tmp_path / "velocity.toml", ds, server.base_url, data_dir, port2)
            proc = nightly(config, ds.admin_token)
            out, err = proc.communicate(timeout=300)
    finally:
        working.stop()
    assert proc.returncode == 0, err
    assert out.strip() == out.strip().splitlines()[-1]
    assert "email succeeded" in out
    assert sorted(r[0] for r, _ in inbox.messages) == ["ada@example.com", "grace@example.com"]
    latest = runs(data_dir).filter(pl.col("command") == "nightly").row(-1, named=True)
    assert latest["outcome"] == "succeeded"
    # the second run was incremental: nothing changed on the server
    extract_runs = runs(data_dir).filter(pl.col("command") == "extract")
    assert extract_runs["details_fetched"].to_list() == [1500, 0]


def test_a_failed_build_keeps_the_last_good_warehouse_and_skips_the_rest(ds, tmp_path):
    data_dir = tmp_path / "data"
    with live_server(ds) as server:
        config = write_config(
            tmp_path / "velocity.toml", ds, server.base_url, data_dir, free_port()
        )
        assert nightly(config, ds.admin_token, "--email-dry-run").wait(timeout=300) == 0
        warehouse = data_dir / "warehouse.duckdb"
        before = warehouse.stat().st_mtime_ns
        proc = nightly(config, "svt_wrong_token")  # and the API refuses the token
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 4
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("Error: nightly failed at extract: the API refused access to workspace")
    )
    assert warehouse.stat().st_mtime_ns == before
    row = runs(data_dir).filter(pl.col("command") == "nightly").row(-1, named=True)
    assert dict(row["stages"]) == {
        "extract": "failed",
        "build": "skipped",
        "report": "skipped",
        "email": "skipped",
    }


def test_a_second_nightly_while_one_runs_says_already_running(ds, tmp_path):
    data_dir = tmp_path / "data"
    with live_server(ds, Knobs(latency_ms=20)) as server:
        config = write_config(
            tmp_path / "velocity.toml", ds, server.base_url, data_dir, free_port()
        )
        first = nightly(config, ds.admin_token, "--email-dry-run")
        deadline = time.monotonic() + 30
        while not (data_dir / ".velocity.lock.json").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = nightly(config, ds.admin_token, "--email-dry-run")
        _, err2 = second.communicate(timeout=60)
        _, err1 = first.communicate(timeout=300)
    assert second.returncode == 3
    assert (
        err2.strip()
        .splitlines()[-1]
        .startswith(f"Error: {data_dir} is already in use: locked by pid {first.pid}")
    )
    assert "already running" in err2
    assert first.returncode == 0, err1


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> tuple[Path, str]:
    data_dir = tmp_path_factory.mktemp("demo") / "demo"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "scrums_velocity",
            "demo",
            "--data-dir",
            str(data_dir),
            "--tasks",
            "3000",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    return data_dir, r.stdout


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(demo_dir):
    data_dir, out = demo_dir
    assert "nightly: extract succeeded, build succeeded, report succeeded, email succeeded" in out
    assert (data_dir / "lake" / "tasks" / "_delta_log").is_dir()  # a Delta table
    assert (data_dir / "warehouse.duckdb").exists()
    report = next((data_dir / "reports").glob("????-??-??"))
    assert (report / "index.html").exists()
    assert len(list((report / "outbox").glob("*.eml"))) == 2
    assert f"report:    {report / 'index.html'}" in out
    below = out.split("Furthest below baseline (latest complete week):\n")[1].strip().splitlines()
    assert len(below) == 3
    latest = pl.read_parquet(report / "velocity.parquet").sort("velocity_ratio", nulls_last=True)
    lin, name = latest["service_line_id"][0], latest["service_line_name"][0]
    assert below[0].strip().startswith(f"{name} ({lin})" if name != lin else lin)
    tasks = open_lake(data_dir).read("tasks")
    assert tasks.height == 3000


@pytest.mark.slow
def test_the_analyst_notebook_runs_against_the_demo_warehouse(demo_dir):
    import nbformat
    from nbclient import NotebookClient

    data_dir, _ = demo_dir
    path = Path(__file__).resolve().parents[1] / "notebooks" / "velocity_analysis.ipynb"
    nb = nbformat.read(path, as_version=4)
    os.environ["VELOCITY_DATA_DIR"] = str(data_dir)
    try:
        NotebookClient(
            nb,
            timeout=180,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        del os.environ["VELOCITY_DATA_DIR"]
    outputs = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert "marts.lin_velocity_weekly" in outputs
    assert any(
        "application/vnd.plotly.v1+json" in o.get("data", {}) or "text/html" in o.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert "slowest" in outputs.lower()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "smtp_password_unset",
            "Error: {config} is invalid: smtp.user: is set but the password variable "
            "VELOCITY_SMTP_PASSWORD is not set in the environment",
        ),
        (
            "no_smtp_section",
            "Error: no [smtp] section in the configuration: cannot send (try --dry-run, or "
            "--email-dry-run with nightly)",
        ),
        (
            "unknown_timezone",
            "Error: {config} is invalid: model.timezone: unknown time zone 'Mars/Base': use an "
            "IANA name like Europe/London",
        ),
        (
            "min_baseline_above_baseline",
            "Error: {config} is invalid: model.min_baseline_weeks: 13 must not exceed "
            "baseline_weeks (12): no week could ever have enough baseline weeks to be rated",
        ),
        ("not_utf8", "Error: {config} is not UTF-8 text (byte 0xe9 on line 1): save it as UTF-8"),
        ("directory", "Error: {config} is a directory, not a configuration file"),
    ],
)
def test_configuration_errors_stop_nightly_before_extraction(ds, tmp_path, case, expected):
    data_dir = tmp_path / "data"
    with live_server(ds) as server:
        config = write_config(tmp_path / "velocity.toml", ds, server.base_url, data_dir, 25)
        text = config.read_text()
        if case == "smtp_password_unset":
            text += 'user = "reports@example.com"\n'
        elif case == "no_smtp_section":
            text = text[: text.index("[smtp]")]
        elif case == "unknown_timezone":
            text += '[model]\ntimezone = "Mars/Base"\n'
        elif case == "min_baseline_above_baseline":
            text += "[model]\nmin_baseline_weeks = 13\n"
        config.write_text(text)
        if case == "not_utf8":
            config.write_bytes(b"# Ren\xe9\n" + text.encode())
        elif case == "directory":
            config.unlink()
            config.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SCRUMS_", "VELOCITY_"))}
        r = subprocess.run(
            [sys.executable, "-m", "scrums_velocity", "nightly", "-c", str(config)],
            capture_output=True,
            text=True,
            env=env | {"SCRUMS_API_TOKEN": ds.admin_token},
            timeout=120,
        )
        requests = server.app.state.stats.requests
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [expected.format(config=config)]
    assert requests == 0  # extraction never started
    assert not data_dir.exists()  # no lock, no lake, nothing
