"""The build as a whole: reconciliation with the API's counter, failing data tests, readers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from datetime import date

import duckdb
import httpx
import pytest
from typer.testing import CliRunner

from scrums_velocity.api_server import create_app, generate
from scrums_velocity.cli import app
from scrums_velocity.config import Config
from scrums_velocity.errors import BuildError
from scrums_velocity.lake import open_lake
from scrums_velocity.models.runner import BuildSettings, build, discover
from tests.conftest import NOW, auth
from tests.extract.conftest import run_extract
from tests.models.lakes import Lake, one_done_task


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """2,000 tasks extracted from the server after some PATCHes through the API."""
    ds = generate(tasks=2000, seed=43, now=NOW)
    app = create_app(ds)
    store = app.state.store
    # a few reopens, cancellations and a move between LINs, made after the seeded history
    for tid, fields in [
        (ds.tasks["id"][0], {"status": "in_progress"}),
        (ds.tasks["id"][1], {"status": "cancelled"}),
        (ds.tasks["id"][2], {"status": "done"}),
    ]:
        store.update(store.by_id[tid], fields, by="USR-26-000040")
    path = tmp_path_factory.mktemp("extracted")
    run_extract(ds, app, path)
    return ds, app, path


def test_done_plus_cancelled_per_lin_equals_the_servers_counter(extracted, tmp_path):
    ds, app, path = extracted
    build(BuildSettings(data_dir=path))
    con = duckdb.connect(str(path / "warehouse.duckdb"), read_only=True)
    ours = dict(
        con.execute(
            "select service_line_id, sum(completed + cancelled) from marts.lin_velocity_weekly group by all"
        ).fetchall()
    )
    import asyncio

    from scrums_velocity.api_server import InProcessTransport

    async def counters():
        async with httpx.AsyncClient(transport=InProcessTransport(app), base_url="http://m") as c:
            r = await c.get("/_mock/delivery-velocity", headers=auth(ds.admin_token))
            return {
                row["service_line_id"]: row["done"] + row["cancelled"] for row in r.json()["data"]
            }

    theirs = asyncio.run(counters())
    assert len(theirs) == len(ds.service_lines)
    assert ours == theirs


def test_the_build_reads_one_snapshot_and_reports_rows(extracted):
    _, _, path = extracted
    result = build(BuildSettings(data_dir=path))
    assert result.tests >= 60
    assert result.rows["intermediate.int_live_tasks"] == 2000  # views are not counted
    assert "staging.stg_tasks" not in result.rows
    con = duckdb.connect(str(path / "warehouse.duckdb"), read_only=True)
    row = con.execute("select lake_url, lake_snapshot from marts.build_info").fetchall()
    assert row == [(str((path / "lake").absolute()), open_lake(path).head().run_id)]


def test_a_failing_data_test_fails_the_build_and_keeps_the_previous_warehouse(
    tmp_path, monkeypatch
):
    lake = one_done_task()
    lake.write(tmp_path)
    build(BuildSettings(data_dir=tmp_path))
    before = (tmp_path / "warehouse.duckdb").stat().st_mtime_ns
    # a second task with the same id: the lake breaks stg_tasks' unique key
    lake.task("TSK-26-000001", "LIN-26-000001", "2026-01-05 09:00", "backlog")
    lake.write(tmp_path)
    with pytest.raises(BuildError) as err:
        build(BuildSettings(data_dir=tmp_path))
    assert str(err.value).startswith(
        "data test unique(task_id) failed on staging.stg_tasks: task_id=TSK-26-000001, n=2"
    )
    assert (tmp_path / "warehouse.duckdb").stat().st_mtime_ns == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_reader_holding_the_warehouse_open_does_not_block_the_build(extracted, tmp_path):
    _, _, path = extracted
    build(BuildSettings(data_dir=path))
    reader = textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(path / "warehouse.duckdb")!r}, read_only=True)
        n = con.execute("select count(*) from marts.lin_velocity_weekly").fetchall()[0][0]
        print(n, flush=True)
        sys.stdin.readline()  # hold the file open until told
        print(con.execute("select count(*) from marts.lin_velocity_weekly").fetchall()[0][0], flush=True)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", reader], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    first = int(proc.stdout.readline())
    env = {**os.environ}
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "build", "--data-dir", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("built ")
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert int(proc.stdout.readline()) == first  # the reader still sees its (old) file whole
    assert proc.wait(timeout=30) == 0
    con = duckdb.connect(str(path / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from marts.lin_velocity_weekly").fetchall()[0][0] == first


def test_model_files_follow_the_conventions():
    models = discover()
    names = {m.table for m in models}
    assert {
        "marts.lin_velocity_weekly",
        "intermediate.int_task_status_changes",
        "staging.stg_tasks",
    } <= names
    for m in models:
        # the build's inputs: the lake's datasets and the configuration's service-line names
        reads_input = re.search(
            r"\b(lake_(tasks|task_versions|task_history|rejects|runs)|config_service_lines)\b",
            m.sql,
        )
        assert bool(reads_input) == (m.schema == "staging"), (
            f"{m.table}: only staging reads the lake and the configuration"
        )
        assert not re.search(r"read_(parquet|csv|json|text)|glob\(", m.sql), m.table  # no files
        assert m.name.startswith({"staging": "stg_", "intermediate": "int_"}.get(m.schema, "")), (
            m.table
        )
        if m.schema == "staging":
            assert not any(r.startswith(("intermediate.", "marts.")) for r in m.refs())
    order = [m.table for m in models]
    for m in models:
        for ref in m.refs():
            assert order.index(ref) < order.index(m.table)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--timezone", "Mars/Olympus"], "model.timezone: unknown time zone 'Mars/Olympus'"),
        (["--baseline-weeks", "2"], "min_baseline_weeks: 4 must not exceed baseline_weeks (2)"),
        (["--engine", "nope"], "a flag is invalid: model.engine: Input should be 'duckdb' or"),
        (["--engine", "spark", "--spark-master", "bogus://x"], "'bogus://x' is not a Spark master"),
        (["--profile", "/etc/passwd"], "--profile /etc/passwd: not a folder one can write"),
        (["--profile", ""], "--profile needs a folder"),  # not the current folder
        (["--engine", "spark", "--spark-master", "local[0]"], "'local[0]' is not a Spark master"),
    ],
)
def test_bad_settings_from_flags_are_checked_like_the_files(tmp_path, flags, message):
    one_done_task().write(tmp_path)
    result = CliRunner().invoke(app, ["build", "--data-dir", str(tmp_path), *flags])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_one_mapping_from_the_configuration_to_the_build(tmp_path):
    cfg = Config.model_validate(
        {
            "data_dir": str(tmp_path),
            "model": {"timezone": "Europe/London", "baseline_weeks": 6, "forecast_seed": 3},
            "health": {"at_risk_ratio": 0.4, "watch_ratio": 0.9},
            "service_lines": [{"id": "LIN-26-000001", "name": "Payments"}],
        }
    )
    settings = BuildSettings.from_config(cfg)
    assert settings.model is cfg.model
    assert settings.health is cfg.health
    assert settings.service_lines == (("LIN-26-000001", "Payments"),)
    one_done_task().write(tmp_path)
    build(settings)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    info = con.execute(
        "select timezone, baseline_weeks, at_risk_ratio, watch_ratio, engine from marts.build_info"
    ).fetchall()
    assert info == [("Europe/London", 6, 0.4, 0.9, "duckdb")]
    # the column docs state the thresholds this build used, not the defaults
    (health_doc,) = con.execute(
        "select comment from duckdb_columns() where table_name = 'lin_velocity_weekly' "
        "and column_name = 'health'"
    ).fetchall()[0]
    assert "velocity_ratio < 0.4 and" in health_doc
    assert "< 0.9 otherwise" in health_doc


def test_cli_build_without_a_lake_and_query_and_models(tmp_path):
    def velocity(*args):
        return subprocess.run(
            [sys.executable, "-m", "scrums_velocity", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    r = velocity("build", "--data-dir", str(tmp_path))
    assert r.returncode == 6
    assert (
        r.stderr.strip() == f"Error: no lake at {tmp_path / 'lake'}: run 'velocity extract' first"
    )
    r = velocity("query", "select 1", "--data-dir", str(tmp_path))
    assert r.returncode == 6
    assert "no warehouse" in r.stderr
    r = velocity("models", "--data-dir", str(tmp_path))  # no warehouse: the model docs
    assert r.returncode == 0
    assert "marts.lin_velocity_weekly\n    Delivery velocity per service line" in r.stdout
    Lake().write(tmp_path)
    lake = one_done_task()
    lake.write(tmp_path)
    r = velocity(
        "build",
        "--data-dir",
        str(tmp_path),
        "--timezone",
        "Europe/London",
        "--as-of",
        "2026-01-20T00:00:00Z",
    )
    assert r.returncode == 0, r.stderr
    r = velocity(
        "query",
        "select week_start, completed from marts.lin_velocity_weekly order by 1",
        "--data-dir",
        str(tmp_path),
    )
    assert r.returncode == 0
    assert "2026-01-05 │         1" in r.stdout
    assert r.stdout.rstrip().endswith("3 rows")
    r = velocity("query", "drop table marts.build_info", "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert "read-only" in r.stderr.lower()


def test_a_build_removes_what_killed_builds_left(tmp_path):
    lake = Lake()
    lake.task("TSK-26-000001", "LIN-26-000001", "2026-01-05 09:00", "backlog")
    lake.write(tmp_path)
    leftovers = [
        tmp_path / ".warehouse.duckdb.4242-abcdef.tmp",
        tmp_path / ".warehouse.duckdb.4242-abcdef.tmp.wal",
        tmp_path / ".warehouse.duckdb.77-012345.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b"x" * 1000)
    spill = tmp_path / ".warehouse.duckdb.4242-abcdef.tmp.spill"  # a killed build's spill folder
    (spill / "sub").mkdir(parents=True)
    (spill / "duckdb_temp_storage-0.tmp").write_bytes(b"y" * 1000)
    leftovers.append(spill)
    keep = tmp_path / "warehouse.duckdb.bak"
    keep.write_bytes(b"mine")
    build(BuildSettings(data_dir=tmp_path))
    assert not any(p.exists() for p in leftovers)
    assert keep.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.glob(".warehouse*")) == []


def test_relationships_and_expression_tests_find_the_rows_that_break_them(tmp_path):
    from scrums_velocity.models.runner import _data_tests

    con = duckdb.connect()
    con.execute("create schema intermediate; create schema marts")
    con.execute(
        "create table intermediate.int_lin_weeks as select * from (values "
        "('LIN-A', date '2026-01-05'), ('LIN-A', date '2026-01-12')) t(service_line_id, week_start)"
    )
    con.execute(
        "create table marts.lin_velocity_weekly as select * from (values "
        "('LIN-A', date '2026-01-05', 3, 1), ('LIN-A', date '2026-01-19', 2, 0), "
        "('LIN-B', null, 1, 2)) t(service_line_id, week_start, completed, completed_by_agent)"
    )
    docs = {
        "marts.lin_velocity_weekly": {
            "relationships": [
                {"columns": ["service_line_id", "week_start"], "to": "intermediate.int_lin_weeks"}
            ],
            "expressions": ["completed_by_agent between 0 and completed"],
        }
    }
    found = {t.name: con.execute(t.query).fetchall() for t in _data_tests(docs, tmp_path)}
    assert found == {
        # the week not in the spine (a row with a null key is not checked)
        "relationships(service_line_id, week_start -> intermediate.int_lin_weeks)": [
            ("LIN-A", date(2026, 1, 19))
        ],
        # more completions by agents than completions
        "expression(completed_by_agent between 0 and completed)": [("LIN-B", None, 1, 2)],
    }


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"memory_limit": "1KB"}, "give DuckDB between 64MB and 1024TB"),
        ({"memory_limit": "99999999999TB"}, "give DuckDB between 64MB and 1024TB"),
        ({"forecast_seed": -1}, "greater than or equal to 0"),
        ({"spark_conf": {"spark.master": "local"}}, "the master is spark_master"),
        ({"spark_conf": {"foo": "x"}}, "spark_conf takes spark.* settings"),
        ({"spark_conf": {"spark.x": "a\nb"}}, "control characters"),
    ],
)
def test_model_settings_are_checked_where_they_are_read(model, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Config.model_validate({"model": model})


def test_a_data_dir_with_spaces_and_accents_builds_and_its_views_read(tmp_path):
    data_dir = tmp_path / "it's a data dir é✓"
    one_done_task().write(data_dir)  # the Delta log lists its files percent-encoded
    build(BuildSettings(data_dir=data_dir))
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from staging.stg_tasks").fetchall() == [(1,)]
