"""A generated dataset written straight to the lake equals the same data extracted through the API."""

from __future__ import annotations

import polars as pl

from scrums_velocity.api_server import create_app, generate
from scrums_velocity.api_server.lake_export import write_lake
from scrums_velocity.lake import open_lake
from tests.conftest import NOW
from tests.extract.conftest import read_lake, run_extract


def test_direct_lake_matches_an_extracted_lake(tmp_path):
    ds = generate(tasks=800, seed=47, now=NOW)
    write_lake(ds, tmp_path / "direct")
    run_extract(ds, create_app(ds), tmp_path / "api")
    cols = [
        "id",
        "workspace_id",
        "service_line_id",
        "status",
        "created_at",
        "updated_at",
        "history_count",
        "title",
    ]
    direct = read_lake(tmp_path / "direct", "tasks").select(cols).sort("id")
    api = read_lake(tmp_path / "api", "tasks").select(cols).sort("id")
    assert direct.equals(api)
    hcols = ["task_id", "workspace_id", "at", "from_value", "to_value", "by"]
    h_direct = read_lake(tmp_path / "direct", "task_history").select(hcols).sort(hcols)
    h_api = read_lake(tmp_path / "api", "task_history").select(hcols).sort(hcols)
    assert h_direct.equals(h_api)
    assert h_direct.height == ds.history.height
    assert open_lake(tmp_path / "direct").head().run_id.startswith("synthetic-")
    assert read_lake(tmp_path / "direct", "rejects").height == 0
    assert direct.filter(pl.col("service_line_id").is_null()).height > 0
