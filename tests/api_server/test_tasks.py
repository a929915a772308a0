"""POST, GET and PATCH /v1/tasks/{id}, history, and the delivery-velocity counters."""

from __future__ import annotations

import polars as pl
import pytest

from tests.conftest import auth

pytestmark = pytest.mark.anyio


def lin_of(ds, workspace_index=0):
    ws = ds.workspaces[workspace_index].id
    return next(s.id for s in ds.service_lines if s.workspace_id == ws)


async def counters(client, lin):
    r = await client.get("/_mock/delivery-velocity", params={"service_line_id": lin})
    assert r.status_code == 200
    (row,) = r.json()["data"]
    return row


async def test_get_returns_full_detail(client, small_dataset):
    row = small_dataset.tasks.filter(pl.col("external_source") == "jira").row(0, named=True)
    r = await client.get(f"/v1/tasks/{row['id']}")
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["description"] == row["description"]
    assert data["external_url"] == f"https://apexdigital.atlassian.net/browse/{row['external_id']}"
    hist = small_dataset.history.filter(pl.col("seq") == row["seq"])
    assert len(data["history"]) == hist.height
    for entry in data["history"]:
        assert set(entry) == {"at", "change", "from", "to", "by"}
        assert entry["change"] == "status"


async def test_unknown_task_is_404(client):
    r = await client.get("/v1/tasks/TSK-26-999999")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message": "task TSK-26-999999 not found"}}
    r = await client.patch("/v1/tasks/TSK-26-999999", json={"status": "done"})
    assert r.status_code == 404


async def test_create_resolves_workspace_and_binds_the_integration(client, small_dataset):
    lin = lin_of(small_dataset, 0)
    r = await client.post(
        "/v1/tasks",
        json={
            "service_line_id": lin,
            "title": "Add distributed tracing",
            "priority": "high",
            "assignee_id": "USR-26-000044",
            "project_id": "PROJ-26-004281",
        },
    )
    assert r.status_code == 201, r.text
    task = r.json()["data"]
    assert task["workspace_id"] == small_dataset.workspaces[0].id
    assert task["id"].startswith(f"TSK-{task['created_at'][2:4]}-")  # the year it was created
    assert task["status"] == "backlog"
    assert task["history"] == []
    assert task["created_at"] == task["updated_at"]
    assert task["external_source"] == "jira"
    assert task["external_url"].endswith("/browse/" + task["external_id"])
    r = await client.get(f"/v1/tasks/{task['id']}")
    assert r.json()["data"] == task
    # the new task is listed after every existing one
    r = await client.get("/v1/tasks", params={"service_line_id": lin, "limit": 100})
    listed = [t["id"] for t in r.json()["data"]]
    while r.json()["meta"]["has_more"]:
        r = await client.get(
            "/v1/tasks",
            params={"service_line_id": lin, "limit": 100, "cursor": r.json()["meta"]["cursor"]},
        )
        listed += [t["id"] for t in r.json()["data"]]
    assert listed[-1] == task["id"]


async def test_create_without_service_line_depends_on_the_workspace_setting(client, small_dataset):
    relaxed = next(w for w in small_dataset.workspaces if not w.require_task_service_line)
    strict = next(w for w in small_dataset.workspaces if w.require_task_service_line)
    r = await client.post("/v1/tasks", json={"workspace_id": relaxed.id, "title": "unlinked"})
    assert r.status_code == 201
    assert r.json()["data"]["service_line_id"] is None
    r = await client.post("/v1/tasks", json={"workspace_id": strict.id, "title": "unlinked"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "service_line_required"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"service_line_id": "LIN"}, "title: Field required"),
        ({"title": ""}, "title: String should have at least 1 character"),
        ({"title": "x", "priority": "urgent"}, "priority: Input should be"),
        ({"title": "x", "status": "doing"}, "status: Input should be"),
        ({"title": "x", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"title": 5}, "title: Input should be a valid string"),
        ({"title": "x"}, "workspace_id or service_line_id is required"),
    ],
)
async def test_create_validation(client, small_dataset, body, message):
    if body.get("service_line_id") == "LIN":
        body["service_line_id"] = lin_of(small_dataset)
    r = await client.post("/v1/tasks", json=body)
    assert r.status_code == 400
    assert message in r.json()["error"]["message"]


async def test_create_with_an_unknown_service_line_is_404(client):
    r = await client.post("/v1/tasks", json={"title": "x", "service_line_id": "LIN-26-999999"})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "service line LIN-26-999999 not found"


async def test_create_rejects_a_service_line_of_another_workspace(client, small_dataset):
    r = await client.post(
        "/v1/tasks",
        json={
            "workspace_id": small_dataset.workspaces[0].id,
            "service_line_id": lin_of(small_dataset, 1),
            "title": "x",
        },
    )
    assert r.status_code == 400
    assert "does not belong" in r.json()["error"]["message"]


async def test_non_json_body_is_400(client):
    r = await client.post(
        "/v1/tasks", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"


async def test_patch_appends_history_with_the_callers_identity(api, client, small_dataset):
    lin = lin_of(small_dataset)
    task = (await client.post("/v1/tasks", json={"service_line_id": lin, "title": "t"})).json()[
        "data"
    ]
    before = await counters(client, lin)
    r = await client.patch(f"/v1/tasks/{task['id']}", json={"status": "in_progress"})
    assert r.status_code == 200
    admin = small_dataset.tokens[small_dataset.admin_token].identity
    agent = small_dataset.tokens[small_dataset.agent_token].identity
    r = await client.patch(
        f"/v1/tasks/{task['id']}", json={"status": "done"}, headers=auth(small_dataset.agent_token)
    )
    data = r.json()["data"]
    assert [(h["from"], h["to"], h["by"]) for h in data["history"]] == [
        ("backlog", "in_progress", admin),
        ("in_progress", "done", agent),
    ]
    assert admin.startswith("USR-")
    assert agent.startswith("AGT-")
    assert data["updated_at"] > task["updated_at"]
    assert data["history"][-1]["at"] == data["updated_at"]
    after = await counters(client, lin)
    assert after["done"] == before["done"] + 1
    assert after["done_transitions"] == before["done_transitions"] + 1
    # a non-status change moves updated_at but adds no history
    r = await client.patch(f"/v1/tasks/{task['id']}", json={"priority": "critical"})
    assert len(r.json()["data"]["history"]) == 2
    assert r.json()["data"]["updated_at"] > data["updated_at"]
    # reopening takes the task out of the LIN's done count; the transition count never falls
    r = await client.patch(f"/v1/tasks/{task['id']}", json={"status": "in_progress"})
    reopened = await counters(client, lin)
    assert reopened["done"] == before["done"]
    assert reopened["done_transitions"] == before["done_transitions"] + 1
    r = await client.patch(f"/v1/tasks/{task['id']}", json={"status": "cancelled"})
    cancelled = await counters(client, lin)
    assert cancelled["cancelled"] == before["cancelled"] + 1
    assert cancelled["cancelled_transitions"] == before["cancelled_transitions"] + 1


async def test_patch_moving_a_done_task_moves_its_count(client, small_dataset):
    ws = small_dataset.workspaces[1].id
    a, b = [s.id for s in small_dataset.service_lines if s.workspace_id == ws][:2]
    task = (
        await client.post("/v1/tasks", json={"service_line_id": a, "title": "t", "status": "done"})
    ).json()["data"]
    ca, cb = await counters(client, a), await counters(client, b)
    r = await client.patch(f"/v1/tasks/{task['id']}", json={"service_line_id": b})
    assert r.json()["data"]["service_line_id"] == b
    assert (await counters(client, a))["done"] == ca["done"] - 1
    assert (await counters(client, b))["done"] == cb["done"] + 1
    r = await client.get("/v1/tasks", params={"service_line_id": b, "status": "done", "limit": 100})
    ids = [t["id"] for t in r.json()["data"]]
    while r.json()["meta"]["has_more"]:
        r = await client.get(
            "/v1/tasks",
            params={
                "service_line_id": b,
                "status": "done",
                "limit": 100,
                "cursor": r.json()["meta"]["cursor"],
            },
        )
        ids += [t["id"] for t in r.json()["data"]]
    assert task["id"] in ids


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "nothing to update"),
        ({"status": None}, "status: Input should be"),
        ({"title": None}, "title: Input should be a valid string"),
        ({"status": "doing"}, "status: Input should be"),
        ({"id": "TSK-26-000001"}, "id: Extra inputs are not permitted"),
        ({"service_line_id": "LIN-26-999999"}, "is not a service line of workspace"),
    ],
)
async def test_patch_validation(client, small_dataset, body, message):
    tid = small_dataset.tasks["id"][0]
    r = await client.patch(f"/v1/tasks/{tid}", json=body)
    assert r.status_code == 400
    assert message in r.json()["error"]["message"]


async def test_seeded_counters_match_the_data(client, small_dataset):
    r = await client.get("/_mock/delivery-velocity")
    rows = {row["service_line_id"]: row for row in r.json()["data"]}
    assert len(rows) == len(small_dataset.service_lines)
    t = small_dataset.tasks.filter(pl.col("service_line_id").is_not_null())
    done = t.filter(pl.col("status") == "done").group_by("service_line_id").len()
    for lin, n in done.iter_rows():
        assert rows[lin]["done"] == n
    transitions = (
        small_dataset.history.filter(pl.col("to_status") == "done")
        .join(t.select("seq", "service_line_id"), on="seq")
        .group_by("service_line_id")
        .len()
    )
    imported = (
        t.join(small_dataset.history.select("seq").unique(), on="seq", how="anti")
        .filter(pl.col("status") == "done")
        .group_by("service_line_id")
        .len()
        .rename({"len": "imported"})
    )
    both = transitions.join(imported, on="service_line_id", how="full", coalesce=True).fill_null(0)
    for lin, n, m in both.iter_rows():
        assert rows[lin]["done_transitions"] == n + m
