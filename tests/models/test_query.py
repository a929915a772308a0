"""`velocity query` is a sandbox: it reads the warehouse and nothing else, and changes nothing."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scrums_velocity.errors import ConfigError
from scrums_velocity.models.query import run_query
from scrums_velocity.models.runner import BuildSettings, build
from tests.models.lakes import one_done_task


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    lake = one_done_task()
    path = lake.write(tmp_path_factory.mktemp("query"))
    build(BuildSettings(data_dir=path))
    (path / "reports" / "2026-01-05").mkdir(parents=True)
    (path / "reports" / "2026-01-05" / "index.html").write_text("<p>the report</p>")
    return path


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".velocity.lock")
    }


def test_a_query_reads_the_marts(data_dir):
    columns, rows = run_query(data_dir, "select service_line_id from marts.lin_velocity_latest")
    assert columns == ["service_line_id"]
    assert rows == [("LIN-26-000001",)]


def test_the_result_of_the_last_statement_and_statements_without_rows(data_dir):
    assert run_query(data_dir, "select 1 as a; select 2 as b") == (["b"], [(2,)])
    columns, _ = run_query(data_dir, "checkpoint")
    assert columns in ([], ["Success"])


@pytest.mark.parametrize("sql", ["", "   ", ";", " ; ;"])
def test_an_empty_query_is_refused(data_dir, sql):
    with pytest.raises(ConfigError, match="the query is empty"):
        run_query(data_dir, sql)


HOSTILE = [
    "overwrite a report",
    "overwrite a lake file",
    "write a new file",
    "attach a new database",
    "read a file",
    "read the lake behind the marts",
    "list a folder",
    "export the warehouse",
    "install an extension",
    "load an extension",
    "undo the sandbox",
    "unlock the configuration",
    "reset the lock",
    "undo it, then read",
    "write to the warehouse",
    "drop a mart",
]


def _hostile(data_dir: Path, outside: Path) -> dict[str, str]:
    report = data_dir / "reports" / "2026-01-05" / "index.html"
    lake_file = next((data_dir / "lake" / "tasks").rglob("*.parquet"))
    return {
        "overwrite a report": f"COPY (select 'pwned') TO '{report}' (FORMAT csv)",
        "overwrite a lake file": f"COPY (select 1 as id) TO '{lake_file}' (FORMAT parquet)",
        "write a new file": f"COPY (select 1) TO '{outside / 'x.csv'}'",
        "attach a new database": f"ATTACH '{outside / 'x.duckdb'}' (READ_WRITE)",
        "read a file": "select content from read_text('/etc/passwd')",
        "read the lake behind the marts": f"select * from read_parquet('{lake_file}')",
        "list a folder": "select * from glob('/etc/*')",
        "export the warehouse": f"EXPORT DATABASE '{outside / 'exp'}'",
        "install an extension": "INSTALL httpfs",
        "load an extension": "LOAD httpfs",
        "undo the sandbox": "SET enable_external_access = true",
        "unlock the configuration": "SET lock_configuration = false",
        "reset the lock": "RESET lock_configuration",
        "undo it, then read": "SET enable_external_access = true; select content from read_text('/etc/passwd')",
        "write to the warehouse": "create table marts.x as select 1",
        "drop a mart": "drop table marts.lin_velocity_weekly",
    }


@pytest.mark.parametrize("what", HOSTILE)
def test_a_hostile_query_fails_and_changes_nothing(data_dir, tmp_path, what):
    queries = _hostile(data_dir, tmp_path)
    assert list(queries) == HOSTILE
    before = _digest(data_dir)
    with pytest.raises(ConfigError, match=r"^query failed: ") as caught:
        run_query(data_dir, queries[what])
    assert "root:" not in str(caught.value)  # no line of /etc/passwd
    assert _digest(data_dir) == before
    assert list(tmp_path.iterdir()) == []


def test_the_cli_says_one_line_for_a_hostile_query(data_dir, tmp_path):
    before = _digest(data_dir)
    sql = _hostile(data_dir, tmp_path)["overwrite a report"]
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "query", "--data-dir", str(data_dir), sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        'Error: query failed: Permission Error: Cannot access file "'
        + str(data_dir / "reports" / "2026-01-05" / "index.html")
        + '" - file system operations are disabled by configuration'
    ]
    assert r.stdout == ""
    assert _digest(data_dir) == before


def test_the_sandbox_still_holds_after_a_refused_unlock(data_dir):
    with pytest.raises(ConfigError):
        run_query(data_dir, "SET lock_configuration = false")
    _, rows = run_query(
        data_dir,
        "select value from duckdb_settings() where name in "
        "('enable_external_access', 'lock_configuration') order by name",
    )
    assert rows == [("false",), ("true",)]


def test_a_query_never_spills_to_disk(data_dir):
    """A query larger than memory fails; it writes no temporary files beside the warehouse."""
    _, rows = run_query(data_dir, "select current_setting('max_temp_directory_size')")
    assert rows == [("0 bytes",)]
    with pytest.raises(ConfigError, match="query failed"):
        run_query(data_dir, "SET max_temp_directory_size = '10GB'")
    assert not (data_dir / "warehouse.duckdb.tmp").exists()


# A cross join of 10^13 rows: minutes of work, stopped within a moment of being asked.
ENDLESS = "select sum(hash(a.range, b.range)) from range(100000000) a, range(100000) b"


def test_a_query_past_its_time_limit_is_stopped(data_dir):
    with pytest.raises(ConfigError, match=r"^query stopped after 0\.5 s \(--timeout\)$"):
        run_query(data_dir, ENDLESS, timeout_s=0.5)
    # the sandbox is usable again at once
    assert run_query(data_dir, "select 42", timeout_s=30) == (["42"], [(42,)])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.slow  # a child process and its start
def test_ctrl_c_stops_a_running_query_with_one_line(data_dir):
    """Ctrl-C stops a running query with one line. DuckDB alone either raised RuntimeError('Query
    interrupted') (a traceback) or, under load, missed the signal and ran on."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrums_velocity", "query", "--data-dir", str(data_dir), ENDLESS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background jobs ignore SIGINT, and Python then never turns it into Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # inside the query: its threads have burnt CPU well past the start's imports (~0.5 s)
    deadline = time.monotonic() + 60
    while _cpu_seconds(proc.pid) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.splitlines() == ["Error: interrupted"]
