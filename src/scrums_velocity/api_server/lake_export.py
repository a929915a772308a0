"""Write a synthetic :class:`Dataset` straight into a lake, as the extractor would have.

For model benchmarks and large demos: a million tasks go to the lake in seconds, without a
million HTTP requests. The schemas, table format and snapshot commit are the lake's own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from scrums_velocity.api_server.synth import Dataset
from scrums_velocity.lake import SCHEMAS, Snapshot, open_lake

_TS = pl.Datetime("us", "UTC")


def _ts(col: str) -> pl.Expr:
    return pl.from_epoch(col, time_unit="ms").dt.replace_time_zone("UTC").cast(_TS)


def write_lake(
    ds: Dataset,
    data_dir: Path,
    *,
    extracted_at: datetime | None = None,
    lake: str | None = None,
) -> Snapshot:
    """Commit ``ds`` as a new snapshot of ``data_dir``'s lake (or ``lake``); return it."""
    extracted_at = extracted_at or datetime.fromtimestamp(ds.now_ms / 1000, UTC)
    run_id = "synthetic-" + extracted_at.strftime("%Y%m%dT%H%M%SZ")
    counts = ds.history.group_by("seq").len().rename({"len": "history_count"})
    tasks = ds.tasks.join(counts, on="seq", how="left").with_columns(
        _ts("created_ms").alias("created_at"),
        _ts("updated_ms").alias("updated_at"),
        pl.col("history_count").fill_null(0).cast(pl.Int32),
        pl.lit("").alias("history_digest"),
        pl.lit(None, dtype=_TS).alias("missing_since"),
        pl.lit(extracted_at).cast(_TS).alias("extracted_at"),
        pl.lit(run_id).alias("run_id"),
        pl.struct("id", "status", "service_line_id").struct.json_encode().alias("raw"),
    )
    history = ds.history.join(ds.tasks.select("seq", "id", "workspace_id"), on="seq").select(
        pl.col("id").alias("task_id"),
        "workspace_id",
        _ts("at_ms").alias("at"),
        pl.lit("status").alias("change"),
        pl.col("from_status").alias("from_value"),
        pl.col("to_status").alias("to_value"),
        "by",
        pl.lit(extracted_at).cast(_TS).alias("extracted_at"),
        pl.lit(run_id).alias("run_id"),
    )
    frames = {"tasks": tasks, "task_versions": tasks, "task_history": history}
    tables = {
        name: frame.select(SCHEMAS[name].names).to_arrow().cast(SCHEMAS[name])
        for name, frame in frames.items()
    }
    return open_lake(data_dir, lake).replace(run_id, tables, command="synthetic")
