"""Schema drift is kept and counted; unparseable records land in rejects with their payload."""

from __future__ import annotations

import json

import polars as pl
import pytest

from scrums_velocity.api_server import create_app, generate
from scrums_velocity.errors import ExtractError
from tests.conftest import NOW
from tests.extract.conftest import read_lake, run_extract


class Drift:
    """Rewrites chosen JSON answers of the app (ASGI middleware)."""

    def __init__(self, app, edits) -> None:
        self.app, self.state, self.edits = app, app.state, edits

    async def __call__(self, scope, receive, send):
        key = scope["path"] + ("?first" if b"cursor" not in scope["query_string"] else "")
        edit = self.edits.get(key) or self.edits.get(
            scope["path"] if scope["path"] != "/v1/tasks" else ""
        )
        if scope["type"] != "http" or edit is None:
            await self.app(scope, receive, send)
            return
        start, chunks = {}, []

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = json.dumps(edit(json.loads(b"".join(chunks)))).encode()
        headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def ds():
    return generate(tasks=600, seed=31, now=NOW)


def drifting_app(ds):
    ids = ds.tasks["id"].to_list()
    a, b, c, d = ids[10], ids[20], ids[30], ids[40]

    def without_created(body):
        del body["data"]["created_at"]
        return body

    def unknown_status(body):
        body["data"]["status"] = "blocked"
        return body

    def new_field(body):
        body["data"]["sprint"] = {"name": "S42"}
        return body

    def bad_history(body):
        body["data"]["history"] = [{"at": "yesterday", "change": "status", "to": "done"}]
        return body

    def bad_list_item(body):
        body["data"].append({"title": "no id here"})
        return body

    ws0 = ds.workspaces[0].id
    edits = {
        f"/v1/tasks/{a}": without_created,
        f"/v1/tasks/{b}": unknown_status,
        f"/v1/tasks/{c}": new_field,
        f"/v1/tasks/{d}": bad_history,
        "/v1/tasks?first": bad_list_item,
    }
    app = Drift(create_app(ds), edits)
    return app, (a, b, c, d), ws0


def test_drift_is_kept_and_bad_records_are_rejected_with_their_payload(ds, tmp_path):
    app, (a, b, c, d), _ = drifting_app(ds)
    result = run_extract(ds, app, tmp_path)
    assert result.outcome == "succeeded"
    n_ws = len(ds.workspaces)
    assert n_ws == 2
    assert result.rejects == 2 + n_ws  # two details, and a bad item on each workspace's first page
    rejects = read_lake(tmp_path, "rejects").sort("stage", "task_id")
    details = rejects.filter(pl.col("stage") == "detail").sort("task_id")
    assert details["task_id"].to_list() == sorted([a, d])
    reasons = dict(zip(details["task_id"], details["reason"], strict=True))
    assert reasons[a] == "created_at: Field required"
    assert reasons[d].startswith("history.0.at: Input should be a valid datetime")
    payload = json.loads(details.filter(pl.col("task_id") == a)["payload"].item())
    assert payload["id"] == a
    assert "created_at" not in payload
    listed = rejects.filter(pl.col("stage") == "list")
    assert listed.height == n_ws
    assert listed["task_id"].null_count() == n_ws
    assert json.loads(listed["payload"][0]) == {"title": "no id here"}
    assert listed["reason"][0] == "id: Field required"
    # everything else loaded; drift kept as it came
    tasks = read_lake(tmp_path, "tasks")
    assert tasks.height == 600 - 2
    assert tasks.filter(pl.col("id") == b)["status"].item() == "blocked"
    assert json.loads(tasks.filter(pl.col("id") == c)["raw"].item())["sprint"] == {"name": "S42"}
    (run,) = read_lake(tmp_path, "runs").iter_rows(named=True)
    assert dict(run["unknown_values"]) == {"status=blocked": 1, "field=sprint": 1}
    assert run["rejects"] == 4


def test_strict_fails_after_committing_the_good_records(ds, tmp_path):
    app, _, _ = drifting_app(ds)
    with pytest.raises(ExtractError, match=r"^4 records were rejected \(see the rejects dataset\)"):
        run_extract(ds, app, tmp_path, strict=True)
    assert read_lake(tmp_path, "tasks").height == 598


def test_a_rejected_task_is_retried_on_the_next_run_and_then_loads(ds, tmp_path):
    app, _, _ = drifting_app(ds)
    run_extract(ds, app, tmp_path)
    result = run_extract(ds, create_app(ds), tmp_path)  # the API fixed its records
    assert result.rejects == 0
    assert result.tasks_new == 2  # the two rejected tasks were never in the lake
    assert read_lake(tmp_path, "tasks").height == 600
