"""Incremental runs cost what changed; deletions are kept and marked; versions keep every change."""

from __future__ import annotations

import asyncio
import random

import httpx
import polars as pl
import pytest

from scrums_velocity.api_server import InProcessTransport, create_app, generate
from tests.conftest import NOW, auth
from tests.extract.conftest import read_lake, run_extract


@pytest.fixture(scope="module")
def ds():
    return generate(tasks=3000, seed=23, now=NOW)


def patch(app, ds, task_id, body):
    """PATCH through the API (in-process), as the agent token."""

    async def go():
        async with httpx.AsyncClient(transport=InProcessTransport(app), base_url="http://m") as c:
            r = await c.patch(f"/v1/tasks/{task_id}", json=body, headers=auth(ds.agent_token))
            assert r.status_code == 200, r.text
            return r.json()["data"]

    return asyncio.run(go())


def test_incremental_run_fetches_only_what_changed(ds, tmp_path):
    app = create_app(ds)
    first = run_extract(ds, app, tmp_path)
    assert first.details_fetched == 3000
    # 1% of tasks change: 20 change status, 10 change priority only
    rng = random.Random(5)
    picked = rng.sample(ds.tasks["id"].to_list(), 30)
    status_changed, priority_changed = picked[:20], picked[20:]
    current = dict(zip(ds.tasks["id"], ds.tasks["status"], strict=True))
    for tid in status_changed:
        new = "in_progress" if current[tid] != "in_progress" else "done"
        patch(app, ds, tid, {"status": new})
    for tid in priority_changed:
        patch(app, ds, tid, {"priority": "critical"})

    second = run_extract(ds, app, tmp_path)
    assert second.mode == "incremental"
    assert second.tasks_changed == 30
    assert second.details_fetched == 30
    assert second.requests == second.pages + 30
    assert second.versions_added == 30
    assert second.history_rows_added == 20
    history = read_lake(tmp_path, "task_history")
    assert history.height == ds.history.height + 20
    agent = ds.tokens[ds.agent_token].identity
    added = history.filter(pl.col("run_id") == second.run_id)
    assert sorted(added["task_id"]) == sorted(status_changed)
    assert set(added["by"]) == {agent}
    tasks = read_lake(tmp_path, "tasks")
    assert tasks.height == 3000
    assert set(tasks.filter(pl.col("id").is_in(priority_changed))["priority"]) == {"critical"}
    versions = read_lake(tmp_path, "task_versions")
    assert versions.height == 3030
    per_task = versions.filter(pl.col("id").is_in(picked)).group_by("id").len()
    assert set(per_task["len"]) == {2}  # the old version is kept beside the new one
    # a third run with nothing changed fetches nothing
    third = run_extract(ds, app, tmp_path)
    assert third.details_fetched == 0
    assert third.requests == third.pages


def test_a_move_to_another_lin_is_kept_in_versions(ds, tmp_path):
    app = create_app(ds)
    run_extract(ds, app, tmp_path)
    row = ds.tasks.filter(pl.col("service_line_id").is_not_null()).row(0, named=True)
    other = next(
        s.id
        for s in ds.service_lines
        if s.workspace_id == row["workspace_id"] and s.id != row["service_line_id"]
    )
    patch(app, ds, row["id"], {"service_line_id": other})
    run_extract(ds, app, tmp_path)
    versions = (
        read_lake(tmp_path, "task_versions").filter(pl.col("id") == row["id"]).sort("updated_at")
    )
    assert versions["service_line_id"].to_list() == [row["service_line_id"], other]
    assert (
        read_lake(tmp_path, "tasks").filter(pl.col("id") == row["id"])["service_line_id"].item()
        == other
    )


def test_full_refetches_everything_but_adds_nothing_unchanged(ds, tmp_path):
    app = create_app(ds)
    run_extract(ds, app, tmp_path)
    full = run_extract(ds, app, tmp_path, full=True)
    assert full.mode == "full"
    assert full.details_fetched == 3000
    assert full.versions_added == 0
    assert full.history_rows_added == 0
    assert read_lake(tmp_path, "task_history").height == ds.history.height


def test_deleted_tasks_are_kept_and_marked_missing(ds, tmp_path):
    app = create_app(ds)
    run_extract(ds, app, tmp_path)
    gone = ds.tasks["id"].to_list()[100:105]
    for tid in gone:
        app.state.store.remove(tid)
    second = run_extract(ds, app, tmp_path)
    assert second.tasks_missing == 5
    tasks = read_lake(tmp_path, "tasks")
    assert tasks.height == 3000  # never dropped
    missing = tasks.filter(pl.col("missing_since").is_not_null())
    assert sorted(missing["id"]) == sorted(gone)
    first_seen_missing = missing["missing_since"].max()
    # still missing a run later: the first time it went missing is kept
    run_extract(ds, app, tmp_path)
    again = read_lake(tmp_path, "tasks").filter(pl.col("missing_since").is_not_null())
    assert again["missing_since"].max() == first_seen_missing
    assert again.height == 5


def test_a_narrowed_run_marks_nothing_missing(ds, tmp_path):
    app = create_app(ds)
    run_extract(ds, app, tmp_path)
    lin = ds.service_lines[0].id
    result = run_extract(ds, app, tmp_path, service_lines=(lin,))
    assert result.tasks_missing == 0
    assert read_lake(tmp_path, "tasks")["missing_since"].null_count() == 3000
