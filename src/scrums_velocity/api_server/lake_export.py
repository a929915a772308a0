"""Write a synthetic :class:`Dataset` straight into a Parquet lake, as the extractor would have.

For model benchmarks and large demos: a million tasks go to the lake in seconds, without a
million HTTP requests. The layout, schemas and snapshot publication are the extractor's own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from scrums_velocity.api_server.synth import Dataset
from scrums_velocity.extract.lake import SCHEMAS, Lake, write_empty

_TS = pl.Datetime("us", "UTC")


def _ts(col: str) -> pl.Expr:
    return pl.from_epoch(col, time_unit="ms").dt.replace_time_zone("UTC").cast(_TS)


def write_lake(ds: Dataset, data_dir: Path, *, extracted_at: datetime | None = None) -> Path:
    """Write ``ds`` as a new lake snapshot under ``data_dir`` and publish it; return its path."""
    extracted_at = extracted_at or datetime.fromtimestamp(ds.now_ms / 1000, UTC)
    run_id = "synthetic-" + extracted_at.strftime("%Y%m%dT%H%M%SZ")
    lake = Lake(data_dir)
    snapshot = lake.snapshots / run_id
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
    for ws in ds.workspaces:
        for dataset, frame in frames.items():
            part = frame.filter(pl.col("workspace_id") == ws.id)
            table = part.select(SCHEMAS[dataset].names).to_arrow().cast(SCHEMAS[dataset])
            path = snapshot / dataset / f"workspace_id={ws.id}" / f"part-{run_id}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path, compression="zstd")
    write_empty(snapshot, "rejects")
    (snapshot / "runs").mkdir(parents=True, exist_ok=True)
    pq.write_table(SCHEMAS["runs"].empty_table(), snapshot / "runs" / f"run-{run_id}.parquet")
    lake.publish(snapshot)
    return snapshot
