"""Listing every workspace by cursor, pipelined with detail fetches, into the lake."""

from __future__ import annotations

import polars as pl
import pytest

from scrums_velocity.api_server import create_app, generate
from tests.conftest import NOW
from tests.extract.conftest import read_lake, run_extract


class Recorder:
    """ASGI middleware that records the order of requests."""

    def __init__(self, app) -> None:
        self.app = app
        self.state = app.state
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.calls.append((scope["path"], scope["query_string"].decode()))
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def ds():
    return generate(tasks=2500, seed=17, now=NOW)


def test_every_task_and_every_status_change_reaches_the_lake(ds, tmp_path):
    result = run_extract(ds, create_app(ds), tmp_path)
    assert result.outcome == "succeeded"
    tasks = read_lake(tmp_path, "tasks")
    assert sorted(tasks["id"]) == sorted(ds.tasks["id"])
    assert tasks["id"].n_unique() == ds.tasks.height
    history = read_lake(tmp_path, "task_history")
    assert history.height == ds.history.height
    # per task, the lake's history equals the generator's, entry for entry
    want = (
        ds.history.join(ds.tasks.select("seq", "id"), on="seq")
        .select(
            pl.col("id").alias("task_id"),
            pl.from_epoch("at_ms", time_unit="ms")
            .dt.replace_time_zone("UTC")
            .dt.cast_time_unit("us")
            .alias("at"),
            pl.col("from_status").alias("from_value"),
            pl.col("to_status").alias("to_value"),
            "by",
        )
        .sort("task_id", "at", "to_value")
    )
    got = history.select("task_id", "at", "from_value", "to_value", "by").sort(
        "task_id", "at", "to_value"
    )
    assert got.equals(want)
    assert set(history["change"].unique()) == {"status"}
    # partitions carry the workspace; every documented field is there
    counts = tasks.group_by("workspace_id").len().sort("workspace_id")
    want_counts = ds.tasks.group_by("workspace_id").len().sort("workspace_id")
    assert counts.equals(want_counts)
    row = tasks.filter(pl.col("external_source") == "jira").row(0, named=True)
    assert row["external_url"].startswith("https://")
    assert row["description"]
    assert row["created_at"].tzinfo is not None
    assert result.pages == sum(-(-n // 100) for n in want_counts["len"])
    assert result.details_fetched == ds.tasks.height
    assert result.requests == result.pages + result.details_fetched
    # the manifest row
    (run,) = read_lake(tmp_path, "runs").iter_rows(named=True)
    assert run["outcome"] == "succeeded"
    assert run["tasks_listed"] == ds.tasks.height
    assert run["history_rows_added"] == ds.history.height
    assert run["history_mismatches"] == 0


def test_listing_is_pipelined_with_fetching_and_workspaces_run_concurrently(ds, tmp_path):
    app = Recorder(create_app(ds))
    run_extract(ds, app, tmp_path)
    paths = [p for p, _ in app.calls]
    list_idx = [i for i, p in enumerate(paths) if p == "/v1/tasks"]
    detail_idx = [i for i, p in enumerate(paths) if p.startswith("/v1/tasks/")]
    assert detail_idx[0] < list_idx[-1], "details waited for the whole listing"
    by_ws = {}
    for i, (p, q) in enumerate(app.calls):
        if p == "/v1/tasks":
            ws = next(x.split("=")[1] for x in q.split("&") if x.startswith("workspace_id="))
            by_ws.setdefault(ws, []).append(i)
    firsts = sorted(v[0] for v in by_ws.values())
    lasts = sorted(v[-1] for v in by_ws.values())
    assert len(by_ws) == 3
    assert firsts[-1] < lasts[0], "one workspace's listing waited for another's"
    assert all("limit=100" in q for p, q in app.calls if p == "/v1/tasks")


def test_narrowed_to_a_service_line(ds, tmp_path):
    lin = ds.service_lines[0]
    result = run_extract(ds, create_app(ds), tmp_path, service_lines=(lin.id,))
    tasks = read_lake(tmp_path, "tasks")
    assert set(tasks["service_line_id"]) == {lin.id}
    assert tasks.height == ds.tasks.filter(pl.col("service_line_id") == lin.id).height
    assert result.tasks_missing == 0
