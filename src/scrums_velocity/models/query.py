"""Read-only access to the warehouse for analysts: run a query, list the marts."""

from __future__ import annotations

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
