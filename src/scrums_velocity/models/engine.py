"""What the runner asks of an engine: the one seam between the model graph and DuckDB or Spark.

The runner owns the graph (discovery, order, materialisation, data tests, documentation); an
engine only runs what it is handed. SQL reaches an engine in DuckDB's dialect with the build's
parameters already bound as literals (no ``getvariable``), so a model means one thing whatever
runs it; an engine that speaks another dialect translates it (``spark.py``: sqlglot) and raises
``BuildError`` naming the model when it cannot.

Tables are named ``schema.name`` (``staging.stg_tasks``); the lake's datasets are ``lake_<name>``
(``lake_tasks``) and configuration tables bare names (``config_service_lines``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import pyarrow as pa

from scrums_velocity.errors import BuildError


def literal(value: object) -> str:
    """A build parameter as a SQL literal (the same text for every engine)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


_VARIABLE = re.compile(r"getvariable\('([a-z_]+)'\)")


def bind(sql: str, variables: dict[str, object], table: str) -> str:
    """``sql`` with each ``getvariable('name')`` replaced by the build's value as a literal:
    the SQL an engine runs, and the SQL of the views kept in the warehouse, stands alone."""

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in variables:
            raise BuildError(
                f"model {table} reads getvariable('{match.group(1)}'), which no setting provides"
            )
        return literal(variables[match.group(1)])

    return _VARIABLE.sub(value, sql)


# view: computed where read (nothing stored; staging over the lake, cheap intermediates).
# temp: computed once for the build and dropped after it (intermediates read by many models).
# table: computed once and kept in the warehouse file (what analysts query).
Materialized = Literal["view", "temp", "table"]
MATERIALIZATIONS: tuple[str, ...] = ("view", "temp", "table")


@dataclass(frozen=True)
class LakeSource:
    """One lake dataset of the snapshot being built: its Parquet files, or an Arrow dataset.

    ``files`` are absolute paths (a local lake) or URLs the engine's filesystem reads;
    ``dataset`` is set instead when only Arrow can read the store (DuckDB on s3:// here)."""

    name: str
    files: Sequence[str] = ()
    hive_partitioning: bool = False
    schema: pa.Schema | None = None  # the dataset's schema (for an empty file list)
    dataset: object | None = None  # a pyarrow.dataset.Dataset


# A Python model's body, called once per partition key value (or once, unpartitioned) with
# its inputs' rows for that value (input table name -> rows) and returning the rows it builds.
PartitionFunction = Callable[[dict[str, pa.Table]], pa.Table]


class Engine(Protocol):
    name: str  # "duckdb" or "spark": recorded in marts.build_info.engine

    def register_lake(self, source: LakeSource) -> None:
        """Make ``lake_<source.name>`` readable by SQL."""

    def register_table(self, name: str, data: pa.Table) -> None:
        """Make a small Arrow table readable by SQL under the bare ``name``."""

    def create(self, table: str, sql: str, materialized: Materialized) -> None:
        """Build ``table`` (``schema.name``) from one SELECT. Raises BuildError naming it."""

    def start_python(
        self,
        table: str,
        inputs: Sequence[str],
        partition_by: str | None,
        function: PartitionFunction,
        schema: pa.Schema,
        materialized: Materialized,
    ) -> Callable[[], None]:
        """Start building ``table`` with ``function``: once per value of ``partition_by`` over
        the ``inputs`` (each filtered to that value; Spark: ``applyInArrow``, ``cogroup``), or
        once over whole inputs when ``partition_by`` is None; rows are cast to ``schema``. The
        inputs are read as they are now; the returned callable finishes the table (raising
        BuildError naming it). Meanwhile the runner may build models that do not read it."""

    def count(self, table: str) -> int:
        """Rows in a built table."""

    def to_arrow(self, table: str) -> pa.Table:
        """A built table's rows (marts are loaded into the warehouse this way)."""

    def rows(self, sql: str, limit: int) -> tuple[list[str], list[tuple]]:
        """Column names and at most ``limit`` rows of a query (the data tests)."""

    def release(self, table: str) -> None:
        """Drop a ``temp`` model once nothing needs it (before the warehouse is written)."""

    def close(self) -> None:
        """Release the engine's resources (temp tables, cached frames)."""
