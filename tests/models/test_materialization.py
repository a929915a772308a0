"""What the build stores and what it keeps as views, and how a model declares it."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import duckdb
import pytest

from scrums_velocity.errors import BuildError, ConfigError
from scrums_velocity.lake import open_lake
from scrums_velocity.models.query import run_query
from scrums_velocity.models.runner import (
    MODELS_DIR,
    BuildSettings,
    build,
    build_into,
    discover,
    load_schema_docs,
)
from tests.models.lakes import one_done_task


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    data_dir = one_done_task().write(tmp_path_factory.mktemp("mat"))
    build(BuildSettings(data_dir=data_dir))
    return data_dir


def test_every_model_declares_its_materialization_and_python_models_are_in_the_graph():
    docs = load_schema_docs()
    models = {m.table: m for m in discover()}
    assert {m.materialized for m in models.values()} == {"view", "temp", "table"}
    for table, model in models.items():
        assert docs[table]["materialized"] == model.materialized
        if table.startswith("marts."):
            assert model.materialized == "table", table
    forecast = models["marts.lin_forecast"]
    assert forecast.is_python
    assert forecast.refs() == {"intermediate.int_lin_daily_throughput", "marts.lin_status_daily"}
    order = list(models)
    assert order.index("marts.lin_status_daily") < order.index("marts.lin_forecast")


def test_the_warehouse_stores_the_marts_and_keeps_the_rest_as_documented_views(built):
    con = duckdb.connect(str(built / "warehouse.duckdb"), read_only=True)
    tables = {
        f"{s}.{t}"
        for s, t in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()
    }
    models = {m.table: m.materialized for m in discover()}
    assert tables == {t for t, kind in models.items() if kind == "table"}
    views = dict(
        con.execute(
            "select schema_name || '.' || view_name, comment from duckdb_views() where not internal"
        ).fetchall()
    )
    assert set(views) == {t for t, kind in models.items() if kind != "table"} | {
        f"main.lake_{d}" for d in ("tasks", "task_versions", "task_history", "rejects", "runs")
    }
    assert views["intermediate.int_task_status_changes"].startswith("Deduplicated status changes")
    # the views read the snapshot's files and stand alone: no build variable is left in them
    sql = con.execute(
        "select sql from duckdb_views() where view_name = 'int_task_status_changes'"
    ).fetchall()[0][0]
    assert "getvariable" not in sql
    assert con.execute("select count(*) from intermediate.int_task_status_changes").fetchall() == [
        (1,)
    ]
    assert con.execute("select task_id, outcome from marts.task_completions").fetchall() == [
        ("TSK-26-000001", "done")
    ]


def test_the_query_sandbox_explains_that_lake_views_need_the_shell(built):
    with pytest.raises(ConfigError, match="views over the lake's files") as err:
        run_query(built, "select count(*) from staging.stg_tasks")
    assert "velocity shell" in str(err.value)


def _models_dir(tmp_path: Path, py_model: str, schema_toml: str) -> Path:
    """A models folder of one staging view and one Python mart."""
    root = tmp_path / "models"
    (root / "staging").mkdir(parents=True)
    (root / "marts").mkdir()
    shutil.copy(MODELS_DIR / "staging" / "stg_tasks.sql", root / "staging")
    (root / "staging" / "_schema.toml").write_text('[stg_tasks]\nmaterialized = "view"\n')
    (root / "marts" / "per_line.py").write_text(py_model)
    (root / "marts" / "_schema.toml").write_text(schema_toml)
    return root


PER_LINE = """
import pyarrow as pa
import polars as pl

INPUTS = ("staging.stg_tasks",)
PARTITION_BY = "service_line_id"
SCHEMA = pa.schema([("service_line_id", pa.string()), ("tasks", pa.int64()), ("seed", pa.int64())])


def model(inputs, context):
    rows = pl.from_arrow(inputs["staging.stg_tasks"])
    assert rows["service_line_id"].n_unique() == 1  # one service line per call
    return pl.DataFrame(
        {"service_line_id": [rows["service_line_id"][0]], "tasks": [rows.height],
         "seed": [context.model.forecast_seed]}
    )
"""


def _build(models_dir: Path, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    lake = one_done_task()
    lake.task("TSK-26-000002", "LIN-26-000002", "2026-01-05 09:00", "backlog")
    lake.task("TSK-26-000003", "LIN-26-000002", "2026-01-05 10:00", "backlog")
    data_dir = lake.write(tmp_path / "data")
    opened = open_lake(data_dir)
    target = tmp_path / "w.duckdb"
    build_into(target, opened, opened.head(), BuildSettings(data_dir), models_dir=models_dir)
    return duckdb.connect(str(target), read_only=True)


def test_a_python_model_runs_once_per_partition_with_the_build_settings(tmp_path):
    root = _models_dir(
        tmp_path,
        PER_LINE,
        '[per_line]\nmaterialized = "table"\nunique = [["service_line_id"]]\n'
        '[per_line.columns]\ntasks = "Tasks of the line."\n',
    )
    con = _build(root, tmp_path)
    rows = con.execute("select * from marts.per_line order by 1").fetchall()
    assert rows == [("LIN-26-000001", 1, 7), ("LIN-26-000002", 2, 7)]
    comment = con.execute(
        "select comment from duckdb_columns() where table_name = 'per_line' and column_name = 'tasks'"
    ).fetchall()
    assert comment == [("Tasks of the line.",)]


def test_a_python_model_runs_while_the_models_that_do_not_read_it_are_built(tmp_path, monkeypatch):
    """The Monte Carlo models' numpy work overlaps the SQL marts built meanwhile: here the Python
    model waits (up to 20 s) for a flag that only the next SQL model's creation sets, and a mart
    that reads it still sees all its rows."""
    from scrums_velocity.models import duckdb_engine

    flag = tmp_path / "sql-model-started"
    waiting = PER_LINE.replace(
        "def model(inputs, context):",
        "def model(inputs, context):\n"
        "    import time\n"
        "    from pathlib import Path\n"
        "    deadline = time.monotonic() + 20\n"
        f"    while not Path({str(flag)!r}).exists() and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        f"    assert Path({str(flag)!r}).exists(), 'built alone'\n",
    )
    root = _models_dir(tmp_path, waiting, '[per_line]\nmaterialized = "table"\n')
    (root / "marts" / "other.sql").write_text("select count(*) as tasks from staging.stg_tasks\n")
    (root / "marts" / "total.sql").write_text("select sum(tasks) as tasks from marts.per_line\n")
    with (root / "marts" / "_schema.toml").open("a") as toml:
        toml.write('[other]\nmaterialized = "table"\n[total]\nmaterialized = "table"\n')
    create = duckdb_engine.DuckDBEngine.create

    def flagging(self, table, *args):
        if table == "marts.other":
            flag.touch()
        return create(self, table, *args)

    monkeypatch.setattr(duckdb_engine.DuckDBEngine, "create", flagging)
    con = _build(root, tmp_path)
    assert con.execute("select tasks from marts.total").fetchall() == [(3,)]
    assert con.execute("select tasks from marts.other").fetchall() == [(3,)]


def test_a_failed_build_stops_its_background_python_model(tmp_path, monkeypatch):
    """A build that fails while a Python model computes in the background leaves no thread
    behind: the model stops before its next partition (here the first of two is held until the
    engine closes), and the error is the failing model's."""
    from scrums_velocity.models import duckdb_engine

    calls, closing = tmp_path / "calls", tmp_path / "closing"
    held = PER_LINE.replace(
        "def model(inputs, context):",
        "def model(inputs, context):\n"
        "    import time\n"
        "    from pathlib import Path\n"
        f"    with Path({str(calls)!r}).open('a') as f:\n"
        "        f.write('call\\n')\n"
        "    deadline = time.monotonic() + 20\n"
        f"    while not Path({str(closing)!r}).exists() and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n",
    )
    root = _models_dir(tmp_path, held, '[per_line]\nmaterialized = "table"\n')
    (root / "marts" / "broken.sql").write_text("select no_such_column from staging.stg_tasks\n")
    with (root / "marts" / "_schema.toml").open("a") as toml:
        toml.write('[broken]\nmaterialized = "table"\n')
    create, close = duckdb_engine.DuckDBEngine.create, duckdb_engine.DuckDBEngine.close

    def once_started(self, table, *args):  # the failing model fails while the first runs
        deadline = time.monotonic() + 20
        while table == "marts.broken" and not calls.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return create(self, table, *args)

    def releasing(self):
        self._stop.set()  # as close() does first; then the held partition may return
        closing.touch()
        return close(self)

    monkeypatch.setattr(duckdb_engine.DuckDBEngine, "create", once_started)
    monkeypatch.setattr(duckdb_engine.DuckDBEngine, "close", releasing)
    with pytest.raises(BuildError, match=r"model marts\.broken failed"):
        _build(root, tmp_path)
    assert not [t for t in threading.enumerate() if t.name == "velocity-marts.per_line"]
    assert calls.read_text() == "call\n"  # two service lines: the second never started


def test_a_failed_build_does_not_wait_for_a_python_model_it_cannot_stop(tmp_path, monkeypatch):
    """A Python model without partitions cannot be stopped: a failing build waits for it only a
    moment (STOP_WAIT_S) and reports its own error; the model finishes in its daemon thread."""
    from scrums_velocity.models import duckdb_engine

    release = tmp_path / "release"
    blocked = PER_LINE.replace('PARTITION_BY = "service_line_id"\n', "").replace(
        "def model(inputs, context):",
        "def model(inputs, context):\n"
        "    import time\n"
        "    from pathlib import Path\n"
        "    deadline = time.monotonic() + 20\n"
        f"    while not Path({str(release)!r}).exists() and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        "    return pl.DataFrame({'service_line_id': ['x'], 'tasks': [0], 'seed': [0]})\n",
    )
    assert "PARTITION_BY" not in blocked
    root = _models_dir(tmp_path, blocked, '[per_line]\nmaterialized = "table"\n')
    (root / "marts" / "broken.sql").write_text("select no_such_column from staging.stg_tasks\n")
    with (root / "marts" / "_schema.toml").open("a") as toml:
        toml.write('[broken]\nmaterialized = "table"\n')
    monkeypatch.setattr(duckdb_engine, "STOP_WAIT_S", 0.2)
    with pytest.raises(BuildError, match=r"model marts\.broken failed"):
        _build(root, tmp_path)
    left = [t for t in threading.enumerate() if t.name == "velocity-marts.per_line"]
    assert left  # still blocked: the build did not wait for it
    release.touch()
    left[0].join(20)
    assert not left[0].is_alive()


def test_the_build_shows_which_model_it_builds(tmp_path, monkeypatch):
    """On a TTY the build's progress bar names the model being built, counts the models done
    and ends on the data tests (off a TTY the build.model lines are the progress)."""
    from scrums_velocity import observe

    shown = []
    monkeypatch.setattr(
        observe.Reporter,
        "bar",
        lambda self, key, text, done, total, note: shown.append((done, total, note)),
    )
    data_dir = one_done_task().write(tmp_path)
    build(BuildSettings(data_dir=data_dir))
    models = [m.table for m in discover()]
    n = len(models)
    # every model named as it starts, in order (a background Python model named again when it
    # is waited for), then the data tests with every model built
    notes = [note for _, _, note in shown]
    assert list(dict.fromkeys(notes[:-1])) == models
    repeated = [note for i, note in enumerate(notes[:-1]) if note in notes[:i]]
    assert set(repeated) <= {m.table for m in discover() if m.is_python}
    assert shown[0] == (0, n, models[0])
    assert shown[-1] == (n, n, "data tests")
    done = [d for d, _, _ in shown]
    assert done == sorted(done)
    assert {total for _, total, _ in shown} == {n}


def test_a_model_naming_a_python_model_in_capitals_waits_for_its_rows(tmp_path):
    """A model that names a background Python model in capitals and quoted depends on it like
    any other reader, and finds all its rows stored; what comments and strings say of other
    models makes no dependency (before, a capitalised mention in a comment made a cycle)."""
    root = _models_dir(tmp_path, PER_LINE, '[per_line]\nmaterialized = "table"\n')
    (root / "marts" / "total.sql").write_text(
        'select sum(tasks) as tasks from MARTS."PER_LINE"\n'  # no lower-case reference
    )
    # comments and strings name no model: a model upstream may mention its readers there
    (root / "staging" / "notes.sql").write_text(
        "-- read by MARTS.TOTAL_NOTES and marts.total_notes; not marts.per line\n"
        "select 'marts.total_notes' as note /* MARTS.\"TOTAL_NOTES\" */\n"
    )
    (root / "marts" / "total_notes.sql").write_text("select note from staging.notes\n")
    with (root / "marts" / "_schema.toml").open("a") as toml:
        toml.write('[total]\nmaterialized = "table"\n[total_notes]\nmaterialized = "table"\n')
    (root / "staging" / "_schema.toml").write_text(
        '[stg_tasks]\nmaterialized = "view"\n[notes]\nmaterialized = "view"\n'
    )
    con = _build(root, tmp_path)
    assert con.execute("select tasks from marts.total").fetchall() == [(3,)]
    assert con.execute("select note from marts.total_notes").fetchall() == [("marts.total_notes",)]


@pytest.mark.parametrize(
    ("py_model", "schema_toml", "message"),
    [
        (
            PER_LINE.replace("rows.height", "rows.height // 0 if rows.height > 1 else 1"),
            '[per_line]\nmaterialized = "table"\n',
            "model marts.per_line failed: ZeroDivisionError",
        ),
        (
            PER_LINE.replace('INPUTS = ("staging.stg_tasks",)', ""),
            '[per_line]\nmaterialized = "table"\n',
            "model marts.per_line: INPUTS must be a tuple of schema.table names",
        ),
        (
            PER_LINE.replace('"staging.stg_tasks",', '"staging.stg_nothing",'),
            '[per_line]\nmaterialized = "table"\n',
            "model marts.per_line reads staging.stg_nothing, which no model builds",
        ),
        (
            PER_LINE,
            "[per_line]\n",
            "model marts.per_line: declare materialized = 'view' | 'temp' | 'table' in "
            "marts/_schema.toml",
        ),
        (PER_LINE, '[per_line]\nmaterialized = "view"\n', "a Python model is materialized as"),
        ("import nonexistent_module\n", '[per_line]\nmaterialized = "table"\n', "cannot be loaded"),
    ],
)
def test_a_broken_python_model_is_named_in_one_line(tmp_path, py_model, schema_toml, message):
    root = _models_dir(tmp_path, py_model, schema_toml)
    with pytest.raises(BuildError) as err:
        _build(root, tmp_path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_profile_writes_each_computed_models_query_plan(tmp_path):
    import json

    data_dir = one_done_task().write(tmp_path / "data")
    build(BuildSettings(data_dir=data_dir, profile=tmp_path / "profile"))
    computed = {m.table for m in discover() if m.materialized != "view" and not m.is_python}
    files = {p.stem for p in (tmp_path / "profile").glob("*.json")}
    assert files == computed
    plan = json.loads(
        (tmp_path / "profile" / "intermediate.int_task_status_changes.json").read_text()
    )
    assert "WINDOW" in json.dumps(plan["operator"])


def test_a_temp_model_is_released_after_its_last_reader_and_its_readers_come_first(
    tmp_path, monkeypatch
):
    """The status changes (0.5 GB at 1M tasks) go before lin_week_tasks is written, a model that
    holds nothing comes before any temp model, and nothing built after a release reads what was
    released (directly or through a view)."""
    from scrums_velocity.models import duckdb_engine

    steps: list[tuple[str, str]] = []
    create, start_python, release = (
        duckdb_engine.DuckDBEngine.create,
        duckdb_engine.DuckDBEngine.start_python,
        duckdb_engine.DuckDBEngine.release,
    )

    def spy(kind, method):
        def wrapper(self, table, *args, **kwargs):
            steps.append((kind, table))
            return method(self, table, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(duckdb_engine.DuckDBEngine, "create", spy("create", create))
    monkeypatch.setattr(duckdb_engine.DuckDBEngine, "start_python", spy("create", start_python))
    monkeypatch.setattr(duckdb_engine.DuckDBEngine, "release", spy("release", release))
    data_dir = one_done_task().write(tmp_path)
    build(BuildSettings(data_dir=data_dir))

    models = {m.table: m for m in discover()}

    def reads(table: str) -> set[str]:  # through views
        out, pending = set(), list(models[table].refs())
        while pending:
            ref = pending.pop()
            if ref not in out:
                out.add(ref)
                if models[ref].materialized == "view":
                    pending.extend(models[ref].refs())
        return out

    created = [t for kind, t in steps if kind == "create"]
    assert created == list(models)  # every model, in discover's order
    released_at = {}
    for i, (kind, table) in enumerate(steps):
        if kind == "release" and table not in released_at:
            released_at[table] = i
    temps = {t for t, m in models.items() if m.materialized == "temp"}
    assert set(released_at) == temps
    for table, at in released_at.items():
        later = [t for kind, t in steps[at + 1 :] if kind == "create"]
        assert not [t for t in later if table in reads(t)], table
    changes = released_at["intermediate.int_task_status_changes"]
    assert changes < steps.index(("create", "marts.lin_week_tasks"))
    # a model that holds nothing (not temp, reading no temp) is built before any temp exists
    first_temp = min(steps.index(("create", t)) for t in temps)
    assert steps.index(("create", "marts.dq_probable_duplicates")) < first_temp


def test_a_temp_model_read_only_by_data_tests_lives_until_they_ran(tmp_path):
    """A relationships target and tables a singular test names in quotes or capitals count as
    readers: they are not dropped before the tests (the build named none of them when it was)."""
    root = tmp_path / "models"
    for layer in ("staging", "intermediate", "marts", "tests"):
        (root / layer).mkdir(parents=True)
    shutil.copy(MODELS_DIR / "staging" / "stg_tasks.sql", root / "staging")
    (root / "staging" / "_schema.toml").write_text('[stg_tasks]\nmaterialized = "view"\n')
    (root / "intermediate" / "int_a.sql").write_text("select task_id from staging.stg_tasks\n")
    (root / "intermediate" / "int_b.sql").write_text("select task_id from staging.stg_tasks\n")
    (root / "intermediate" / "_schema.toml").write_text(
        '[int_a]\nmaterialized = "temp"\n\n[int_b]\nmaterialized = "temp"\n'
    )
    (root / "marts" / "m.sql").write_text("select task_id from intermediate.int_a\n")
    (root / "marts" / "_schema.toml").write_text(
        '[m]\nmaterialized = "table"\n'
        'relationships = [{ columns = ["task_id"], to = "intermediate.int_a" }]\n'
    )
    (root / "tests" / "m__every_task_in_b.sql").write_text(
        'select task_id from marts.m except select task_id from INTERMEDIATE."int_b"\n'
    )
    con = _build(root, tmp_path)
    assert con.execute("select count(*) from marts.m").fetchone() == (3,)


def test_closing_the_engine_stops_a_query_still_running_on_it(tmp_path):
    """A Ctrl-C that lands before the runner began waiting for a query leaves it running on the
    connection; closing the engine interrupts it instead of failing on a busy connection (a
    traceback the review once saw)."""
    from scrums_velocity.models.duckdb_engine import DuckDBEngine

    engine = DuckDBEngine(threads=1, memory_limit="256MB", scratch=tmp_path / "scratch")
    outcome, starting = [], threading.Event()

    def endless():
        starting.set()
        try:
            engine.con.execute(
                "select sum(hash(a.range, b.range)) from range(100000000) a, range(100000) b"
            ).fetchall()
        except duckdb.Error as exc:
            outcome.append(type(exc).__name__)

    query = threading.Thread(target=endless, daemon=True)
    query.start()
    starting.wait(20)
    time.sleep(0.3)  # the query is running
    engine.close()
    query.join(20)
    assert outcome == ["InterruptException"]


def test_ctrl_c_stops_a_model_mid_query_and_leaves_no_busy_connection(tmp_path):
    """Ctrl-C ends a build within a moment, not at the end of the model's query (DuckDB alone
    could miss the signal under load), and the engine still closes and cleans up."""
    import _thread
    import threading

    root = tmp_path / "models"
    (root / "marts").mkdir(parents=True)
    (root / "marts" / "endless.sql").write_text(
        "select sum(hash(a.range, b.range)) as n from range(100000000) a, range(100000) b\n"
    )
    (root / "marts" / "_schema.toml").write_text('[endless]\nmaterialized = "table"\n')
    timer = threading.Timer(1.0, _thread.interrupt_main)  # what Ctrl-C does
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            _build(root, tmp_path)  # minutes of work, were it not stopped
    finally:
        timer.cancel()
    assert not list(tmp_path.glob("*.spill"))  # the engine closed and cleaned up
