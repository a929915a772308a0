"""Read-only access to the warehouse for analysts: run a query, list the marts."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import duckdb

from scrums_velocity.errors import BuildError, ConfigError
from scrums_velocity.models.runner import WAREHOUSE, load_schema_docs


def warehouse_path(data_dir: Path) -> Path:
    path = data_dir / WAREHOUSE
    if not path.exists():
        raise BuildError(f"no warehouse at {path}: run 'velocity build' first")
    return path


def connect_read_only(data_dir: Path) -> duckdb.DuckDBPyConnection:
    path = warehouse_path(data_dir)
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise BuildError(f"cannot open {path} read-only: {str(exc).splitlines()[0]}") from None


def run_query(
    data_dir: Path, sql: str, limit: int | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    con = connect_read_only(data_dir)
    try:
        try:
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchmany(limit) if limit else cursor.fetchall()
        except duckdb.Error as exc:
            raise ConfigError(f"query failed: {str(exc).strip().splitlines()[0]}") from None
    finally:
        con.close()
    return columns, rows


def list_marts(data_dir: Path) -> list[tuple[str, str]]:
    """(table, description) of every mart: from the warehouse's comments, else the model docs."""
    path = data_dir / WAREHOUSE
    if path.exists():
        con = connect_read_only(data_dir)
        try:
            rows = con.execute(
                "SELECT table_name, coalesce(comment, '') FROM duckdb_tables() "
                "WHERE schema_name = 'marts' ORDER BY table_name"
            ).fetchall()
        finally:
            con.close()
        return [(f"marts.{name}", text) for name, text in rows]
    docs = load_schema_docs()
    return sorted((t, d.get("description", "")) for t, d in docs.items() if t.startswith("marts."))


def shell_argv(data_dir: Path) -> list[str]:
    """The DuckDB CLI opened read-only on the warehouse, the marts first on the search path.

    The CLI is the ``duckdb-cli`` package (``pip install 'scrums-velocity[shell]'``): the one
    beside this interpreter, else the first on ``PATH``.
    """
    path = warehouse_path(data_dir)
    beside = Path(sys.executable).parent / "duckdb"
    cli = str(beside) if beside.exists() else shutil.which("duckdb")
    if cli is None:
        raise ConfigError(
            "the DuckDB CLI is not installed: pip install duckdb-cli (or 'scrums-velocity[shell]')"
        )
    return [cli, "-readonly", "-cmd", "SET search_path = 'marts,main'", str(path)]
