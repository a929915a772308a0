"""The Parquet lake: schemas, batched staging writes, and atomic snapshot commits.

Layout (``<data-dir>`` defaults to ``data/``)::

    <data-dir>/lake -> .lake/snapshots/<run_id>     a symlink, swapped atomically per commit
    <data-dir>/.lake/snapshots/<run_id>/
        tasks/workspace_id=WS-.../part-<run_id>.parquet        latest state, one row per task
        task_versions/workspace_id=WS-.../part-<run_id>.parquet   append-only
        task_history/workspace_id=WS-.../part-<run_id>.parquet    append-only
        rejects/workspace_id=WS-.../part-<run_id>.parquet         append-only
        runs/run-<run_id>.parquet                                 one manifest row per run
    <data-dir>/.lake/staging/<run_id>/      what a run in progress writes

A commit builds a new snapshot directory from hard links to the previous snapshot's files (no
data is copied) plus the run's new files, renames it into place, then replaces the ``lake``
symlink with ``os.replace``. Readers therefore see either the previous snapshot or the new one,
all datasets together; a run killed at any instant leaves the previous snapshot untouched, and its
half-written staging directory is removed by the next run. The last ``KEEP_SNAPSHOTS`` snapshots are
kept so that a reader holding an older one open is not cut off.

``workspace_id`` lives in the Hive partition path, not inside the files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from scrums_velocity.errors import ConfigError, ExtractError

KEEP_SNAPSHOTS = 3
TS = pa.timestamp("us", tz="UTC")

_TASK_FIELDS = [
    ("id", pa.string()),
    ("service_line_id", pa.string()),
    ("project_id", pa.string()),
    ("title", pa.string()),
    ("description", pa.string()),
    ("status", pa.string()),
    ("priority", pa.string()),
    ("assignee_id", pa.string()),
    ("external_id", pa.string()),
    ("external_source", pa.string()),
    ("external_url", pa.string()),
    ("created_at", TS),
    ("updated_at", TS),
    ("history_count", pa.int32()),
]
SCHEMAS: dict[str, pa.Schema] = {
    "tasks": pa.schema(
        [
            *_TASK_FIELDS,
            ("history_digest", pa.string()),
            ("missing_since", TS),
            ("extracted_at", TS),
            ("run_id", pa.string()),
            ("raw", pa.string()),
        ]
    ),
    "task_versions": pa.schema(
        [*_TASK_FIELDS, ("extracted_at", TS), ("run_id", pa.string()), ("raw", pa.string())]
    ),
    "task_history": pa.schema(
        [
            ("task_id", pa.string()),
            ("at", TS),
            ("change", pa.string()),
            ("from_value", pa.string()),
            ("to_value", pa.string()),
            ("by", pa.string()),
            ("extracted_at", TS),
            ("run_id", pa.string()),
        ]
    ),
    "rejects": pa.schema(
        [
            ("run_id", pa.string()),
            ("rejected_at", TS),
            ("stage", pa.string()),
            ("task_id", pa.string()),
            ("reason", pa.string()),
            ("payload", pa.string()),
        ]
    ),
    "runs": pa.schema(
        [
            ("run_id", pa.string()),
            ("command", pa.string()),
            ("started_at", TS),
            ("finished_at", TS),
            ("mode", pa.string()),
            ("workspaces", pa.list_(pa.string())),
            ("pages", pa.int64()),
            ("requests", pa.int64()),
            ("tasks_listed", pa.int64()),
            ("tasks_new", pa.int64()),
            ("tasks_changed", pa.int64()),
            ("tasks_unchanged", pa.int64()),
            ("details_fetched", pa.int64()),
            ("details_not_found", pa.int64()),
            ("tasks_missing", pa.int64()),
            ("versions_added", pa.int64()),
            ("history_rows_added", pa.int64()),
            ("history_mismatches", pa.int64()),
            ("rejects", pa.int64()),
            ("retries", pa.map_(pa.string(), pa.int64())),
            ("http_statuses", pa.map_(pa.string(), pa.int64())),
            ("unknown_values", pa.map_(pa.string(), pa.int64())),
            ("stages", pa.map_(pa.string(), pa.string())),
            ("duration_s", pa.float64()),
            ("outcome", pa.string()),
            ("error", pa.string()),
        ]
    ),
}
PARTITIONED = ("tasks", "task_versions", "task_history", "rejects")


def _partition(dataset: str, workspace_id: str) -> Path:
    return Path(dataset) / f"workspace_id={workspace_id}"


class StagingWriter:
    """Buffers rows per (dataset, workspace) and streams them to Parquet in batches."""

    def __init__(self, directory: Path, run_id: str, batch_rows: int = 2000) -> None:
        self.directory = directory
        self.run_id = run_id
        self.batch_rows = batch_rows
        self._buffers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._writers: dict[tuple[str, str], pq.ParquetWriter] = {}
        self.rows: dict[str, int] = dict.fromkeys(PARTITIONED, 0)

    def add(self, dataset: str, workspace_id: str, row: dict[str, Any]) -> None:
        key = (dataset, workspace_id)
        buf = self._buffers.setdefault(key, [])
        buf.append(row)
        self.rows[dataset] += 1
        if len(buf) >= self.batch_rows:
            self._flush(key)

    def _flush(self, key: tuple[str, str]) -> None:
        rows = self._buffers.get(key)
        if not rows:
            return
        dataset, ws = key
        writer = self._writers.get(key)
        if writer is None:
            path = self.directory / _partition(dataset, ws) / f"part-{self.run_id}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(path, SCHEMAS[dataset], compression="zstd")
            self._writers[key] = writer
        writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS[dataset]))
        rows.clear()

    def close(self) -> None:
        for key in list(self._buffers):
            self._flush(key)
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def abort(self) -> None:
        for writer in self._writers.values():
            with contextlib.suppress(Exception):
                writer.close()
        self._writers.clear()
        self._buffers.clear()


@dataclass(frozen=True)
class Refresh:
    """What a run learnt about one workspace's tasks."""

    workspace_id: str
    complete: bool  # the whole workspace was listed (not narrowed): absences mean deletions
    seen_ids: frozenset[str]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Lake:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.root = data_dir / ".lake"
        self.snapshots = self.root / "snapshots"
        self.staging_root = self.root / "staging"
        self.link = data_dir / "lake"

    # ---- reading ---------------------------------------------------------------------------
    def current(self) -> Path | None:
        if self.link.is_symlink():
            target = self.link.resolve()
            return target if target.is_dir() else None
        if self.link.exists():
            raise ConfigError(
                f"{self.link} exists but is not a lake snapshot link; move it away and rerun"
            )
        return None

    def files(self, dataset: str, snapshot: Path | None = None) -> list[Path]:
        snap = snapshot or self.current()
        if snap is None or not (snap / dataset).is_dir():
            return []
        return sorted((snap / dataset).rglob("*.parquet"))

    def scan(self, dataset: str, snapshot: Path | None = None) -> pl.LazyFrame | None:
        """A lazy frame over one dataset (with ``workspace_id`` from the partition path)."""
        files = self.files(dataset, snapshot)
        if not files:
            return None
        return pl.scan_parquet(files, hive_partitioning=dataset in PARTITIONED)

    def load_state(self) -> pl.DataFrame:
        """Ids and timestamps of every task in the lake: all an incremental run needs to hold."""
        lf = self.scan("tasks")
        cols = ["id", "workspace_id", "updated_at", "history_count", "history_digest"]
        if lf is None:
            return pl.DataFrame(
                schema={
                    "id": pl.String,
                    "workspace_id": pl.String,
                    "updated_at": pl.Datetime("us", "UTC"),
                    "history_count": pl.Int32,
                    "history_digest": pl.String,
                }
            )
        return lf.select(cols).collect()

    # ---- writing ---------------------------------------------------------------------------
    def staging(self, run_id: str) -> Path:
        path = self.staging_root / run_id
        path.mkdir(parents=True, exist_ok=False)
        return path

    def commit(
        self,
        run_id: str,
        staging: Path,
        refreshes: list[Refresh],
        run_row: dict[str, Any],
        run_started: datetime,
        inspect: Callable[[Path], dict[str, Any]] | None = None,
    ) -> Path:
        """Publish a new snapshot: the previous one plus this run's files, atomically.

        ``inspect(snapshot_dir)`` runs on the assembled snapshot before it is published; what it
        returns is merged into the manifest row.
        """
        self.snapshots.mkdir(parents=True, exist_ok=True)
        previous = self.current()
        tmp = self.snapshots / f"{run_id}.tmp"
        final = self.snapshots / run_id
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        refreshed = {r.workspace_id: r for r in refreshes}

        # Append-only datasets and untouched task partitions: hard links to the previous files.
        if previous is not None:
            for path in previous.rglob("*.parquet"):
                rel = path.relative_to(previous)
                if rel.parts[0] == "tasks" and rel.parts[1].removeprefix("workspace_id=") in (
                    refreshed
                ):
                    continue  # rewritten below
                if rel.parts[1] == EMPTY_PARTITION:
                    continue  # placeholders are made anew where still needed
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, dest)
        # This run's append-only files.
        for dataset in ("task_versions", "task_history", "rejects"):
            for path in (
                (staging / dataset).rglob("*.parquet") if (staging / dataset).is_dir() else []
            ):
                dest = tmp / path.relative_to(staging)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
        # Tasks of refreshed workspaces: previous rows of unchanged tasks + this run's rows.
        for ws, refresh in refreshed.items():
            self._merge_tasks(previous, staging, tmp, ws, refresh, run_id, run_started)
        # Every dataset is present in every snapshot, if only as an empty file, so that readers
        # can glob each one without special cases for a young lake.
        for dataset in PARTITIONED:
            if not any((tmp / dataset).rglob("*.parquet")):
                write_empty(tmp, dataset)
        if inspect is not None:
            run_row = {**run_row, **inspect(tmp)}
        # The manifest row.
        runs_dir = tmp / "runs"
        runs_dir.mkdir(exist_ok=True)
        pq.write_table(
            pa.Table.from_pylist([run_row], schema=SCHEMAS["runs"]),
            runs_dir / f"run-{run_id}.parquet",
        )
        for d in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
            _fsync_dir(d)
        os.rename(tmp, final)
        _fsync_dir(self.snapshots)
        self.publish(final)
        self.collect_garbage(keep_run=run_id)
        return final

    def publish(self, snapshot: Path) -> None:
        """Point ``<data-dir>/lake`` at a complete snapshot directory, atomically."""
        link_tmp = self.data_dir / f".lake-link-{snapshot.name}"
        with contextlib.suppress(FileNotFoundError):
            link_tmp.unlink()
        os.symlink(os.path.relpath(snapshot, self.data_dir), link_tmp)
        os.replace(link_tmp, self.link)
        _fsync_dir(self.data_dir)

    def _merge_tasks(
        self,
        previous: Path | None,
        staging: Path,
        tmp: Path,
        ws: str,
        refresh: Refresh,
        run_id: str,
        run_started: datetime,
    ) -> None:
        part = _partition("tasks", ws)
        new_file = staging / part / f"part-{run_id}.parquet"
        frames: list[pl.LazyFrame] = []
        new_ids = pl.Series("id", [], dtype=pl.String)
        if new_file.exists():
            new = pl.scan_parquet(new_file)
            new_ids = new.select("id").collect()["id"]
            frames.append(new)
        old_files = sorted((previous / part).glob("*.parquet")) if previous else []
        if old_files:
            old = pl.scan_parquet(old_files).filter(~pl.col("id").is_in(new_ids.implode()))
            if refresh.complete:
                seen = pl.Series("id", sorted(refresh.seen_ids), dtype=pl.String)
                old = old.with_columns(
                    pl.when(pl.col("id").is_in(seen.implode()))
                    .then(pl.lit(None, dtype=pl.Datetime("us", "UTC")))
                    .otherwise(
                        pl.coalesce(
                            pl.col("missing_since"), pl.lit(run_started).dt.cast_time_unit("us")
                        )
                    )
                    .alias("missing_since")
                )
            frames.append(old)
        if not frames:
            return
        out = tmp / part / f"part-{run_id}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        merged = pl.concat(frames, how="vertical_relaxed")
        merged.sink_parquet(out, compression="zstd")

    def collect_garbage(self, keep_run: str | None = None) -> None:
        """Remove half-written staging dirs and snapshots beyond the newest few."""
        if self.staging_root.is_dir():
            for path in self.staging_root.iterdir():
                if path.name != keep_run:
                    shutil.rmtree(path, ignore_errors=True)
        if not self.snapshots.is_dir():
            return
        current = self.current()
        snaps = sorted(p for p in self.snapshots.iterdir() if p.is_dir())
        for path in snaps:
            if path.name.endswith(".tmp"):
                shutil.rmtree(path, ignore_errors=True)
        complete = [p for p in snaps if not p.name.endswith(".tmp")]
        for path in complete[:-KEEP_SNAPSHOTS]:
            if current is None or path != current:
                shutil.rmtree(path, ignore_errors=True)

    def discard_staging(self, run_id: str) -> None:
        shutil.rmtree(self.staging_root / run_id, ignore_errors=True)


EMPTY_PARTITION = "workspace_id=none"


def write_empty(root: Path, dataset: str) -> None:
    """An empty file with the dataset's schema (in a partition no workspace is called)."""
    path = root / dataset / EMPTY_PARTITION / "part-empty.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(SCHEMAS[dataset].empty_table(), path)


def verify_snapshot(snapshot: Path, workspaces: list[str]) -> dict[str, int]:
    """Check a snapshot: every task's history rows match the history count the API returned.

    Returns ``history_mismatches`` (tasks whose lake history differs in length from the API's)
    and ``tasks_missing`` (tasks marked missing) for the given workspaces.
    """
    task_files = sorted((snapshot / "tasks").rglob("*.parquet"))
    if not task_files or not workspaces:
        return {"history_mismatches": 0, "tasks_missing": 0}
    tasks = (
        pl.scan_parquet(task_files, hive_partitioning=True)
        .filter(pl.col("workspace_id").is_in(workspaces))
        .select("id", "history_count", "missing_since")
    )
    hist_files = sorted((snapshot / "task_history").rglob("*.parquet"))
    if hist_files:
        counts = pl.scan_parquet(hist_files, hive_partitioning=True).group_by("task_id").len()
        tasks = tasks.join(counts, left_on="id", right_on="task_id", how="left")
    else:
        tasks = tasks.with_columns(pl.lit(None, dtype=pl.UInt32).alias("len"))
    out = tasks.select(
        (pl.col("len").fill_null(0) != pl.col("history_count")).sum().alias("history_mismatches"),
        pl.col("missing_since").is_not_null().sum().alias("tasks_missing"),
    ).collect()
    return {k: int(v or 0) for k, v in out.row(0, named=True).items()}


def require_readable(lake: Lake) -> Path:
    snap = lake.current()
    if snap is None:
        raise ExtractError(f"no lake in {lake.data_dir}: run 'velocity extract' first")
    return snap
