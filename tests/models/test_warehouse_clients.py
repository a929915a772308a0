"""The warehouse opens in the clients analysts already have: a 1.x DuckDB CLI from the registry."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from scrums_velocity.models.query import shell_argv
from scrums_velocity.models.runner import WAREHOUSE_STORAGE_VERSION, BuildSettings, build
from tests.models.lakes import one_done_task

CLI = Path(sys.executable).parent / "duckdb"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    lake = one_done_task()
    lake.task("TSK-26-000002", "LIN-26-000002", "2026-01-05 09:00", "backlog")
    data_dir = lake.write(tmp_path_factory.mktemp("clients"))
    build(BuildSettings(data_dir=data_dir))
    return data_dir


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    assert CLI.exists(), "duckdb-cli is a dev dependency: make sync installs it"
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=60)


def test_the_registry_cli_is_a_1x_client():
    r = _cli("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("v1."), r.stdout  # an older client than the one that wrote the file
    assert not duckdb.__version__.startswith("1.")


def test_the_1x_cli_reads_a_mart_as_the_readme_shows(warehouse):
    path = warehouse / "warehouse.duckdb"
    r = _cli("-readonly", str(path), "select * from marts.lin_velocity_latest")
    assert r.returncode == 0, r.stderr
    assert "LIN-26-000001" in r.stdout
    assert "LIN-26-000002" in r.stdout
    assert r.stderr == ""


def test_the_1x_cli_reads_column_comments_and_the_recorded_storage_version(warehouse):
    path = warehouse / "warehouse.duckdb"
    r = _cli(
        "-readonly",
        "-csv",
        "-noheader",
        str(path),
        "select comment from duckdb_columns() where schema_name = 'marts' "
        "and table_name = 'lin_velocity_weekly' and column_name = 'velocity_ratio'; "
        "select storage_version from marts.build_info",
    )
    assert r.returncode == 0, r.stderr
    comment, version = r.stdout.strip().splitlines()
    assert comment.strip('"').startswith("completed / baseline_mean")
    assert version == WAREHOUSE_STORAGE_VERSION == "v1.3.0"


def test_a_file_in_duckdb_2_default_format_is_what_the_1x_cli_cannot_read(tmp_path):
    """The control: without the storage version the same client fails, so the test above can."""
    path = tmp_path / "default.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create table t as select 1 as a")
    con.close()
    r = _cli("-readonly", str(path), "select * from t")
    assert r.returncode != 0
    assert "version number" in r.stderr


def test_velocity_shell_opens_the_cli_read_only_on_the_marts(warehouse):
    argv = shell_argv(warehouse)
    assert argv[0] == str(CLI)
    r = subprocess.run(
        argv,
        input="select 'rows=' || count(*) from lin_velocity_latest;\ncreate table x as select 1;\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "rows=2" in r.stdout  # the mart, named without its schema
    assert "read-only" in r.stderr.lower()  # and nothing can be written


def test_velocity_shell_without_a_warehouse_is_one_error_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "shell", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 6
    assert r.stderr.strip().splitlines() == [
        f"Error: no warehouse at {tmp_path / 'warehouse.duckdb'}: run 'velocity build' first"
    ]


def test_shell_is_found_on_path_when_not_beside_the_interpreter(warehouse, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(CLI.parent))
    assert shell_argv(warehouse)[0] == shutil.which("duckdb")


def test_the_1x_cli_reads_the_views_over_the_lake(warehouse):
    """What the warehouse does not store (staging, intermediates) it keeps as views over the
    snapshot's Parquet files, with the build's parameters written into them."""
    path = warehouse / "warehouse.duckdb"
    r = _cli(
        "-readonly",
        "-csv",
        "-noheader",
        "-cmd",
        "SET search_path = 'marts,main'",
        str(path),
        "select count(*) from staging.stg_tasks; "
        "select task_id, entry_no from intermediate.int_task_status_changes; "
        "select count(*) from lake_task_history",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "TSK-26-000001,1", "1"]
