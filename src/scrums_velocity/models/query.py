"""Read-only access to the warehouse for analysts: run a query, list the marts."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import duckdb

from scrums_velocity.errors import BuildError, ConfigError, first_line
from scrums_velocity.models.duckdb_engine import stoppable
from scrums_velocity.models.runner import WAREHOUSE, load_schema_docs


def warehouse_path(data_dir: Path) -> Path:
    path = data_dir / WAREHOUSE
    if not path.exists():
        raise BuildError(f"no warehouse at {path}: run 'velocity build' first")
    return path


# An analyst's query reads the warehouse and nothing else, and changes nothing: no file system
# access (read_text, COPY TO, ATTACH, EXPORT, INSTALL), no extension loading, and the
# configuration locked so that no statement in the query can undo it. The file is open read-only.
SANDBOX: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "memory_limit": "4GB",
    # No spilling: a query larger than memory fails instead of writing gigabytes of temporary
    # files beside the warehouse (and leaving them there if it is killed).
    "max_temp_directory_size": "0KiB",
    "threads": 2,
    "lock_configuration": True,
}


def connect_read_only(data_dir: Path, *, sandbox: bool = True) -> duckdb.DuckDBPyConnection:
    return open_warehouse(warehouse_path(data_dir), SANDBOX if sandbox else {})


# DuckDB's file header and its two database headers, before the first block.
_HEADERS = 3 * 4096


def open_warehouse(path: Path, config: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """``path`` open read-only, refused if it is cut short. A truncated file (a full disk, an
    interrupted copy) still opens, since DuckDB reads its metadata from the first blocks, and
    would fail only at the first query touching a block past the cut, or not at all."""
    try:
        con = duckdb.connect(str(path), read_only=True, config=config or {})
    except duckdb.Error as exc:
        raise BuildError(
            f"cannot open {path} read-only: {first_line(exc)}; "
            "rebuild it with 'velocity build' if it is damaged"
        ) from None
    try:
        row = con.execute("PRAGMA database_size").fetchone()
        assert row is not None
        expected = _HEADERS + int(row[2]) * int(row[3])  # block_size * total_blocks
        size = path.stat().st_size
    except (duckdb.Error, OSError) as exc:
        con.close()
        raise BuildError(f"cannot read {path}: {first_line(exc)}") from None
    if size < expected:
        con.close()
        raise BuildError(
            f"the warehouse {path} is damaged (truncated: {size} of {expected} bytes): "
            "rebuild it with 'velocity build'"
        )
    return con


# What the warehouse keeps as views over the lake's files (which the sandbox cannot open)
_LAKE_VIEWS = re.compile(r"\b(staging|intermediate)\"?\s*\.|\blake_[a-z_]+", re.IGNORECASE)


def run_query(
    data_dir: Path, sql: str, limit: int | None = None, timeout_s: float | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` in the sandbox; the result of its last statement (none for a statement
    without rows). Ctrl-C stops it, and so do ``timeout_s`` seconds."""
    if not sql.strip().strip(";").strip():
        raise ConfigError("the query is empty: pass SQL, e.g. 'select * from marts.build_info'")
    con = connect_read_only(data_dir)

    def work() -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = con.execute(sql)
        if cursor is None or cursor.description is None:
            return [], []
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchmany(limit) if limit else cursor.fetchall()

    try:
        try:
            columns, rows = stoppable(con, work, timeout_s)
        except TimeoutError:
            raise ConfigError(f"query stopped after {timeout_s:g} s (--timeout)") from None
        except duckdb.PermissionException as exc:
            if not _LAKE_VIEWS.search(sql):
                raise ConfigError(f"query failed: {first_line(exc)}") from None
            raise ConfigError(
                f"query failed: {first_line(exc)}. staging.*, intermediate.* and lake_* are "
                "views over the lake's files, which this sandbox does not open: query the marts "
                "here, or those views with 'velocity shell' (the DuckDB CLI) or DuckDB itself"
            ) from None
        except duckdb.Error as exc:
            raise ConfigError(f"query failed: {first_line(exc)}") from None
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
