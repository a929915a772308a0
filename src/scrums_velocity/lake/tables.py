"""The lake's datasets as Delta Lake tables, and snapshots that span all of them.

Layout under the lake's root (a local folder or ``s3://bucket/prefix``)::

    tasks/           latest state, one row per task          partitioned by workspace_id
    task_versions/   every state a run saw (append-only)     partitioned by workspace_id
    task_history/    status-history entries (append-only)    partitioned by workspace_id
    rejects/         records that failed validation           partitioned by workspace_id
    runs/            one row per run: the run manifest and the snapshot record
    _velocity/       the writer's lease (object stores only)

Each dataset is a Delta table: atomic commits, time travel and a file list that Spark, Trino,
Databricks, DuckDB, polars and pandas read. A run commits to several tables, and Delta commits are
atomic per table only, so the ``runs`` table is the lake's commit point: a run's row records the
version of every table it wrote (``lake_versions``), and readers open each table at the versions
of the newest row (a *snapshot*). Commits a killed run made to data tables before its runs row are
invisible to readers and are rolled back (``RESTORE``) by the next writer, who holds the lease.
"""

from __future__ import annotations

import contextlib
import secrets
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from scrums_velocity.errors import ConfigError, LakeError
from scrums_velocity.lake.lease import WriterLease
from scrums_velocity.lake.location import LakeLocation, storage_message
from scrums_velocity.lake.schemas import (
    _DEDUPE,
    DATASETS,
    PARTITIONED,
    SCHEMAS,
    RunRecord,
    empty,
    frame,
)
from scrums_velocity.lake.staging import staged as _staged
from scrums_velocity.observe import event
from scrums_velocity.times import parse_instant

if TYPE_CHECKING:  # imported where used: pyarrow.dataset imports pandas (0.2-0.3 s a process)
    import pyarrow.dataset as pads


@dataclass(frozen=True)
class Snapshot:
    """One consistent state of the whole lake: the versions a run's row recorded."""

    run_id: str
    committed_at: datetime
    versions: dict[str, int]


@dataclass(frozen=True)
class Damage:
    """A data file a snapshot needs that is missing, truncated or unreadable."""

    dataset: str
    path: str  # relative to the table
    reason: str

    def __str__(self) -> str:
        return f"{self.dataset}/{self.path} {self.reason}"


class LakeDamaged(LakeError):
    """The snapshot a stage would read is damaged; ``damage`` lists what."""

    def __init__(self, snapshot: Snapshot, damage: list[Damage], fix: str) -> None:
        self.damage = damage
        more = f" (+{len(damage) - 1} more)" if len(damage) > 1 else ""
        super().__init__(
            f"the lake's snapshot {snapshot.run_id} is damaged: {damage[0]}{more}; {fix}"
        )


@dataclass(frozen=True)
class Refresh:
    """What a run learnt about one workspace's tasks."""

    workspace_id: str
    complete: bool  # the whole workspace was listed (not narrowed): absences mean deletions
    seen_ids: frozenset[str]


def new_run_id(now: datetime) -> str:
    """A run's id: its start time (sorts by time) and 6 random hex digits."""
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


@contextlib.contextmanager
def storage_errors(what: str, fix: str = "") -> Iterator[None]:
    """Turn the storage libraries' errors into one-line ``LakeError``s, credentials redacted."""
    from deltalake.exceptions import DeltaError

    try:
        yield
    except BaseException as exc:
        # a panic in deltalake's Rust code reaches Python as pyo3's PanicException, which is no
        # Exception (a data dir with "[" in its path: "Invalid object store url")
        storage = (DeltaError, OSError, pa.ArrowException, pl.exceptions.PolarsError)
        if not isinstance(exc, storage) and type(exc).__name__ != "PanicException":
            raise
        raise LakeError(f"{what}: {storage_message(exc)}{'; ' + fix if fix else ''}") from None


_LOG_FIX = (
    "the table's _delta_log is damaged: restore it from a backup, or move the lake away and "
    "run 'velocity extract --full' to rebuild it from the API"
)


class Lake:
    """Read and write the lake at ``location``. Writers hold a :class:`WriterLease`."""

    def __init__(self, location: LakeLocation) -> None:
        self.location = location
        self.options = location.storage_options

    def __repr__(self) -> str:
        return f"Lake({self.location.url!r})"

    def uri(self, dataset: str) -> str:
        return self.location.uri(dataset)

    # ---- reading ---------------------------------------------------------------------------
    def _table(self, dataset: str, version: int | None = None) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(self.uri(dataset), version=version, storage_options=self.options)

    def _is_table(self, dataset: str) -> bool:
        from deltalake import DeltaTable

        with storage_errors(f"cannot read the lake at {self.location}"):
            return DeltaTable.is_deltatable(self.uri(dataset), storage_options=self.options)

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, oldest first (empty for a lake that has none)."""
        if not self._is_table("runs"):
            return []
        columns = ["run_id", "committed_at", "lake_versions"]
        with storage_errors(f"cannot read the lake's runs table at {self.uri('runs')}"):
            table = self._table("runs")
            if self.location.is_local:  # its few small files, without pyarrow.dataset
                files = [pq.ParquetFile(_local_path(u)).read(columns) for u in table.file_uris()]
                runs = pa.concat_tables(files) if files else empty(SCHEMAS["runs"])
            else:
                fs = self.location.arrow_filesystem("runs")
                runs = table.to_pyarrow_dataset(filesystem=fs).to_table(columns)
        # through polars: Arrow's to_pylist imports pandas for zoned timestamps (0.2-0.3 s)
        snaps = [
            Snapshot(r["run_id"], r["committed_at"], dict(r["lake_versions"]))
            for r in frame(runs.select(columns)).iter_rows(named=True)
            if r["lake_versions"]
        ]
        return sorted(snaps, key=lambda s: s.versions.get("runs", -1))

    def head(self) -> Snapshot | None:
        """The newest snapshot: what readers see."""
        snaps = self.snapshots()
        return snaps[-1] if snaps else None

    def snapshot(self, ref: str | datetime | None = None) -> Snapshot:
        """The snapshot a run id names, the newest committed at or before a time, or the head."""
        snaps = self.snapshots()
        if not snaps:
            raise LakeError(f"no lake at {self.location}: run 'velocity extract' first")
        if ref is None:
            return snaps[-1]
        if isinstance(ref, str):
            for snap in snaps:
                if snap.run_id == ref:
                    return snap
            if not ref[:4].isdigit() or "-" not in ref[:5]:  # not a date: an unknown run id
                raise ConfigError(
                    f"the lake has no snapshot of run {ref!r}: see 'velocity lake history'"
                )
            ref = parse_instant(ref, "--snapshot")
        if isinstance(ref, datetime):
            earlier = [s for s in snaps if s.committed_at <= ref]
            if not earlier:
                raise ConfigError(
                    f"the lake has no snapshot committed at or before "
                    f"{ref.isoformat(timespec='seconds')} (its first: "
                    f"{snaps[0].committed_at.isoformat(timespec='seconds')})"
                )
            return earlier[-1]
        raise ConfigError(f"the lake has no snapshot {ref!r}")

    def dataset(self, dataset: str, snapshot: Snapshot) -> pads.Dataset:
        """A pyarrow dataset over ``dataset`` as of ``snapshot`` (through the Delta log)."""
        with storage_errors(f"cannot read {dataset} of snapshot {snapshot.run_id}"):
            table = self._table(dataset, snapshot.versions[dataset])
            return table.to_pyarrow_dataset(filesystem=self.location.arrow_filesystem(dataset))

    def file_urls(self, dataset: str, snapshot: Snapshot) -> list[str]:
        """The snapshot's data files of ``dataset`` as URLs a cluster reads (Hadoop's ``s3a://``
        for S3; local paths as they are): what Spark is given."""
        with storage_errors(f"cannot read {dataset} of snapshot {snapshot.run_id}"):
            uris = self._table(dataset, snapshot.versions[dataset]).file_uris()
        return [
            "s3a://" + u.removeprefix("s3://")
            if u.startswith("s3://")
            else u.removeprefix("file://")
            for u in uris
        ]

    def local_files(self, dataset: str, snapshot: Snapshot) -> list[str] | None:
        """The snapshot's data files of ``dataset`` (from the Delta log) when the lake is local,
        for engines that read Parquet natively; None on object storage (read :meth:`dataset`)."""
        if not self.location.is_local:
            return None
        with storage_errors(f"cannot read {dataset} of snapshot {snapshot.run_id}"):
            uris = self._table(dataset, snapshot.versions[dataset]).file_uris()
        return [_local_path(u) for u in uris]

    def scan(self, dataset: str, snapshot: Snapshot | None = None) -> pl.LazyFrame:
        snap = snapshot or self.snapshot()
        files = self.local_files(dataset, snap)
        if files is None:
            return pl.scan_pyarrow_dataset(self.dataset(dataset, snap))
        if not files:
            return frame(empty(SCHEMAS[dataset])).lazy()
        # A local lake's files read by polars itself (no pyarrow.dataset, which imports pandas),
        # typed as the dataset's schema (a file older than a column gets nulls; a column the
        # schema no longer has is left out). The partition column comes from each file's own
        # folder (<table>/workspace_id=<value>/), never from the folders above the lake, which
        # may hold "=" as well.
        schema = frame(empty(SCHEMAS[dataset])).schema
        by_folder: dict[str, list[str]] = {}
        for file in files:
            by_folder.setdefault(Path(file).parent.name, []).append(file)
        scans = []
        for folder, group in by_folder.items():
            scan = pl.scan_parquet(
                group,
                hive_partitioning=False,
                schema={k: v for k, v in schema.items() if k != "workspace_id"}
                if dataset in PARTITIONED
                else schema,
                missing_columns="insert",
                extra_columns="ignore",
            )
            if dataset in PARTITIONED:
                value = urllib.parse.unquote(folder.partition("=")[2])
                scan = scan.with_columns(workspace_id=pl.lit(value, pl.String))
            scans.append(scan.select(schema.names()))
        return pl.concat(scans)

    def read(self, dataset: str, snapshot: Snapshot | None = None) -> pl.DataFrame:
        snap = snapshot or self.snapshot()
        with storage_errors(f"cannot read {dataset} of snapshot {snap.run_id}"):
            return frame(self.dataset(dataset, snap).to_table())

    def load_state(self, snapshot: Snapshot | None) -> pl.DataFrame:
        """Ids and timestamps of every task: all an incremental run needs to hold."""
        cols = ["id", "workspace_id", "updated_at", "history_count", "history_digest"]
        if snapshot is None:
            return frame(empty(SCHEMAS["tasks"]).select(cols))
        with storage_errors(f"cannot read the tasks of snapshot {snapshot.run_id}"):
            table = self.dataset("tasks", snapshot).to_table(columns=cols)
        return frame(table)

    def history_of(self, task_id: str, snapshot: Snapshot | None) -> pl.DataFrame:
        if snapshot is None:
            return pl.DataFrame()
        ds = self.dataset("task_history", snapshot)
        with storage_errors(f"cannot read the history of snapshot {snapshot.run_id}"):
            table = ds.to_table(filter=_field("task_id") == task_id)
        return frame(table)

    def verify_history(self, snapshot: Snapshot, workspaces: list[str]) -> dict[str, int]:
        """Every task's history rows against the history count the API returned.

        ``history_mismatches``: tasks whose lake history differs in length from the API's;
        ``tasks_missing``: tasks marked missing; both for the given workspaces.
        """
        if not workspaces:
            return {"history_mismatches": 0, "tasks_missing": 0}
        tasks = self.scan("tasks", snapshot).filter(pl.col("workspace_id").is_in(workspaces))
        counts = self.scan("task_history", snapshot).group_by("task_id").len()
        joined = tasks.select("id", "history_count", "missing_since").join(
            counts, left_on="id", right_on="task_id", how="left"
        )
        with storage_errors(f"cannot verify snapshot {snapshot.run_id}"):
            out = joined.select(
                (pl.col("len").fill_null(0) != pl.col("history_count"))
                .sum()
                .alias("history_mismatches"),
                pl.col("missing_since").is_not_null().sum().alias("tasks_missing"),
            ).collect()
        return {k: int(v or 0) for k, v in out.row(0, named=True).items()}

    def damage(self, snapshot: Snapshot) -> list[Damage]:
        """Check every data file the snapshot needs against the Delta log's record of it.

        A file must exist, have the size the log recorded, and have a readable Parquet footer
        with the row count the log recorded. Costs a metadata request and a footer read per file.
        """
        import pyarrow.fs as pafs

        found: list[Damage] = []
        for dataset in DATASETS:
            with storage_errors(
                f"cannot read the log of {dataset} of snapshot {snapshot.run_id}", _LOG_FIX
            ):
                table = self._table(dataset, snapshot.versions[dataset])
                # from the stream: pa.table() would first import pandas to rule out a frame
                actions = pa.RecordBatchReader.from_stream(
                    table.get_add_actions(flatten=True)
                ).read_all()
            fs = self.location.arrow_filesystem(dataset)
            rows = actions.select(["path", "size_bytes", "num_records"]).to_pylist()
            if not rows:
                continue
            infos = fs.get_file_info([r["path"] for r in rows])
            for row, info in zip(rows, infos, strict=True):
                path, size, records = row["path"], row["size_bytes"], row["num_records"]
                if info.type == pafs.FileType.NotFound:
                    found.append(Damage(dataset, path, "is missing"))
                    continue
                if info.size != size:
                    found.append(
                        Damage(
                            dataset, path, f"is truncated or changed ({info.size} of {size} bytes)"
                        )
                    )
                    continue
                try:
                    with fs.open_input_file(path) as handle:
                        n = pq.read_metadata(handle).num_rows
                except (OSError, pa.ArrowException) as exc:
                    found.append(Damage(dataset, path, f"is unreadable ({storage_message(exc)})"))
                    continue
                if records is not None and n != records:
                    found.append(
                        Damage(dataset, path, f"holds {n} rows where the log records {records}")
                    )
        return found

    def verify(self, snapshot: Snapshot, fix: str) -> None:
        """Raise :class:`LakeDamaged` (one line, naming ``fix``) if the snapshot is damaged."""
        damage = self.damage(snapshot)
        if damage:
            raise LakeDamaged(snapshot, damage, fix)

    # ---- writing ---------------------------------------------------------------------------
    def quarantine(self, lease: WriterLease, damage: list[Damage], run_id: str) -> None:
        """Move damaged files aside (``_velocity/damaged/<run>/``) and drop them from the tables.

        Nothing is deleted: what is left of a damaged file stays for inspection. The tables'
        logs then no longer name the files (Delta FSCK), so the next commit builds on what is
        whole; the run that called this refetches the rest from the API.
        """
        import pyarrow.fs as pafs

        lease.check()
        root = self.location.arrow_filesystem()
        with storage_errors(f"cannot set aside the damaged files of the lake at {self.location}"):
            for item in damage:
                src = f"{item.dataset}/{item.path}"
                dest = f"_velocity/damaged/{run_id}/{src}"
                if root.get_file_info(src).type != pafs.FileType.NotFound:
                    root.create_dir(dest.rsplit("/", 1)[0], recursive=True)
                    root.move(src, dest)
            for dataset in sorted({d.dataset for d in damage}):
                removed = self._table(dataset).repair(dry_run=False)
                if lease.base is not None:
                    lease.base[dataset] = self._version(dataset)
                event(
                    "lake.quarantined",
                    dataset=dataset,
                    files=len(removed.get("files_removed", [])),
                    moved_to=f"_velocity/damaged/{run_id}/",
                )

    def lease(self, run_id: str) -> WriterLease:
        return WriterLease(self.location, run_id)

    def _version(self, dataset: str) -> int:
        return int(self._table(dataset).version())

    def _write(self, dataset: str, data: Any, **kwargs: Any) -> int:
        from deltalake import write_deltalake

        write_deltalake(
            self.uri(dataset),
            data,
            partition_by=["workspace_id"] if dataset in PARTITIONED else None,
            storage_options=self.options,
            **kwargs,
        )
        return self._version(dataset)

    def prepare(self, lease: WriterLease) -> Snapshot | None:
        """Under the lease: create missing tables and roll back what a killed run left.

        Returns the head snapshot the run builds on.
        """
        lease.check()
        with storage_errors(f"cannot prepare the lake at {self.location} for writing"):
            head = self.head()
            for dataset in DATASETS:
                if not self._is_table(dataset):
                    self._write(dataset, empty(SCHEMAS[dataset]), mode="error")
                    continue
                latest = self._version(dataset)
                if dataset == "runs":
                    continue  # its rows are the commit points: never orphaned
                target = head.versions.get(dataset) if head else None
                if target is None:
                    # written by a run that never committed a snapshot: empty it
                    if latest > 0 or self._table(dataset).count():
                        self._write(dataset, empty(SCHEMAS[dataset]), mode="overwrite")
                        event("lake.rolled_back", dataset=dataset, to="empty")
                elif latest > target:
                    self._table(dataset).restore(target)
                    event("lake.rolled_back", dataset=dataset, version_from=latest, to=target)
            lease.head = head
            lease.base = (
                {d: self._version(d) for d in DATASETS} if head is None else dict(head.versions)
            )
        return head

    def commit(
        self,
        lease: WriterLease,
        run_id: str,
        staging: Path | None,
        refreshes: list[Refresh],
        run_row: dict[str, Any],
        run_started: datetime,
        inspect: Callable[[Snapshot], dict[str, Any]] | None = None,
        tables: dict[str, Any] | None = None,
        rebuild: bool = False,
        resumed: bool = False,
    ) -> Snapshot:
        """Publish a new snapshot: this run's rows on top of the head, atomically for readers.

        ``staging`` holds the run's append-only rows and its new task rows; ``tables`` instead
        replaces whole datasets (synthetic lakes, migration). ``inspect(snapshot)`` runs on the
        would-be snapshot before it is published; what it returns joins the run's row.
        ``rebuild`` (a run that refetched everything over a damaged lake) replaces the history
        of every task it fetched instead of appending to it. ``resumed`` (a run that continued a
        killed one's checkpoints, and may have refetched some of their tasks) drops repeats.
        """
        if lease.base is None:
            self.prepare(lease)
        assert lease.base is not None
        head = lease.head
        # What this run builds on: the head's versions, or what quarantine left of them.
        base = Snapshot(head.run_id, head.committed_at, dict(lease.base)) if head else None
        versions = dict(lease.base)
        with storage_errors(f"cannot commit run {run_id} to the lake at {self.location}"):
            for dataset, whole in (tables or {}).items():
                versions[dataset] = self._write(dataset, whole, mode="overwrite")
            if staging is not None:
                for dataset in ("task_versions", "rejects"):
                    staged = _staged(staging, dataset)
                    if staged is None or not staged.count_rows():
                        continue
                    data: Any = staged.scanner().to_reader()
                    if resumed:
                        data = _unique(staged, dataset)
                    if rebuild and dataset == "task_versions" and base is not None:
                        # every task was refetched: add only the states the lake lacks
                        key = ["id", "updated_at"]
                        old = frame(self.dataset(dataset, base).to_table(columns=key))
                        data = (
                            frame(_unique(staged, dataset))
                            .join(old, on=key, how="anti")
                            .to_arrow()
                            .cast(SCHEMAS[dataset])
                        )
                    versions[dataset] = self._write(dataset, data, mode="append")
                versions["task_history"] = self._commit_history(
                    base, staging, versions["task_history"], rebuild, resumed
                )
                versions["tasks"] = self._merge_tasks(
                    base, staging, refreshes, run_started, versions["tasks"]
                )
            runs_version = self._version("runs")
            snapshot = Snapshot(run_id, datetime.now(UTC), {**versions, "runs": runs_version + 1})
            if inspect is not None:
                run_row = {**run_row, **inspect(snapshot)}
            lease.check()
            row = {**run_row, "committed_at": snapshot.committed_at}
            row["lake_versions"] = snapshot.versions
            self._write(
                "runs",
                pa.Table.from_pylist([row], schema=SCHEMAS["runs"]),
                mode="append",
                schema_mode="merge",  # runs tables from before a column was added
            )
            if self._version("runs") != snapshot.versions["runs"]:
                raise LakeError(
                    f"another writer committed to the lake at {self.location} during run {run_id}"
                )
        event("lake.committed", run_id=run_id, **{f"v_{k}": v for k, v in versions.items()})
        return snapshot

    def _commit_history(
        self, base: Snapshot | None, staging: Path, version: int, rebuild: bool, resumed: bool
    ) -> int:
        staged = _staged(staging, "task_history")
        if not rebuild:
            if staged is None or not staged.count_rows():
                return version
            data = _unique(staged, "task_history") if resumed else staged.scanner().to_reader()
            return self._write("task_history", data, mode="append")
        new = (
            frame(_unique(staged, "task_history"))
            if staged is not None
            else frame(empty(SCHEMAS["task_history"]))
        )
        fetched = _staged(staging, "tasks")
        ids = (
            frame(fetched.to_table(columns=["id"]))["id"]
            if fetched is not None
            else pl.Series("id", [], dtype=pl.String)
        )
        frames = [new]
        if base is not None:  # the history of tasks not fetched again (gone from the API)
            old = frame(self.dataset("task_history", base).to_table())
            frames.append(old.filter(~pl.col("task_id").is_in(ids.implode())))
        table = pl.concat(frames, how="vertical_relaxed").to_arrow().cast(SCHEMAS["task_history"])
        return self._write("task_history", table, mode="overwrite")

    def _merge_tasks(
        self,
        head: Snapshot | None,
        staging: Path,
        refreshes: list[Refresh],
        run_started: datetime,
        version: int,
    ) -> int:
        """Rewrite the partitions of refreshed workspaces: unchanged old rows + this run's."""
        staged = _staged(staging, "tasks")
        new_all = None
        if staged is not None:  # a task refetched after a resume: its latest row
            new_all = (
                frame(staged.to_table())
                .sort("extracted_at")
                .unique("id", keep="last", maintain_order=True)
            )
        for refresh in refreshes:
            ws = refresh.workspace_id
            frames: list[pl.DataFrame] = []
            new_ids = pl.Series("id", [], dtype=pl.String)
            if new_all is not None:
                new = new_all.filter(pl.col("workspace_id") == ws)
                new_ids = new["id"]
                frames.append(new)
            if head is not None:
                old = frame(
                    self.dataset("tasks", head).to_table(filter=_field("workspace_id") == ws)
                ).filter(~pl.col("id").is_in(new_ids.implode()))
                if refresh.complete:
                    seen = pl.Series("id", sorted(refresh.seen_ids), dtype=pl.String)
                    old = old.with_columns(
                        pl.when(pl.col("id").is_in(seen.implode()))
                        .then(pl.lit(None, dtype=pl.Datetime("us", "UTC")))
                        .otherwise(
                            pl.coalesce(
                                pl.col("missing_since"),
                                pl.lit(run_started).dt.cast_time_unit("us"),
                            )
                        )
                        .alias("missing_since")
                    )
                frames.append(old)
            merged = pl.concat(frames, how="vertical_relaxed") if frames else None
            if merged is None or merged.height == 0:
                continue
            table = merged.select(SCHEMAS["tasks"].names).to_arrow().cast(SCHEMAS["tasks"])
            version = self._write(
                "tasks", table, mode="overwrite", predicate=f"workspace_id = '{_quote(ws)}'"
            )
        return version

    def replace(self, run_id: str, tables: dict[str, pa.Table], command: str) -> Snapshot:
        """Commit ``tables`` as whole datasets (the others empty) in one snapshot.

        For synthetic lakes (``lake_export``, test fixtures): what the extractor would have
        written, without the requests.
        """
        now = datetime.now(UTC)
        full = {d: tables.get(d, empty(SCHEMAS[d])) for d in PARTITIONED}
        row = RunRecord(run_id, command, started_at=now, finished_at=now, mode="full").row()
        with self.lease(run_id) as lease:
            return self.commit(lease, run_id, None, [], row, now, tables=full)

    def vacuum(self, lease: WriterLease, retention: timedelta) -> dict[str, int]:
        """Delete files no snapshot younger than ``retention`` (nor the head) needs."""
        head = self.prepare(lease)
        lease.base = None  # vacuum commits too: a later commit under this lease prepares again
        if head is None:
            return {}
        cutoff = datetime.now(UTC) - retention
        keep = [s for s in self.snapshots() if s.committed_at >= cutoff] or [head]
        removed = {}
        with storage_errors(f"cannot vacuum the lake at {self.location}"):
            for dataset in DATASETS:
                versions = sorted({s.versions[dataset] for s in keep if dataset in s.versions})
                files = self._table(dataset).vacuum(
                    retention_hours=0,
                    enforce_retention_duration=False,
                    dry_run=False,
                    keep_versions=versions,
                )
                removed[dataset] = len(files)
        event("lake.vacuumed", retention_days=retention.days, **removed)
        return removed


def _field(name: str) -> Any:
    import pyarrow.dataset as pads

    return pads.field(name)


def _local_path(uri: str) -> str:
    """A local file's path from its (percent-encoded) ``file://`` URI: a data dir with a space or
    a non-ASCII letter in its path is ``%20``/``%C3%A9`` in the Delta log's URIs."""
    return urllib.parse.unquote(uri.removeprefix("file://"))


def _unique(staged: pads.Dataset, dataset: str) -> pa.Table:
    unique = frame(staged.to_table()).unique(_DEDUPE[dataset], keep="first", maintain_order=True)
    return unique.to_arrow().cast(SCHEMAS[dataset])


def _quote(value: str) -> str:
    return value.replace("'", "''")
