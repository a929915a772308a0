"""An old-layout lake (Parquet snapshots behind a symlink) converts to Delta once, losing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scrums_velocity.api_server import create_app, generate
from scrums_velocity.errors import LakeError
from scrums_velocity.lake import PARTITIONED, SCHEMAS, open_lake
from scrums_velocity.models.runner import BuildSettings, build
from tests.conftest import NOW
from tests.extract.conftest import assert_same_lake, run_extract

OLD_RUN = "20261101T000000000000Z-abcdef"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    ds = generate(tasks=400, seed=67, now=NOW)
    path = tmp_path_factory.mktemp("reference")
    run_extract(ds, create_app(ds), path)
    return path


def write_old_layout(source: Path, data_dir: Path, *, link: bool = True) -> Path:
    """``source``'s lake written as the extractor wrote it before Delta: Hive folders per
    workspace (workspace_id only in the path), a runs folder, a symlink to the snapshot."""
    lake = open_lake(source)
    snap = data_dir / ".lake" / "snapshots" / OLD_RUN
    for dataset in PARTITIONED:
        frame = lake.read(dataset)
        for (ws,), part in frame.group_by("workspace_id"):
            path = snap / dataset / f"workspace_id={ws}" / f"part-{OLD_RUN}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            part.drop("workspace_id").write_parquet(path)
    runs = lake.read("runs").drop("committed_at", "lake_versions")
    (snap / "runs").mkdir(parents=True)
    pq.write_table(runs.to_arrow(), snap / "runs" / f"run-{OLD_RUN}.parquet")
    (data_dir / ".lake" / "snapshots" / "older-incomplete.tmp").mkdir()
    if link:
        os.symlink(os.path.relpath(snap, data_dir), data_dir / "lake")
    return snap


def test_an_old_lake_is_migrated_on_first_use_with_nothing_lost(reference, tmp_path):
    write_old_layout(reference, tmp_path)
    lake = open_lake(tmp_path)  # migrates
    assert (tmp_path / "lake").is_dir()
    assert not (tmp_path / "lake").is_symlink()
    assert (tmp_path / "lake" / "tasks" / "_delta_log").is_dir()
    kept = list(tmp_path.glob(".lake-legacy-*/snapshots/" + OLD_RUN))
    assert len(kept) == 1  # the old snapshots are kept until the operator deletes them
    assert_same_lake(reference, tmp_path)
    runs = lake.read("runs")
    assert sorted(runs["command"].to_list()) == ["extract", "migrate"]
    build(BuildSettings(data_dir=tmp_path))
    assert open_lake(tmp_path).head().run_id.startswith("migrate-")  # and only once


def test_a_lost_link_is_recovered_from_the_newest_complete_snapshot(reference, tmp_path):
    write_old_layout(reference, tmp_path, link=False)
    open_lake(tmp_path)
    assert_same_lake(reference, tmp_path)


def test_the_migrate_command(reference, tmp_path):
    write_old_layout(reference, tmp_path)

    def velocity(*args):
        return subprocess.run([sys.executable, "-m", "scrums_velocity", *args],
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    r = velocity("lake", "migrate", "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"migrated {tmp_path / '.lake' / 'snapshots' / OLD_RUN} to ")
    assert_same_lake(reference, tmp_path)
    r = velocity("lake", "migrate", "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"Error: no old-layout lake in {tmp_path}: nothing to migrate"]


def test_a_damaged_old_lake_is_left_as_it_was(reference, tmp_path):
    snap = write_old_layout(reference, tmp_path)
    victim = next((snap / "task_history").rglob("*.parquet"))
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(LakeError, match=r"task_history is unreadable .*velocity extract --full"):
        open_lake(tmp_path)
    assert (tmp_path / "lake").is_symlink()  # the old layout as it was


def test_old_runs_rows_keep_their_values(reference, tmp_path):
    write_old_layout(reference, tmp_path)
    old = pl.read_parquet(next(tmp_path.glob(".lake/snapshots/*/runs/*.parquet")))
    new = open_lake(tmp_path).read("runs").filter(pl.col("command") == "extract")
    cols = [c for c in old.columns if c in SCHEMAS["runs"].names]
    assert new.select(cols).equals(old.select(cols).cast(new.select(cols).schema))
    assert pa.types.is_map(SCHEMAS["runs"].field("lake_versions").type)
