"""The DuckDB engine: the default, one process, in memory with spilling to a scratch folder.

The graph runs in an in-memory database, so views cost nothing until read and temporary tables
never reach a file. With ``store`` (the new warehouse file, attached as ``warehouse``), the
``table`` models are created in that file directly, compressed on disk, and the in-memory
catalog gets a view of the same name over each, so later models and the data tests read them by
name. Measured at 1M tasks: held in memory until the end and copied into the file, the
task-level marts pushed ~540 MB of the intermediates out to the scratch folder, and the copy
took 1.8-2.0 s; created in the file, ~280 MB spill and no copy (11.7-12.7 s against
12.6-15.5 s for models, tests and the file). The runner then adds the views and comments
(``runner.write_warehouse``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import duckdb
import polars as pl
import pyarrow as pa

from scrums_velocity.errors import BuildError, first_line
from scrums_velocity.lake import empty
from scrums_velocity.models.engine import LakeSource, Materialized, PartitionFunction

_TABLE = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _name(table: str) -> str:
    if not _TABLE.match(table):
        raise BuildError(f"not a plain table name: {table!r}")
    return table


T = TypeVar("T")


def stoppable(con: duckdb.DuckDBPyConnection, work: Callable[[], T], timeout_s: float | None) -> T:
    """``work`` (DuckDB calls on ``con``) in a thread, so that Ctrl-C and ``timeout_s`` stop it.

    DuckDB's own handling of Ctrl-C during a query is unreliable: it raises RuntimeError('Query
    interrupted') when it notices the signal, but under load it can miss it and run on (a test
    saw a query run 60 s past SIGINT). Here the main thread waits in Python, which always sees
    the signal, and ``con.interrupt()`` stops the query within a moment. The wait returns as soon
    as ``work`` does (an event, checked every 50 ms for the signal and the time limit); past
    ``timeout_s`` it raises TimeoutError."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    job = _Background(work, "velocity-query")
    try:
        while not job.done.wait(0.05):
            if deadline is not None and time.monotonic() > deadline:
                con.interrupt()
                job.done.wait()
                raise TimeoutError(f"stopped after {timeout_s:g} s")
    except KeyboardInterrupt:
        con.interrupt()
        job.done.wait()
        raise
    return job.result()


class _Background(Generic[T]):
    """``work`` running in a daemon thread; :meth:`result` gives its value, or raises its
    error, in the caller's thread. Callers wait on ``done`` in short steps, not Thread.join:
    a KeyboardInterrupt inside join can end it early, and a long wait must see Ctrl-C."""

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self.done = threading.Event()
        self._outcome: dict[str, Any] = {}
        threading.Thread(target=self._run, args=(work,), name=name, daemon=True).start()

    def _run(self, work: Callable[[], T]) -> None:
        try:
            self._outcome["value"] = work()
        except BaseException as exc:  # re-raised in the caller's thread
            self._outcome["error"] = exc
        finally:
            self.done.set()

    def result(self) -> T:
        """The value (or the error) of the work, once ``done`` is set."""
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["value"]


# How long closing the engine waits for background Python models to stop (see close)
STOP_WAIT_S = 2.0


class DuckDBEngine:
    name = "duckdb"

    def __init__(
        self,
        *,
        threads: int,
        memory_limit: str,
        scratch: Path,
        profile: Path | None = None,
        store: Path | None = None,
        storage_version: str | None = None,
    ) -> None:
        self.profile = profile  # a folder: each computed model's EXPLAIN ANALYZE, as JSON
        self.store = store  # the new warehouse file the table models are created in
        try:
            self.con = self._connect(threads, memory_limit, scratch)
        except duckdb.Error as exc:
            raise BuildError(f"cannot start DuckDB for the build: {first_line(exc)}") from None
        self.con.execute("SET enable_progress_bar = false")  # the build logs its own progress
        self._arrow: dict[str, object] = {}  # keeps registered Arrow objects alive
        # Python models running in the background; close() stops them between partitions
        self._jobs: list[_Background[pa.Table]] = []
        self._stop = threading.Event()
        for schema in ("staging", "intermediate", "marts"):
            self.con.execute(f"CREATE SCHEMA {schema}")
        if store is not None:
            options = f" (STORAGE_VERSION '{storage_version}')" if storage_version else ""
            try:
                self.con.execute(f"ATTACH {_quoted(str(store))} AS warehouse{options}")
                for schema in ("staging", "intermediate", "marts"):
                    self.con.execute(f"CREATE SCHEMA warehouse.{schema}")
            except duckdb.Error as exc:
                self.con.close()
                raise BuildError(
                    f"cannot write the warehouse {store.name}: {first_line(exc)}"
                ) from None

    @staticmethod
    def _connect(threads: int, memory_limit: str, scratch: Path) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(
            config={
                "threads": int(threads),
                "memory_limit": memory_limit,
                # spills of an in-memory database go here (the data dir's, removed after)
                "temp_directory": str(scratch),
                "preserve_insertion_order": False,
            }
        )

    def register_lake(self, source: LakeSource) -> None:
        view = _name(f"lake_{source.name}")
        if source.dataset is not None:
            self._register(view, source.dataset)
        elif source.files:
            try:
                self.con.execute(f"SET VARIABLE {view}_files = ?", [list(source.files)])
                self.con.execute(
                    f"CREATE VIEW {view} AS SELECT * FROM read_parquet("
                    f"getvariable('{view}_files'), "
                    f"hive_partitioning = {str(source.hive_partitioning).lower()})"
                )
            except duckdb.Error as exc:
                raise BuildError(
                    f"cannot read the lake's {source.name}: {first_line(exc)}"
                ) from None
        else:
            assert source.schema is not None, source.name
            self._register(view, empty(source.schema))

    def register_table(self, name: str, data: pa.Table) -> None:
        self._register(_name(name), data)

    def _register(self, name: str, data: object) -> None:
        self._arrow[name] = data
        self.con.register(name, data)

    def create(self, table: str, sql: str, materialized: Materialized) -> None:
        kind = "VIEW" if materialized == "view" else "TABLE"
        profiled = self.profile is not None and kind == "TABLE"
        if profiled:
            assert self.profile is not None
            self.profile.mkdir(parents=True, exist_ok=True)
            self.con.execute("SET enable_profiling = 'json'")
            self.con.execute("SET profiling_output = ?", [str(self.profile / f"{table}.json")])
        try:
            if kind == "TABLE" and materialized == "table":
                self._store(table, sql)
            else:
                self._run(table, f"CREATE {kind} {_name(table)} AS\n{sql}")
        finally:
            if profiled:
                self.con.execute("PRAGMA disable_profiling")

    def _store(self, table: str, sql: str) -> None:
        """A ``table`` model: in the warehouse file with a view of its name in memory, or, with
        no file attached, in memory."""
        if self.store is None:
            self._run(table, f"CREATE TABLE {_name(table)} AS\n{sql}")
            return
        self._run(table, f"CREATE TABLE warehouse.{_name(table)} AS\n{sql}")
        self._run(table, f"CREATE VIEW {table} AS SELECT * FROM warehouse.{table}")

    def start_python(
        self,
        table: str,
        inputs: Sequence[str],
        partition_by: str | None,
        function: PartitionFunction,
        schema: pa.Schema,
        materialized: Materialized,
    ) -> Callable[[], None]:
        """Read the inputs now and run ``function`` over them in a thread; the returned callable
        waits for it and stores the table. The function's numpy and polars work (the Monte Carlo
        models: 1.0 s on one core at 1M tasks) then overlaps the SQL models built meanwhile,
        whose DuckDB threads need no GIL."""
        frames = {name: self.to_arrow(name) for name in inputs}
        job = _Background(
            lambda: _python_rows(frames, partition_by, function, schema, self._stop),
            f"velocity-{table}",
        )
        self._jobs.append(job)

        def finish() -> None:
            while not job.done.wait(0.05):  # waiting in Python: Ctrl-C is seen at once
                pass
            name = f"__{table.replace('.', '__')}"
            self._register(name, job.result())
            if materialized == "table":
                self._store(table, f"SELECT * FROM {name}")
            else:
                self._run(table, f"CREATE TABLE {_name(table)} AS SELECT * FROM {name}")

        return finish

    def count(self, table: str) -> int:
        return int(self._fetch(table, f"SELECT count(*) FROM {_name(table)}")[0][0])

    def to_arrow(self, table: str) -> pa.Table:
        try:
            return self.con.sql(f"SELECT * FROM {_name(table)}").to_arrow_table()
        except duckdb.Error as exc:
            raise BuildError(f"cannot read {table}: {first_line(exc)}") from None

    def rows(self, sql: str, limit: int) -> tuple[list[str], list[tuple]]:
        def work() -> tuple[list[str], list[tuple]]:
            cursor = self.con.execute(f"SELECT * FROM ({sql}) LIMIT {int(limit)}")
            rows = cursor.fetchall()
            return [d[0] for d in cursor.description or ()], rows

        try:
            return stoppable(self.con, work, None)  # data tests: Ctrl-C stops them
        except duckdb.Error as exc:
            raise BuildError(first_line(exc)) from None

    def _run(self, table: str, statement: str) -> None:
        try:
            stoppable(self.con, lambda: self.con.execute(statement), None)  # Ctrl-C stops a model
        except duckdb.Error as exc:
            raise BuildError(f"model {table} failed: {first_line(exc)}") from None

    def _fetch(self, table: str, sql: str) -> list[tuple]:
        try:
            return self.con.execute(sql).fetchall()
        except duckdb.Error as exc:
            raise BuildError(f"model {table} failed: {first_line(exc)}") from None

    def release(self, table: str) -> None:
        self._run(table, f"DROP TABLE IF EXISTS {_name(table)}")

    def close(self) -> None:
        """Close the connection, after stopping the Python models still running: a build that
        failed meanwhile leaves no thread computing rows nobody will read. Each stops before
        its next partition; the wait is bounded (STOP_WAIT_S in all: a model without partitions
        cannot be stopped, and is left to finish in its daemon thread) and Ctrl-C ends it."""
        self._stop.set()
        deadline = time.monotonic() + STOP_WAIT_S
        try:
            for job in self._jobs:
                while not job.done.wait(0.05) and time.monotonic() < deadline:
                    pass
        finally:
            self._close_connection()

    def _close_connection(self) -> None:
        """Close the connection; a query still running on it (a Ctrl-C that came before
        ``stoppable`` began waiting for it) is interrupted first: DuckDB refuses to close a busy
        connection, and that refusal would replace the interrupt with a traceback."""
        for _ in range(100):
            try:
                self.con.close()
                break
            except duckdb.ResourceInUseException:
                self.con.interrupt()
                time.sleep(0.05)
        self._arrow.clear()


class _Stopped(Exception):
    """A background Python model stopped by DuckDBEngine.close (its build failed)."""


def _python_rows(
    frames: dict[str, pa.Table],
    partition_by: str | None,
    function: PartitionFunction,
    schema: pa.Schema,
    stop: threading.Event,
) -> pa.Table:
    """A Python model's rows: ``function`` once over whole ``frames``, or once per value of
    ``partition_by`` over each input's rows of that value; cast to ``schema``. Once ``stop`` is
    set, no further partition starts."""
    if partition_by is None:
        parts = [function(frames)]
    else:
        keys = sorted(
            {k for f in frames.values() for k in f.column(partition_by).to_pylist()},
            key=lambda k: (k is None, k),
        )
        split = {
            name: pl.DataFrame(frame).partition_by(partition_by, as_dict=True)
            for name, frame in frames.items()
        }
        parts = []
        for key in keys:
            if stop.is_set():
                raise _Stopped
            parts.append(
                function(
                    {
                        name: split[name][(key,)].to_arrow()
                        if (key,) in split[name]
                        else empty(frame.schema)
                        for name, frame in frames.items()
                    }
                )
            )
    if not parts:
        return empty(schema)
    return pa.concat_tables([p.select(schema.names).cast(schema) for p in parts])
