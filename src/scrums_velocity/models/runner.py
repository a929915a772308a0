"""Build the DuckDB warehouse from the lake: SQL models in dependency order, comments, data tests.

Models are the ``.sql`` files in ``staging/``, ``intermediate/`` and ``marts/``; each is one
``SELECT`` named after the table it builds (``schema.file_stem``). Dependencies are the
``schema.table`` names a model mentions. Each folder's ``_schema.toml`` documents its tables and
columns (written to DuckDB as comments) and declares data tests (unique, not_null,
accepted_values); ``tests/*.sql`` are singular tests, each a query that must return no rows,
named ``<model>__<what>.sql``.

The build writes a new database file and replaces the warehouse with it only when every model
and every test passed: an analyst holding the old file open read-only keeps reading it, and a
failed build leaves the previous warehouse in place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import graphlib
import os
import re
import secrets
import time
import tomllib
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from scrums_velocity.errors import BuildError, ConfigError
from scrums_velocity.lake import DATASETS, PARTITIONED, Lake, Snapshot, open_lake, storage_errors
from scrums_velocity.lock import data_dir_lock
from scrums_velocity.observe import event

MODELS_DIR = Path(__file__).parent
LAYERS = ("staging", "intermediate", "marts")
_REF = re.compile(r"\b(staging|intermediate|marts)\.([a-z_][a-z0-9_]*)\b")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
WAREHOUSE = "warehouse.duckdb"
# The oldest DuckDB storage format that keeps everything the marts use (table and column comments
# among them), so that analysts' 1.x clients (the DuckDB CLI, JDBC/DBeaver, R, Node) open the file.
# Measured: files written as v0.10.0 are read by DuckDB 0.10.3, 1.1.3 and the 1.5.6 CLI, comments
# included; v0.9.0 writes catalog entries that 0.9.2 cannot read. DuckDB 2.0's default (format 69)
# is readable by no 1.x client.
WAREHOUSE_STORAGE_VERSION = "v0.10.0"


@dataclass(frozen=True)
class BuildSettings:
    data_dir: Path
    timezone: str = "UTC"
    baseline_weeks: int = 12
    min_baseline_weeks: int = 4
    at_risk_ratio: float = 0.5
    at_risk_p_value: float = 0.05
    watch_ratio: float = 0.8
    as_of: datetime | None = None  # default: the lake's latest extracted_at
    lake: str | None = None  # a path or s3:// URL; default <data-dir>/lake
    snapshot: str | datetime | None = None  # a run id or a time; default: the newest
    memory_limit: str = "4GB"
    threads: int = 2
    forecast_seed: int = 7  # the Monte Carlo forecasts are deterministic for a given seed
    # (LIN id, name) pairs from the configuration's [[service_lines]]: staging.stg_service_lines
    service_lines: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"unknown time zone {self.timezone!r}: use an IANA name like Europe/London"
            ) from None
        if self.baseline_weeks < 1:
            raise ConfigError("--baseline-weeks must be at least 1")
        if not 0 < self.at_risk_ratio <= self.watch_ratio:
            raise ConfigError("thresholds must satisfy 0 < at_risk_ratio <= watch_ratio")
        if not 0 < self.at_risk_p_value < 1:
            raise ConfigError("at_risk_p_value must be between 0 and 1")
        if self.as_of is not None and self.as_of.tzinfo is None:
            raise ConfigError("as_of needs a time zone")


@dataclass(frozen=True)
class Model:
    schema: str
    name: str
    sql: str
    path: Path

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.name}"

    def refs(self) -> set[str]:
        return {f"{s}.{t}" for s, t in _REF.findall(self.sql)} - {self.table}


@dataclass
class BuildResult:
    warehouse: Path
    as_of: datetime
    models: int
    tests: int
    rows: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    def summary(self) -> str:
        marts = ", ".join(
            f"{k.split('.')[1]}={v}" for k, v in self.rows.items() if k.startswith("marts.")
        )
        return (
            f"built {self.models} models, {self.tests} data tests passed "
            f"in {self.duration_s:.1f} s "
            f"(as of {self.as_of.isoformat(timespec='seconds')}): {marts}"
        )


def discover(models_dir: Path = MODELS_DIR) -> list[Model]:
    """Every model, in an order where each comes after the models it reads."""
    models = {}
    for layer in LAYERS:
        for path in sorted((models_dir / layer).glob("*.sql")):
            model = Model(layer, path.stem, path.read_text(), path)
            models[model.table] = model
    graph = {}
    for table, model in models.items():
        unknown = model.refs() - set(models)
        if unknown:
            raise BuildError(f"model {table} reads {sorted(unknown)[0]}, which no model builds")
        graph[table] = model.refs()
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise BuildError(f"models depend on each other in a cycle: {exc.args[1]}") from None
    return [models[t] for t in order]


def load_schema_docs(models_dir: Path = MODELS_DIR) -> dict[str, dict[str, Any]]:
    """``schema.table`` -> its entry in the folder's ``_schema.toml``."""
    docs = {}
    for layer in LAYERS:
        path = models_dir / layer / "_schema.toml"
        if path.exists():
            for name, entry in tomllib.loads(path.read_text()).items():
                docs[f"{layer}.{name}"] = entry
    return docs


def _lake_span(lake: Lake, snapshot: Snapshot) -> tuple[datetime | None, datetime | None]:
    """The snapshot's first task creation and latest extraction (None, None when empty)."""
    with storage_errors(f"cannot read the tasks of snapshot {snapshot.run_id}"):
        row = (
            lake.scan("tasks", snapshot)
            .select(pl.col("created_at").min(), pl.col("extracted_at").max())
            .collect()
            .row(0)
        )
    return row[0], row[1]


def resolve_as_of(lake: Lake, snapshot: Snapshot, as_of: datetime | None) -> datetime:
    """The build's reference time: ``as_of`` if given, else the snapshot's latest extraction.

    A time after the latest extraction is refused: the lake cannot know what happened then.
    """
    first, latest = _lake_span(lake, snapshot)
    if as_of is None:
        return latest or datetime.now(UTC)
    if first is not None and as_of < first:
        raise ConfigError(
            f"--as-of {as_of.isoformat(timespec='seconds')} is before the lake's first task "
            f"({first.isoformat(timespec='seconds')}): there is nothing to count then"
        )
    if latest is not None and as_of > latest:
        raise ConfigError(
            f"--as-of {as_of.isoformat(timespec='seconds')} is after the lake's latest "
            f"extraction ({latest.isoformat(timespec='seconds')}): use an earlier time, or "
            "extract first"
        )
    return as_of


def service_lines_table(pairs: tuple[tuple[str, str], ...]) -> pa.Table:
    """The configuration's (id, name) pairs as the table staging.stg_service_lines reads."""
    return pa.table(
        {"id": [p[0] for p in pairs], "name": [p[1] for p in pairs]},
        schema=pa.schema([("id", pa.string()), ("name", pa.string())]),
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise BuildError(f"not a plain identifier in _schema.toml: {name!r}")
    return f'"{name}"'


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class DataTestFailure(BuildError):
    pass


def _data_tests(docs: dict[str, dict[str, Any]], models_dir: Path) -> list[tuple[str, str, str]]:
    """(model, test name, query returning offending rows) for every declared test."""
    tests = []
    for table, entry in docs.items():
        schema, name = table.split(".")
        target = f"{schema}.{_ident(name)}"
        for cols in entry.get("unique", []):
            keys = ", ".join(_ident(c) for c in cols)
            tests.append(
                (
                    table,
                    f"unique({', '.join(cols)})",
                    f"select {keys}, count(*) as n from {target} group by all having n > 1",
                )
            )
        for col in entry.get("not_null", []):
            tests.append(
                (table, f"not_null({col})", f"select * from {target} where {_ident(col)} is null")
            )
        for col, values in entry.get("accepted_values", {}).items():
            allowed = ", ".join(_literal(str(v)) for v in values)
            tests.append(
                (
                    table,
                    f"accepted_values({col})",
                    f"select {_ident(col)}, count(*) as n from {target} "
                    f"where {_ident(col)} not in ({allowed}) group by all",
                )
            )
        for rel in entry.get("relationships", []):
            # every key of this model exists in ``to`` (dbt's relationships test, on a tuple)
            cols = [_ident(c) for c in rel["columns"]]
            to_schema, _, to_name = str(rel["to"]).partition(".")
            if to_schema not in LAYERS:
                raise BuildError(f"relationships of {table}: {rel['to']!r} is not schema.table")
            target_cols = [_ident(c) for c in rel.get("to_columns", rel["columns"])]
            keys, target_keys = ", ".join(cols), ", ".join(target_cols)
            present = " and ".join(f"{c} is not null" for c in cols)
            tests.append(
                (
                    table,
                    f"relationships({', '.join(rel['columns'])} -> {rel['to']})",
                    f"select {keys} from {target} where {present} "
                    f"except select {target_keys} from {to_schema}.{_ident(to_name)}",
                )
            )
        for expression in entry.get("expressions", []):
            # a predicate every row satisfies (dbt_utils' expression_is_true); null counts as false
            tests.append(
                (
                    table,
                    f"expression({expression})",
                    f"select * from {target} where not coalesce(({expression}), false)",
                )
            )
    for path in sorted((models_dir / "tests").glob("*.sql")):
        model, _, what = path.stem.partition("__")
        table = next((t for t in docs if t.endswith("." + model)), model)
        tests.append((table, what or path.stem, path.read_text()))
    return tests


def build_into(
    path: Path,
    lake: Lake,
    snapshot: Snapshot,
    settings: BuildSettings,
    *,
    models_dir: Path = MODELS_DIR,
    after_models: Callable[[duckdb.DuckDBPyConnection, BuildSettings], None] | None = None,
) -> BuildResult:
    """Build every model into the (new) database file ``path``. Raises BuildError."""
    t0 = time.monotonic()
    models = discover(models_dir)
    docs = load_schema_docs(models_dir)
    as_of = resolve_as_of(lake, snapshot, settings.as_of)
    con = duckdb.connect(
        str(path), config={"storage_compatibility_version": WAREHOUSE_STORAGE_VERSION}
    )
    result = BuildResult(path, as_of, len(models), 0)
    try:
        con.execute(f"SET threads = {int(settings.threads)}")
        con.execute("SET memory_limit = ?", [settings.memory_limit])
        con.execute("SET preserve_insertion_order = false")
        # The snapshot's datasets, read through the Delta log: what staging models select from.
        # A local lake's files are read by DuckDB's own Parquet reader (the file list comes from
        # the log); an object-store lake through pyarrow (DuckDB here has no S3 access).
        # Measured at 1M tasks: 26.4 s through pyarrow, 24.6 s natively (README, Benchmarks).
        for dataset in DATASETS:
            files = lake.local_files(dataset, snapshot)
            if files:
                con.execute(f"SET VARIABLE lake_files_{dataset} = ?", [files])
                con.execute(
                    f"CREATE TEMP VIEW lake_{dataset} AS SELECT * FROM read_parquet("
                    f"getvariable('lake_files_{dataset}'), "
                    f"hive_partitioning = {str(dataset in PARTITIONED).lower()})"
                )
            else:
                con.register(f"lake_{dataset}", lake.dataset(dataset, snapshot))
        # The configured service-line names, as a table (values, never SQL text).
        con.register("config_service_lines", service_lines_table(settings.service_lines))
        variables = {
            "lake_url": lake.location.url,
            "lake_snapshot": snapshot.run_id,
            "tz": settings.timezone,
            "baseline_weeks": settings.baseline_weeks,
            "min_baseline_weeks": settings.min_baseline_weeks,
            "at_risk_ratio": settings.at_risk_ratio,
            "at_risk_p_value": settings.at_risk_p_value,
            "watch_ratio": settings.watch_ratio,
            "as_of": as_of.astimezone(UTC).isoformat(),
            "storage_version": WAREHOUSE_STORAGE_VERSION,
        }
        for name, value in variables.items():
            con.execute(f"SET VARIABLE {name} = ?", [value])
        for layer in LAYERS:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")
        for model in models:
            started = time.monotonic()
            try:
                con.execute(f"CREATE TABLE {model.schema}.{_ident(model.name)} AS\n{model.sql}")
                rows = con.execute(f"SELECT count(*) FROM {model.table}").fetchall()[0][0]
            except duckdb.Error as exc:
                raise BuildError(f"model {model.table} failed: {_first_line(exc)}") from None
            result.rows[model.table] = rows
            event(
                "build.model",
                model=model.table,
                rows=rows,
                seconds=round(time.monotonic() - started, 3),
            )
        if after_models is not None:
            started = time.monotonic()
            try:
                after_models(con, settings)
            except duckdb.Error as exc:
                raise BuildError(f"the forecast step failed: {_first_line(exc)}") from None
            event("build.forecasts", seconds=round(time.monotonic() - started, 3))
        _comment(con, docs)
        for table, name, query in _data_tests(docs, models_dir):
            try:
                bad = con.execute(f"SELECT * FROM ({query}) LIMIT 5").fetchall()
                cols = [d[0] for d in con.description]
            except duckdb.Error as exc:
                raise BuildError(
                    f"data test {name} on {table} could not run: {_first_line(exc)}"
                ) from None
            if bad:
                sample = "; ".join(
                    ", ".join(f"{c}={v}" for c, v in zip(cols, row, strict=True)) for row in bad[:3]
                )
                raise DataTestFailure(f"data test {name} failed on {table}: {sample}")
            result.tests += 1
        con.execute("CHECKPOINT")
    finally:
        con.close()
    result.duration_s = time.monotonic() - t0
    return result


def _comment(con: duckdb.DuckDBPyConnection, docs: dict[str, dict[str, Any]]) -> None:
    for table, entry in docs.items():
        schema, name = table.split(".")
        target = f"{schema}.{_ident(name)}"
        if "description" in entry:
            con.execute(f"COMMENT ON TABLE {target} IS {_literal(entry['description'])}")
        existing = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
                [schema, name],
            ).fetchall()
        }
        for col, text in entry.get("columns", {}).items():
            if col not in existing:
                raise BuildError(f"_schema.toml documents {table}.{col}, which the model lacks")
            con.execute(f"COMMENT ON COLUMN {target}.{_ident(col)} IS {_literal(text)}")


def remove_leftovers(data_dir: Path) -> list[Path]:
    """Delete what killed builds left (``.warehouse.duckdb.<pid>-<hex>.tmp`` and its ``.wal``).

    Called with the data dir locked, so no build that could still be writing them is running.
    """
    removed = []
    for path in data_dir.glob(f".{WAREHOUSE}.*.tmp*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    if removed:
        event("build.leftovers_removed", files=len(removed))
    return removed


def build(
    settings: BuildSettings,
    *,
    lock: bool = True,
    after_models: Callable[[duckdb.DuckDBPyConnection, BuildSettings], None] | None = None,
) -> BuildResult:
    """``velocity build``: build a new warehouse from the current lake and swap it in."""
    data_dir = settings.data_dir
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"--data-dir {data_dir} is a file, not a directory")
    if not data_dir.is_dir() and settings.lake is None:
        raise BuildError(f"no lake in {data_dir}: run 'velocity extract' first")
    if after_models is None:
        from scrums_velocity.models.forecast import build_forecasts

        after_models = build_forecasts
    ctx = data_dir_lock(data_dir, "velocity build") if lock else contextlib.nullcontext()
    with ctx:
        remove_leftovers(data_dir)
        lake = open_lake(data_dir, settings.lake)
        if lake.head() is None:
            raise BuildError(f"no lake at {lake.location}: run 'velocity extract' first")
        # One snapshot for the whole build, whatever commits meanwhile.
        snapshot = lake.snapshot(settings.snapshot)
        lake.verify(
            snapshot,
            "the next 'velocity extract' sets the damage aside and refetches it from the API"
            if snapshot == lake.head()
            else "it was vacuumed or damaged: build from a newer snapshot",
        )
        # Resolved once, before any work: a refused --as-of costs one column read of the lake.
        settings = dataclasses.replace(
            settings, as_of=resolve_as_of(lake, snapshot, settings.as_of)
        )
        target = data_dir / WAREHOUSE
        tmp = data_dir / f".{WAREHOUSE}.{os.getpid()}-{secrets.token_hex(3)}.tmp"
        event(
            "build.start",
            lake=str(lake.location),
            snapshot=snapshot.run_id,
            timezone=settings.timezone,
            baseline_weeks=settings.baseline_weeks,
        )
        try:
            result = build_into(tmp, lake, snapshot, settings, after_models=after_models)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        result.warehouse = target
        event(
            "build.done",
            models=result.models,
            tests=result.tests,
            seconds=round(result.duration_s, 2),
        )
        return result
