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
import functools
import graphlib
import importlib
import importlib.util
import os
import re
import secrets
import shutil
import time
import tomllib
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from scrums_velocity.config import Config, HealthConfig, ModelConfig
from scrums_velocity.errors import BuildError, ConfigError, first_line
from scrums_velocity.lake import (
    DATASETS,
    PARTITIONED,
    SCHEMAS,
    Lake,
    Snapshot,
    open_lake,
    storage_errors,
)
from scrums_velocity.lock import data_dir_lock
from scrums_velocity.models.duckdb_engine import DuckDBEngine
from scrums_velocity.models.engine import (
    MATERIALIZATIONS,
    Engine,
    LakeSource,
    Materialized,
    bind,
)
from scrums_velocity.observe import Reporter, event

MODELS_DIR = Path(__file__).parent
LAYERS = ("staging", "intermediate", "marts")
_REF = re.compile(r"\b(staging|intermediate|marts)\.([a-z_][a-z0-9_]*)\b")
# A table however written (quoted, in capitals: MARTS."PER_LINE"): a model's graph edge, a data
# test's table kept until the tests ran.
_NAMED = re.compile(
    r'\b(staging|intermediate|marts)"?\.(?:"([a-z_][a-z0-9_]*)"|([a-z_][a-z0-9_]*)\b)', re.I
)
# What references are looked for in: the SQL without its comments and string literals.
_NOT_CODE = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'", re.S)
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
WAREHOUSE = "warehouse.duckdb"
# A storage format analysts' 1.x clients (the DuckDB CLI, JDBC/DBeaver, R, Node) open: DuckDB
# 2.0's default (format 69) is readable by no 1.x client. v1.3.0 rather than the oldest format that
# keeps comments (v0.10.0): measured at 1M tasks, its compression writes the task-level marts in
# 1.45 s instead of 2.08 s (96 MB against 93). Measured: DuckDB 1.3.2 and the 1.5.6 CLI read a
# v1.3.0 file, comments included; 1.2.2 refuses it.
WAREHOUSE_STORAGE_VERSION = "v1.3.0"


@dataclass(frozen=True)
class BuildSettings:
    """Everything a build depends on. The model and health settings are the configuration's own
    ``[model]`` and ``[health]`` sections (their defaults are written there, once); the rest
    says which lake snapshot to read and where the warehouse goes."""

    data_dir: Path
    model: ModelConfig = field(default_factory=ModelConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    as_of: datetime | None = None  # default: the lake's latest extracted_at
    lake: str | None = None  # a path or s3:// URL; default <data-dir>/lake
    snapshot: str | datetime | None = None  # a run id or a time; default: the newest
    # (LIN id, name) pairs from the configuration's [[service_lines]]: staging.stg_service_lines
    service_lines: tuple[tuple[str, str], ...] = ()
    profile: Path | None = None  # a folder for each model's query profile (EXPLAIN ANALYZE)

    def __post_init__(self) -> None:
        if self.as_of is not None and self.as_of.tzinfo is None:
            raise ConfigError("as_of needs a time zone")

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        as_of: datetime | None = None,
        snapshot: str | datetime | None = None,
        profile: Path | None = None,
    ) -> BuildSettings:
        """The one mapping from velocity.toml (CLI flags already laid over it) to a build."""
        return cls(
            data_dir=config.data_dir,
            model=config.model,
            health=config.health,
            as_of=as_of,
            lake=config.lake,
            snapshot=snapshot,
            service_lines=tuple((line.id, line.name) for line in config.service_lines),
            profile=profile,
        )


@dataclass(frozen=True)
class ModelContext:
    """What a Python model may know of the build besides its inputs."""

    as_of: datetime
    model: ModelConfig
    health: HealthConfig

    @property
    def today(self) -> date:
        """The local day of as_of (in the configured time zone)."""
        return self.as_of.astimezone(zoneinfo.ZoneInfo(self.model.timezone)).date()


@dataclass(frozen=True)
class Model:
    schema: str
    name: str
    path: Path
    materialized: Materialized
    sql: str = ""  # a SQL model's SELECT
    inputs: tuple[str, ...] = ()  # a Python model's declared inputs
    partition_by: str | None = None
    output: pa.Schema | None = None
    function: Callable[[dict[str, pa.Table], ModelContext], Any] | None = None
    # other models a SQL model names other than as plain lower-case schema.table (quoted, in
    # capitals): found by discover, read like the rest
    named: frozenset[str] = frozenset()

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def is_python(self) -> bool:
        return self.path.suffix == ".py"

    def refs(self) -> set[str]:
        """The models this one reads: a Python model's inputs; a SQL model's references."""
        if self.is_python:
            return set(self.inputs)
        code = _NOT_CODE.sub(" ", self.sql)
        return ({f"{s}.{t}" for s, t in _REF.findall(code)} | self.named) - {self.table}

    def names(self) -> set[str]:
        """Every model a SQL model names, however written (quoted, in capitals)."""
        return set(_reads(self.sql)) - {self.table}


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
    docs = load_schema_docs(models_dir)
    models = {}
    for layer in LAYERS:
        for path in sorted((models_dir / layer).glob("*.sql")) + sorted(
            p for p in (models_dir / layer).glob("*.py") if not p.name.startswith("_")
        ):
            table = f"{layer}.{path.stem}"
            if table in models:
                raise BuildError(f"model {table} is defined twice ({path.name} and another file)")
            materialized = docs.get(table, {}).get("materialized")
            if materialized not in MATERIALIZATIONS:
                raise BuildError(
                    f"model {table}: declare materialized = "
                    f"{' | '.join(repr(m) for m in MATERIALIZATIONS)} in {layer}/_schema.toml"
                )
            if path.suffix == ".sql":
                models[table] = Model(layer, path.stem, path, materialized, sql=path.read_text())
            else:
                models[table] = _python_model(layer, path, materialized)
    graph = {}
    for table, model in models.items():
        unknown = model.refs() - set(models)
        if unknown:
            raise BuildError(f"model {table} reads {sorted(unknown)[0]}, which no model builds")
        if not model.is_python:  # also the models it names quoted or in capitals
            model = models[table] = dataclasses.replace(
                model, named=frozenset(model.names() & set(models))
            )
        graph[table] = model.refs()
    try:
        return [models[t] for t in _readers_first(graph, models)]
    except graphlib.CycleError as exc:
        raise BuildError(f"models depend on each other in a cycle: {exc.args[1]}") from None


def _through_views(refs: set[str], models: dict[str, Model]) -> set[str]:
    """``refs`` and, for each view among them, the tables it reads, recursively: what reading
    ``refs`` reads."""
    seen: set[str] = set()
    pending = list(refs)
    while pending:
        table = pending.pop()
        if table not in seen:
            seen.add(table)
            model = models.get(table)
            if model is not None and model.materialized == "view":
                pending.extend(model.refs())
    return seen


def _readers_first(graph: dict[str, set[str]], models: dict[str, Model]) -> list[str]:
    """A dependency order in which the readers of a ``temp`` model come as early as they can:
    of the models ready to build, first those that read (directly, through views, or through
    the models built on them) the earliest temp model built, so that it is released early (see
    run_models). Python models go first of all: they run in the background (Engine.start_python).
    Next come the models that hold nothing: neither temp themselves nor reading one (directly
    or through views). Built before any temp model exists, they have the memory to themselves;
    built later, they spill what the temps hold (at 1M tasks the probable duplicates, built
    while the status changes were held, wrote 440 MB to the scratch folder). Ties go by name."""
    sorter = graphlib.TopologicalSorter(graph)
    sorter.prepare()
    order: list[str] = []
    position: dict[str, int] = {}  # temp model -> when it was built

    readers: dict[str, set[str]] = {t: set() for t in graph}
    for table in graph:
        for ref in graph[table]:
            readers[ref].add(table)

    def downstream(table: str) -> set[str]:
        seen = {table}
        pending = [table]
        while pending:
            for reader in readers[pending.pop()]:
                if reader not in seen:
                    seen.add(reader)
                    pending.append(reader)
        return seen

    def holds(table: str) -> bool:
        return models[table].materialized == "temp" or any(
            models[t].materialized == "temp"
            for t in _through_views(graph[table], models)
            if t in models
        )

    def key(table: str) -> tuple[bool, bool, int, str]:
        read = set().union(*(_through_views(graph[t], models) for t in downstream(table)))
        held = [position[t] for t in read if t in position]
        return (not models[table].is_python, holds(table), min(held, default=len(models)), table)

    ready = set(sorter.get_ready())
    while ready:
        table = min(ready, key=key)
        ready.remove(table)
        order.append(table)
        if models[table].materialized == "temp":
            position[table] = len(order)
        sorter.done(table)
        ready.update(sorter.get_ready())
    return order


def _python_model(layer: str, path: Path, materialized: Materialized) -> Model:
    """A ``.py`` model: a module declaring ``INPUTS`` (tables it reads), ``SCHEMA`` (a pyarrow
    schema of what it returns), optionally ``PARTITION_BY`` (a column: the model then runs once
    per value, on each input's rows of that value), and ``model(inputs, context)`` returning a
    polars or Arrow frame."""
    table = f"{layer}.{path.stem}"
    name = f"scrums_velocity.models.{layer}.{path.stem}"
    try:
        if path.parent == MODELS_DIR / layer:
            module = importlib.import_module(name)
        else:  # a model folder of one's own (tests)
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None
            assert spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    except Exception as exc:  # a model that cannot even be imported
        raise BuildError(
            f"model {table} cannot be loaded: {type(exc).__name__}: {first_line(exc)}"
        ) from None
    inputs = getattr(module, "INPUTS", None)
    output = getattr(module, "SCHEMA", None)
    function = getattr(module, "model", None)
    partition_by = getattr(module, "PARTITION_BY", None)
    if not (isinstance(inputs, tuple) and inputs and all(isinstance(i, str) for i in inputs)):
        raise BuildError(f"model {table}: INPUTS must be a tuple of schema.table names")
    if not isinstance(output, pa.Schema) or not callable(function):
        raise BuildError(f"model {table}: needs SCHEMA (a pyarrow schema) and model(inputs, ctx)")
    if materialized != "table":
        raise BuildError(f"model {table}: a Python model is materialized as a table")
    return Model(
        layer,
        path.stem,
        path,
        materialized,
        inputs=inputs,
        partition_by=partition_by,
        output=output,
        function=function,
    )


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
    frame = pl.DataFrame(
        {"id": [p[0] for p in pairs], "name": [p[1] for p in pairs]},
        schema={"id": pl.String, "name": pl.String},
    )  # through polars: pa.table from lists imports pandas (0.25 s)
    return frame.to_arrow().cast(pa.schema([("id", pa.string()), ("name", pa.string())]))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise BuildError(f"not a plain identifier in _schema.toml: {name!r}")
    return f'"{name}"'


def _reads(sql: str) -> tuple[str, ...]:
    """The tables ``sql`` names, however written, outside comments and string literals."""
    code = _NOT_CODE.sub(" ", sql)
    return tuple(sorted({f"{s}.{q or t}".lower() for s, q, t in _NAMED.findall(code)}))


class DataTestFailure(BuildError):
    pass


class DataTest(NamedTuple):
    table: str
    name: str
    query: str  # returns the offending rows
    predicate: str | None = None  # a row test: true for an offending row of ``table``
    reads: tuple[str, ...] = ()  # the models it reads besides ``table``


def _data_tests(docs: dict[str, dict[str, Any]], models_dir: Path) -> list[DataTest]:
    """Every declared test: a query returning the rows that break it."""
    tests = []
    for table, entry in docs.items():
        schema, name = table.split(".")
        target = f"{schema}.{_ident(name)}"
        for cols in entry.get("unique", []):
            keys = ", ".join(_ident(c) for c in cols)
            tests.append(
                DataTest(
                    table,
                    f"unique({', '.join(cols)})",
                    f"select {keys}, count(*) as n from {target} group by all having n > 1",
                )
            )
        for col in entry.get("not_null", []):
            bad = f"{_ident(col)} is null"
            tests.append(
                DataTest(table, f"not_null({col})", f"select * from {target} where {bad}", bad)
            )
        for col, values in entry.get("accepted_values", {}).items():
            allowed = ", ".join(_literal(str(v)) for v in values)
            tests.append(
                DataTest(
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
                DataTest(
                    table,
                    f"relationships({', '.join(rel['columns'])} -> {rel['to']})",
                    f"select {keys} from {target} where {present} "
                    f"except select {target_keys} from {to_schema}.{_ident(to_name)}",
                    reads=(f"{to_schema}.{to_name}",),
                )
            )
        for expression in entry.get("expressions", []):
            # a predicate every row satisfies (dbt_utils' expression_is_true); null counts as false
            bad = f"not coalesce(({expression}), false)"
            tests.append(
                DataTest(
                    table,
                    f"expression({expression})",
                    f"select * from {target} where {bad}",
                    bad,
                    reads=_reads(expression),
                )
            )
    for path in sorted((models_dir / "tests").glob("*.sql")):
        model, _, what = path.stem.partition("__")
        table = next((t for t in docs if t.endswith("." + model)), model)
        sql = path.read_text()
        tests.append(DataTest(table, what or path.stem, sql, reads=_reads(sql)))
    return tests


def _run_data_tests(engine: Engine, tests: list[DataTest]) -> int:
    """Run ``tests``; raise DataTestFailure naming the first that fails.

    All of them run as one query (one job on Spark, where each query costs a job): a table's
    row tests (not_null, expressions) as one scan, every other test on its own, each reduced to
    "has it any offending row". Only a group that finds some (or a batch that cannot run) is
    run again test by test, to name the test and show its rows."""
    groups: list[tuple[list[int], str]] = []  # (test indices, query of offending rows)
    by_table: dict[str, list[int]] = {}
    for i, test in enumerate(tests):
        if test.predicate is not None:
            by_table.setdefault(test.table, []).append(i)
        else:
            groups.append(([i], test.query))
    for table, indices in by_table.items():
        anyone = " or ".join(f"({tests[i].predicate})" for i in indices)
        groups.append((indices, f"select 1 as offending from {table} where {anyone}"))
    batch = "\nunion all\n".join(
        f"select {g} as test_group, count(*) as offending from (\n"
        f"select 1 as one from (\n{query.strip().rstrip(';')}\n) as q{g} limit 1\n) as c{g}"
        for g, (_, query) in enumerate(groups)
    )
    try:
        _, found = engine.rows(batch, len(groups))
        suspects = sorted(int(g) for g, offending in found if offending)
    except BuildError:  # some test cannot run: find which, one by one
        suspects = list(range(len(groups)))
    for g in suspects:
        for i in groups[g][0]:
            test = tests[i]
            cols, bad = _offending(engine, test, test.query)
            if bad:
                sample = "; ".join(
                    ", ".join(f"{c}={v}" for c, v in zip(cols, row, strict=True)) for row in bad[:3]
                )
                raise DataTestFailure(f"data test {test.name} failed on {test.table}: {sample}")
    return len(tests)


def _offending(engine: Engine, test: DataTest, query: str) -> tuple[list[str], list[tuple]]:
    try:
        return engine.rows(query, 5)
    except BuildError as exc:
        raise BuildError(f"data test {test.name} on {test.table} could not run: {exc}") from None


_SETTING = re.compile(r"\$\{(model|health)\.([a-z_]+)\}")


def document(text: str, model: ModelConfig, health: HealthConfig) -> str:
    """Documentation text with ``${model.baseline_weeks}``-style references filled in from the
    settings: the docs state the thresholds the build used, never a copy of the defaults."""

    def value(match: re.Match[str]) -> str:
        section = model if match.group(1) == "model" else health
        if match.group(2) not in type(section).model_fields:
            raise BuildError(f"_schema.toml refers to unknown setting {match.group(0)}")
        return str(getattr(section, match.group(2)))

    return _SETTING.sub(value, text)


def _variables(
    lake: Lake, snapshot: Snapshot, settings: BuildSettings, as_of: datetime, engine: str
) -> dict[str, object]:
    return {
        "lake_url": lake.location.url,
        "lake_snapshot": snapshot.run_id,
        "tz": settings.model.timezone,
        "baseline_weeks": settings.model.baseline_weeks,
        "min_baseline_weeks": settings.model.min_baseline_weeks,
        "at_risk_ratio": float(settings.health.at_risk_ratio),
        "at_risk_p_value": float(settings.health.at_risk_p_value),
        "watch_ratio": float(settings.health.watch_ratio),
        "as_of": as_of.astimezone(UTC).isoformat(),
        "built_at": datetime.now(UTC).isoformat(),
        "storage_version": WAREHOUSE_STORAGE_VERSION,
        "engine": engine,
    }


def lake_sources(lake: Lake, snapshot: Snapshot) -> list[LakeSource]:
    """The snapshot's datasets as engines read them: a local lake's Parquet files (listed by the
    Delta log), else a pyarrow dataset (DuckDB here has no S3 access; Arrow has)."""
    sources = []
    for dataset in DATASETS:
        files = lake.local_files(dataset, snapshot)
        if files is None:
            sources.append(LakeSource(dataset, dataset=lake.dataset(dataset, snapshot)))
        else:
            sources.append(
                LakeSource(dataset, files, dataset in PARTITIONED, schema=SCHEMAS[dataset])
            )
    return sources


def _call_python(
    function: Callable[[dict[str, pa.Table], ModelContext], Any],
    context: ModelContext,
    inputs: dict[str, pa.Table],
) -> pa.Table:
    """A Python model's body as engines call it: Arrow in, Arrow out (a polars frame is
    converted). Module-level so that Spark can ship it to its workers."""
    out = function(inputs, context)
    return out.to_arrow() if isinstance(out, pl.DataFrame) else out


def _check_documented(engine: Engine, table: str, entry: dict[str, Any]) -> None:
    columns, _ = engine.rows(f"select * from {table}", 0)
    for col in entry.get("columns", {}):
        if col not in columns:
            raise BuildError(f"_schema.toml documents {table}.{col}, which the model lacks")


def _last_uses(models: list[Model], tests: list[DataTest]) -> dict[str, int]:
    """For each table, the index of the last model that reads it, directly or through views
    (``len(models)`` when a data test reads it: the tests run after every model). A temp model
    no one reads is released once built."""
    by_table = {m.table: m for m in models}
    last = {m.table: i for i, m in enumerate(models)}
    for i, model in enumerate(models):
        for table in _through_views(model.refs(), by_table):
            last[table] = i
    for test in tests:
        for table in _through_views({test.table, *test.reads}, by_table):
            last[table] = len(models)
    return last


T = TypeVar("T")


def _python_failure(model: Model, step: Callable[[], T]) -> T:
    """``step`` of a Python model, its own code's failure turned into a BuildError naming it."""
    try:
        return step()
    except BuildError:
        raise
    except Exception as exc:  # the model's own code failed
        raise BuildError(
            f"model {model.table} failed: {type(exc).__name__}: {first_line(exc)}"
        ) from None


def _built(
    engine: Engine,
    model: Model,
    docs: dict[str, dict[str, Any]],
    result: BuildResult,
    started: float,
) -> None:
    """Count a built model's rows, check its documented columns and log it."""
    rows = None if model.materialized == "view" else engine.count(model.table)
    if rows is not None:
        result.rows[model.table] = rows
    if model.table in docs:
        _check_documented(engine, model.table, docs[model.table])
    event(
        "build.model",
        model=model.table,
        materialized=model.materialized,
        rows=rows,
        seconds=round(time.monotonic() - started, 3),
    )


def run_models(
    engine: Engine,
    models: list[Model],
    docs: dict[str, dict[str, Any]],
    variables: dict[str, object],
    context: ModelContext,
    result: BuildResult,
    models_dir: Path = MODELS_DIR,
) -> None:
    """Build every model on ``engine`` in order, check the documented columns, run the data
    tests. Raises BuildError naming the model or test.

    A ``temp`` model is released as soon as no later model or data test reads it (directly or
    through views): at 1M tasks the status changes alone hold 0.6 GB, and the marts built after
    their last reader then run without spilling."""
    tests = _data_tests(docs, models_dir)
    last_use = _last_uses(models, tests)
    release_after: dict[int, list[str]] = {}
    for model in models:
        if model.materialized == "temp":
            release_after.setdefault(last_use[model.table], []).append(model.table)
    # a bar on a TTY (the model being built as its note); the build.model lines otherwise
    with Reporter("build", rate=False) as progress:
        _build_each(engine, models, variables, context, result, docs, release_after, progress)
        built = {m.table for m in models}
        for table, entry in docs.items():
            if table not in built:
                _check_documented(engine, table, entry)
        progress.bar("models", "Building models", len(models), len(models), "data tests")
        started = time.monotonic()
        result.tests = _run_data_tests(engine, tests)
        event("build.tests", tests=result.tests, seconds=round(time.monotonic() - started, 3))


def _build_each(
    engine: Engine,
    models: list[Model],
    variables: dict[str, object],
    context: ModelContext,
    result: BuildResult,
    docs: dict[str, dict[str, Any]],
    release_after: dict[int, list[str]],
    progress: Reporter,
) -> None:
    by_table = {m.table: m for m in models}
    # Python models started and not yet finished: their function runs while the models that
    # do not read them are built (see Engine.start_python)
    pending: dict[str, tuple[Model, Callable[[], None], float]] = {}
    finished: list[str] = []  # the models built so far, for the progress bar

    def show(note: str) -> None:  # the models built, of all; the one being built
        progress.bar("models", "Building models", len(finished), len(models), note)

    def finish(table: str) -> None:
        model, done, started = pending.pop(table)
        show(table)
        _python_failure(model, done)
        _built(engine, model, docs, result, started)
        finished.append(table)

    for index, model in enumerate(models):
        for table in _through_views(model.refs(), by_table) & pending.keys():
            finish(table)
        show(model.table)
        started = time.monotonic()
        if model.is_python:
            assert model.output is not None
            assert model.function is not None
            call = functools.partial(_call_python, model.function, context)
            start = functools.partial(
                engine.start_python,
                model.table,
                model.inputs,
                model.partition_by,
                call,
                model.output,
                model.materialized,
            )
            done = _python_failure(model, start)
            pending[model.table] = (model, done, started)
        else:
            engine.create(model.table, bind(model.sql, variables, model.table), model.materialized)
            _built(engine, model, docs, result, started)
            finished.append(model.table)
        for table in release_after.get(index, []):  # temp models: never a Python one
            engine.release(table)
    for table in list(pending):
        finish(table)
    result.rows = {m.table: result.rows[m.table] for m in models if m.table in result.rows}


def build_into(
    path: Path,
    lake: Lake,
    snapshot: Snapshot,
    settings: BuildSettings,
    *,
    models_dir: Path = MODELS_DIR,
) -> BuildResult:
    """Build every model and write the warehouse to the (new) file ``path``. Raises BuildError."""
    t0 = time.monotonic()
    models = discover(models_dir)
    docs = load_schema_docs(models_dir)
    as_of = resolve_as_of(lake, snapshot, settings.as_of)
    result = BuildResult(path, as_of, len(models), 0)
    context = ModelContext(as_of, settings.model, settings.health)
    sources = lake_sources(lake, snapshot)
    scratch = path.with_name(path.name + ".spill")
    engine = _engine(settings, scratch, path)
    variables = _variables(lake, snapshot, settings, as_of, engine.name)
    if engine.name != "duckdb":
        # the cluster reads the lake's files itself: their URLs, listed by the Delta log
        sources = [
            dataclasses.replace(s, files=lake.file_urls(s.name, snapshot), dataset=None)
            if s.dataset is not None
            else s
            for s in sources
        ]
    try:
        for source in sources:
            engine.register_lake(source)
        # The configured service-line names, as a table (values, never SQL text).
        engine.register_table("config_service_lines", service_lines_table(settings.service_lines))
        run_models(engine, models, docs, variables, context, result, models_dir)
        for model in models:  # the intermediates' memory back before the warehouse is written
            if model.materialized == "temp":
                engine.release(model.table)
        started = time.monotonic()
        write_warehouse(path, engine, models, docs, sources, variables, settings)
        event("build.warehouse", seconds=round(time.monotonic() - started, 3))
    finally:
        engine.close()
        shutil.rmtree(scratch, ignore_errors=True)
    result.duration_s = time.monotonic() - t0
    return result


def _engine(settings: BuildSettings, scratch: Path, path: Path) -> Engine:
    """The configured engine: DuckDB in this process (creating the ``table`` models in the new
    warehouse file ``path`` directly), or a Spark session (local or a cluster)."""
    if settings.model.engine == "spark":
        from scrums_velocity.models.spark import SparkEngine, spark_session

        return SparkEngine(spark_session(settings.model.spark_master, settings.model.spark_conf))
    return DuckDBEngine(
        threads=settings.model.threads,
        memory_limit=settings.model.memory_limit,
        scratch=scratch,
        profile=settings.profile,
        store=path,
        storage_version=WAREHOUSE_STORAGE_VERSION,
    )


def write_warehouse(
    path: Path,
    engine: Engine,
    models: list[Model],
    docs: dict[str, dict[str, Any]],
    sources: list[LakeSource],
    variables: dict[str, object],
    settings: BuildSettings,
) -> None:
    """The warehouse file: every ``table`` model's rows; for a local lake, the other models as
    views over the snapshot's files (``lake_<dataset>`` views in ``main``), so that what is
    not stored stays queryable; table, view and column comments from ``_schema.toml``.

    A DuckDB engine has the file attached and its tables in it already (see duckdb_engine);
    another engine's tables arrive as Arrow, in a connection of our own."""
    attach = (
        f"ATTACH {_literal(str(path))} AS warehouse "
        f"(STORAGE_VERSION {_literal(WAREHOUSE_STORAGE_VERSION)})"
    )
    own = not isinstance(engine, DuckDBEngine)
    if isinstance(engine, DuckDBEngine):
        if engine.store != path:
            raise BuildError(f"the DuckDB engine writes {engine.store}, not {path}")
        con = engine.con
    else:
        try:
            con = duckdb.connect(
                config={
                    "threads": settings.model.threads,
                    "memory_limit": settings.model.memory_limit,
                    "preserve_insertion_order": False,
                }
            )
        except duckdb.Error as exc:
            raise BuildError(f"cannot open DuckDB for the warehouse: {first_line(exc)}") from None
    # (preserve_insertion_order off, measured at 1M tasks: inserts that keep insertion order
    # leave ~40% of the file as free blocks, 123 MiB instead of 89; marts have no row order.)
    try:
        if own:
            con.execute(attach)
            for layer in LAYERS:
                con.execute(f"CREATE SCHEMA warehouse.{layer}")
        con.execute("USE warehouse")  # views are bound in the warehouse's own catalog
        # one transaction: one commit for hundreds of statements (comments above all: 0.1 s of
        # a small build's 0.5 s went to committing them one by one)
        con.execute("BEGIN TRANSACTION")
        for model in models:
            if model.materialized != "table" or not own:
                continue
            # another engine's tables: written as Parquet beside the new warehouse (small:
            # marts), then loaded by DuckDB's own reader
            file = path.with_name(f"{path.name}.{model.table}.parquet")
            pq.write_table(engine.to_arrow(model.table), file)
            try:
                con.execute(
                    f"CREATE TABLE {model.table} AS SELECT * FROM read_parquet("
                    f"{_literal(str(file))})"
                )
            finally:
                file.unlink()
        local = all(s.dataset is None for s in sources)
        if local:
            for source in sources:
                files = ", ".join(_literal(f) for f in source.files)
                select = (
                    f"SELECT * FROM read_parquet([{files}], "
                    f"hive_partitioning = {str(source.hive_partitioning).lower()})"
                    if source.files
                    else _empty_select(source.schema)
                )
                con.execute(f"CREATE VIEW lake_{source.name} AS {select}")
                con.execute(
                    f"COMMENT ON VIEW lake_{source.name} IS "
                    + _literal(
                        f"The lake's {source.name} dataset as of snapshot "
                        f"{variables['lake_snapshot']} (its Parquet files, listed by the Delta "
                        "log; a view: it fails once the snapshot is vacuumed)."
                    )
                )
            for model in models:
                if model.materialized != "table":
                    con.execute(
                        f"CREATE VIEW {model.table} AS\n" + bind(model.sql, variables, model.table)
                    )
        else:
            event("build.views_skipped", reason="the lake is on object storage")
        _comment(con, docs, settings, {m.table: m.materialized for m in models}, local)
        con.execute("COMMIT")
        con.execute("USE memory")
        con.execute("DETACH warehouse")  # checkpoints it
    except duckdb.Error as exc:
        raise BuildError(f"cannot write the warehouse {path.name}: {first_line(exc)}") from None
    finally:
        if own:
            con.close()


def _empty_select(schema: pa.Schema | None) -> str:
    assert schema is not None
    cols = ", ".join(
        f"NULL::{_DUCKDB_TYPES.get(str(f.type), 'VARCHAR')} AS {_ident(f.name)}" for f in schema
    )
    return f"SELECT {cols} WHERE false"


_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "large_string": "VARCHAR",
    "int64": "BIGINT",
    "int32": "INTEGER",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
    "timestamp[us]": "TIMESTAMP",
}


def _comment(
    con: duckdb.DuckDBPyConnection,
    docs: dict[str, dict[str, Any]],
    settings: BuildSettings,
    kinds: dict[str, str],
    views_kept: bool,
) -> None:
    for table, entry in docs.items():
        stored = kinds.get(table) == "table"
        if not stored and not views_kept:
            continue
        schema, name = table.split(".")
        target = f"{schema}.{_ident(name)}"
        kind = "TABLE" if stored else "VIEW"
        if "description" in entry:
            text = document(entry["description"], settings.model, settings.health)
            con.execute(f"COMMENT ON {kind} {target} IS {_literal(text)}")
        for col, text in entry.get("columns", {}).items():
            text = document(text, settings.model, settings.health)
            con.execute(f"COMMENT ON COLUMN {target}.{_ident(col)} IS {_literal(text)}")


def remove_leftovers(data_dir: Path) -> list[Path]:
    """Delete what killed builds left (``.warehouse.duckdb.<pid>-<hex>.tmp`` and its ``.wal``).

    Called with the data dir locked, so no build that could still be writing them is running.
    """
    removed = []
    for path in data_dir.glob(f".{WAREHOUSE}.*.tmp*"):  # the file, its .wal, its .spill folder
        with contextlib.suppress(FileNotFoundError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    if removed:
        event("build.leftovers_removed", files=len(removed))
    return removed


def build(settings: BuildSettings, *, lock: bool = True) -> BuildResult:
    """``velocity build``: build a new warehouse from the current lake and swap it in."""
    data_dir = settings.data_dir
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"--data-dir {data_dir} is a file, not a directory")
    if not data_dir.is_dir() and settings.lake is None:
        raise BuildError(f"no lake in {data_dir}: run 'velocity extract' first")
    if settings.profile is not None:
        if settings.model.engine != "duckdb":
            raise ConfigError(
                "--profile writes DuckDB's query profiles: use it with --engine duckdb"
            )
        try:
            settings.profile.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"--profile {settings.profile}: not a folder one can write ({exc.strerror})"
            ) from None
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
            timezone=settings.model.timezone,
            baseline_weeks=settings.model.baseline_weeks,
        )
        try:
            result = build_into(tmp, lake, snapshot, settings)
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
