"""Convert a lake from the old layout (Parquet snapshots behind a ``lake`` symlink) to Delta.

The old layout: ``<data-dir>/lake -> .lake/snapshots/<run_id>/<dataset>/workspace_id=...``.
Its current snapshot (else the newest complete one, when the link was lost) is copied into Delta
tables, checked (row counts of every dataset, and the whole task history row for row), and only
then put in place; the old snapshots are kept in ``<data-dir>/.lake-legacy/`` until you delete them.
A migration killed part-way leaves the old layout as it was and starts again next time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from scrums_velocity.errors import LakeError
from scrums_velocity.lake.location import LakeLocation
from scrums_velocity.lake.schemas import DATASETS, PARTITIONED, SCHEMAS, RunRecord, empty, frame
from scrums_velocity.lake.tables import Lake, Snapshot
from scrums_velocity.observe import event

_HISTORY_KEY = ["task_id", "at", "change", "from_value", "to_value", "by"]


def legacy_snapshot(data_dir: Path) -> Path | None:
    """The old-layout snapshot to migrate from, if ``data_dir`` holds one."""
    link = data_dir / "lake"
    if link.is_symlink():
        target = link.resolve()
        return target if target.is_dir() else None
    snapshots = data_dir / ".lake" / "snapshots"
    if link.exists() or not snapshots.is_dir():
        return None
    complete = sorted(p for p in snapshots.iterdir() if p.is_dir() and not p.name.endswith(".tmp"))
    return complete[-1] if complete else None


def _read_old(snapshot: Path, dataset: str) -> pl.DataFrame:
    files = sorted((snapshot / dataset).rglob("*.parquet")) if (snapshot / dataset).is_dir() else []
    schema = SCHEMAS[dataset]
    if not files:
        return frame(empty(schema))
    try:
        df = pl.read_parquet(files, hive_partitioning=dataset in PARTITIONED)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise LakeError(
            f"cannot migrate the old lake at {snapshot}: {dataset} is unreadable "
            f"({str(exc).splitlines()[0]}); run 'velocity extract --full' to rebuild it instead"
        ) from None
    missing = [f for f in schema if f.name not in df.columns]
    df = df.with_columns(pl.lit(None).alias(f.name) for f in missing)
    return df.select(schema.names)


def _digest(df: pl.DataFrame) -> str:
    text = df.select(_HISTORY_KEY).sort(_HISTORY_KEY, nulls_last=True).write_csv()
    return hashlib.sha256(text.encode()).hexdigest()


def migrate(data_dir: Path, target: LakeLocation, snapshot_dir: Path) -> Snapshot:
    """Copy the old snapshot into Delta tables at ``target`` and check nothing was lost.

    For the default location (``<data-dir>/lake``, where the old link is) the tables are written
    beside it first and swapped in after the check.
    """
    default = target.is_local and Path(target.url) == (data_dir / "lake").absolute()
    staging_dir = data_dir / ".lake-migrating"
    shutil.rmtree(staging_dir, ignore_errors=True)
    where = LakeLocation(str(staging_dir.absolute()), True) if default else target
    lake = Lake(where)
    if not default and lake.head() is not None:
        raise LakeError(f"cannot migrate into {target}: it already holds a lake")
    frames = {d: _read_old(snapshot_dir, d) for d in DATASETS}
    frames["runs"] = frames["runs"].with_columns(
        pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("committed_at"),
        pl.lit(None)
        .cast(frame(empty(SCHEMAS["runs"]))["lake_versions"].dtype)
        .alias("lake_versions"),
    )
    tables = {d: f.to_arrow().cast(SCHEMAS[d]) for d, f in frames.items()}
    now = datetime.now(UTC)
    run_id = "migrate-" + now.strftime("%Y%m%dT%H%M%S%fZ")
    row = RunRecord(
        run_id,
        "migrate",
        started_at=now,
        finished_at=now,
        mode="migrate",
        stages={"migrate": f"from {snapshot_dir.name}"},
    ).row()
    with lake.lease(run_id) as lease:
        snap = lake.commit(lease, run_id, None, [], row, now, tables=tables)
    for dataset in DATASETS:
        new = lake.read(dataset, snap)
        expected = frames[dataset].height + (1 if dataset == "runs" else 0)
        if new.height != expected:
            raise LakeError(
                f"migration check failed: {dataset} has {new.height} rows, expected {expected}; "
                f"the old lake at {snapshot_dir} is untouched"
            )
    old_digest, new_digest = (
        _digest(frames["task_history"]),
        _digest(lake.read("task_history", snap)),
    )
    if old_digest != new_digest:
        raise LakeError(
            f"migration check failed: task history differs; the old lake at {snapshot_dir} is "
            "untouched"
        )
    if default:
        link = data_dir / "lake"
        if link.is_symlink():
            link.unlink()
        os.rename(staging_dir, link)
        legacy = data_dir / ".lake"
        if legacy.is_dir():
            os.rename(legacy, data_dir / f".lake-legacy-{now.strftime('%Y%m%dT%H%M%SZ')}")
    event(
        "lake.migrated",
        source=str(snapshot_dir),
        target=str(target),
        **{d: frames[d].height for d in DATASETS},
        history_sha256=new_digest[:16],
    )
    return snap
