"""The SQL models and their runner: the DuckDB warehouse built from a lake snapshot.

What other stages may use: :func:`build` and its :class:`BuildSettings`, the warehouse's file
name (``WAREHOUSE``), and the read-only, sandboxed access analysts get (:func:`run_query`,
:func:`list_marts`, :func:`connect_read_only`, :func:`shell_argv`), and :func:`open_warehouse`,
which refuses a warehouse file cut short, for any reader of it.
"""

from scrums_velocity.models.query import (
    connect_read_only,
    list_marts,
    open_warehouse,
    run_query,
    shell_argv,
    warehouse_path,
)
from scrums_velocity.models.runner import WAREHOUSE, BuildSettings, build

__all__ = [
    "WAREHOUSE",
    "BuildSettings",
    "build",
    "connect_read_only",
    "list_marts",
    "open_warehouse",
    "run_query",
    "shell_argv",
    "warehouse_path",
]
