"""Time travel: every run's commit is a snapshot the build can read again, until vacuumed."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import duckdb
import pytest

from scrums_velocity.api_server import create_app, generate
from scrums_velocity.errors import ConfigError, LakeError
from scrums_velocity.lake import open_lake
from scrums_velocity.models.runner import BuildSettings, build
from tests.conftest import NOW
from tests.extract.conftest import run_extract


@pytest.fixture
def two_snapshots(tmp_path):
    """A lake extracted twice; between the runs up to 40 tasks were cancelled through the API."""
    ds = generate(tasks=500, seed=61, now=NOW)
    app = create_app(ds)
    run_extract(ds, app, tmp_path)
    first = open_lake(tmp_path).head()
    store = app.state.store
    closed = 0
    for tid, status in zip(ds.tasks["id"][:40], ds.tasks["status"][:40], strict=True):
        store.update(store.by_id[tid], {"status": "cancelled"}, by="USR-26-000040")
        closed += status != "cancelled"
    run_extract(ds, app, tmp_path)
    return tmp_path, first, open_lake(tmp_path).head(), closed


def cancelled(data_dir) -> int:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(
            "select count(*) from staging.stg_tasks where status = 'cancelled'"
        ).fetchall()[0][0]
    finally:
        con.close()


def test_the_build_reads_the_snapshot_it_is_given(two_snapshots):
    data_dir, first, second, closed = two_snapshots
    assert first.run_id != second.run_id
    assert closed > 30
    build(BuildSettings(data_dir=data_dir))
    now = cancelled(data_dir)
    build(BuildSettings(data_dir=data_dir, snapshot=first.run_id))
    then = cancelled(data_dir)
    assert now - then == closed  # the tasks closed between the runs
    build(BuildSettings(data_dir=data_dir, snapshot=first.committed_at.isoformat()))
    assert cancelled(data_dir) == then
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    assert con.execute("select lake_snapshot from marts.build_info").fetchall() == [(first.run_id,)]
    con.close()


def test_unknown_snapshots_are_refused(two_snapshots):
    data_dir, first, _, _ = two_snapshots
    with pytest.raises(ConfigError, match="the lake has no snapshot of run 'nope'"):
        build(BuildSettings(data_dir=data_dir, snapshot="nope"))
    before = (first.committed_at - timedelta(days=1)).isoformat()
    with pytest.raises(ConfigError, match="the lake has no snapshot committed at or before"):
        build(BuildSettings(data_dir=data_dir, snapshot=before))


def test_lake_history_lists_the_snapshots(two_snapshots):
    data_dir, first, second, _ = two_snapshots
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "lake", "history", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [first.run_id, second.run_id]
    assert "runs=2" in lines[1]


def test_vacuum_keeps_the_snapshots_within_retention(two_snapshots):
    data_dir, first, _, _ = two_snapshots
    lake = open_lake(data_dir)
    with lake.lease("vacuum-1") as lease:
        lake.vacuum(lease, timedelta(days=30))
    build(BuildSettings(data_dir=data_dir, snapshot=first.run_id))  # still readable


def test_vacuum_past_retention_removes_old_files_and_keeps_the_head(two_snapshots):
    data_dir, first, second, _ = two_snapshots
    lake = open_lake(data_dir)
    with lake.lease("vacuum-1") as lease:
        removed = lake.vacuum(lease, timedelta(0))
    assert removed["tasks"] > 0  # the first run's task partitions, rewritten by the second
    assert lake.head() == second
    build(BuildSettings(data_dir=data_dir))  # the head reads whole
    with pytest.raises(
        LakeError, match=rf"snapshot {first.run_id} is damaged: tasks/.* is missing"
    ):
        build(BuildSettings(data_dir=data_dir, snapshot=first.run_id))


def test_a_lake_below_folders_named_like_partitions_reads_and_builds(tmp_path):
    """Folders above the data dir may hold "=" (even "workspace_id=..."): only a file's own
    folder names its partition. Extraction (its history check scans the lake) and the build
    (its as-of scan) both read such a lake like any other."""
    data_dir = tmp_path / "x=1" / "workspace_id=WS-00-000000" / "data y=2"
    ds = generate(tasks=200, seed=5, now=NOW)
    run_extract(ds, create_app(ds), data_dir)
    lake = open_lake(data_dir)
    for dataset in ("tasks", "task_history"):
        scanned = lake.scan(dataset).collect()
        read = lake.read(dataset)
        assert scanned.columns == read.columns
        assert sorted(scanned.rows()) == sorted(read.rows())
        assert set(scanned["workspace_id"]) == {w.id for w in ds.workspaces}
    build(BuildSettings(data_dir=data_dir))
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from marts.task_completions").fetchone()[0] > 0
    con.close()


@pytest.mark.parametrize("folder", ["b[1]", "x]", "pct%41"])
def test_a_data_dir_the_delta_library_cannot_address_is_refused_in_one_line(tmp_path, folder):
    """deltalake panics on "[" or "]" in a path and decodes "%41" to "A" (writing elsewhere): such
    a lake path is refused before anything is written, naming the character."""
    ds = generate(tasks=20, seed=5, now=NOW)
    data_dir = tmp_path / folder / "data"
    with pytest.raises(ConfigError) as err:
        run_extract(ds, create_app(ds), data_dir)
    assert str(err.value).startswith(f"the lake's path {data_dir / 'lake'} holds ")
    assert "which the Delta library cannot address" in str(err.value)
    assert not (tmp_path / folder).exists() or not any((tmp_path / folder).rglob("_delta_log"))


def test_a_panic_in_the_storage_library_is_a_lake_error():
    """pyo3 turns a Rust panic into PanicException, a BaseException: still one line."""
    from scrums_velocity.lake import storage_errors

    class PanicException(BaseException):  # pyo3_runtime's, as deltalake raises it
        pass

    expected = r"^cannot write x: Invalid object store url\.$"
    with pytest.raises(LakeError, match=expected), storage_errors("cannot write x"):
        raise PanicException("Invalid object store url.")
    # other BaseExceptions pass through
    with pytest.raises(KeyboardInterrupt), storage_errors("cannot write x"):
        raise KeyboardInterrupt
