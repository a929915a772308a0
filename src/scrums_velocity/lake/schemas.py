"""The lake's datasets and their schemas; the run manifest's row type."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl
import pyarrow as pa

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
_WS = ("workspace_id", pa.string())
SCHEMAS: dict[str, pa.Schema] = {
    "tasks": pa.schema(
        [
            *_TASK_FIELDS,
            ("history_digest", pa.string()),
            ("missing_since", TS),
            ("extracted_at", TS),
            ("run_id", pa.string()),
            ("raw", pa.string()),
            _WS,
        ]
    ),
    "task_versions": pa.schema(
        [*_TASK_FIELDS, ("extracted_at", TS), ("run_id", pa.string()), ("raw", pa.string()), _WS]
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
            _WS,
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
            _WS,
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
            ("resumed_from", pa.string()),
            ("details_reused", pa.int64()),
            ("committed_at", TS),
            ("lake_versions", pa.map_(pa.string(), pa.int64())),
        ]
    ),
}
# The rows that say the same thing twice when a resumed run refetched a checkpointed task.
_DEDUPE = {
    "task_versions": ["id", "updated_at"],
    "task_history": ["task_id", "at", "change", "from_value", "to_value", "by"],
    "rejects": ["stage", "task_id", "reason", "payload"],
}
DATASETS = ("tasks", "task_versions", "task_history", "rejects", "runs")
PARTITIONED = ("tasks", "task_versions", "task_history", "rejects")


@dataclass
class RunRecord:
    """One row of the run manifest (the ``runs`` table), whatever command ran.

    The one owner of the row: ``velocity extract``'s result extends it, ``velocity nightly``
    fills one in, and the lake adds ``committed_at`` and ``lake_versions`` when it commits.
    """

    run_id: str
    command: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    mode: str = ""
    workspaces: list[str] = field(default_factory=list)
    pages: int = 0
    requests: int = 0
    tasks_listed: int = 0
    tasks_new: int = 0
    tasks_changed: int = 0
    tasks_unchanged: int = 0
    details_fetched: int = 0
    details_not_found: int = 0
    tasks_missing: int = 0
    versions_added: int = 0
    history_rows_added: int = 0
    history_mismatches: int = 0
    rejects: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    http_statuses: dict[str, int] = field(default_factory=dict)
    unknown_values: dict[str, int] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    outcome: str = "succeeded"
    error: str | None = None
    resumed_from: str | None = None
    details_reused: int = 0

    def row(self) -> dict[str, Any]:
        """The manifest row: exactly the record's own fields (not a subclass's)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(RunRecord)}


# The runs table is the record's fields plus what the commit adds.
assert SCHEMAS["runs"].names == [f.name for f in dataclasses.fields(RunRecord)] + [
    "committed_at",
    "lake_versions",
]


def empty(schema: pa.Schema) -> pa.Table:
    """An empty table of ``schema`` (pyarrow's ``Schema.empty_table`` imports pandas: 0.25 s of
    every process that calls it)."""
    return pa.Table.from_batches([], schema=schema)


def frame(table: Any) -> pl.DataFrame:
    """An Arrow table as a polars frame (``pl.from_arrow`` typed for tables)."""
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    return out
