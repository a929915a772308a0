"""Bearer auth: 401 without or with an unknown token, 403 for a workspace the token may not read."""

from __future__ import annotations

import pytest

from tests.conftest import auth

pytestmark = pytest.mark.anyio


async def test_missing_and_unknown_tokens_are_401(client, small_dataset):
    ws = small_dataset.workspaces[0].id
    for headers in ({"Authorization": ""}, {"Authorization": "Basic abc"}, auth("svt_wrong")):
        r = await client.get("/v1/tasks", params={"workspace_id": ws}, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthorized"
        assert "svt_" not in r.text  # the token is never echoed


async def test_a_restricted_token_is_403_on_other_workspaces(client, small_dataset):
    ws0, ws1 = small_dataset.workspaces[0].id, small_dataset.workspaces[1].id
    token = small_dataset.workspace_token(ws0)
    r = await client.get("/v1/tasks", params={"workspace_id": ws0}, headers=auth(token))
    assert r.status_code == 200
    r = await client.get("/v1/tasks", params={"workspace_id": ws1}, headers=auth(token))
    assert r.status_code == 403
    assert r.json()["error"] == {
        "code": "forbidden",
        "message": f"this token may not access workspace {ws1}",
    }
    lin1 = next(s.id for s in small_dataset.service_lines if s.workspace_id == ws1)
    r = await client.get("/v1/tasks", params={"service_line_id": lin1}, headers=auth(token))
    assert r.status_code == 403
    r = await client.post(
        "/v1/tasks", json={"service_line_id": lin1, "title": "x"}, headers=auth(token)
    )
    assert r.status_code == 403
    # another workspace's task is invisible, not merely forbidden
    tid = small_dataset.tasks.filter(small_dataset.tasks["workspace_id"] == ws1)["id"][0]
    r = await client.get(f"/v1/tasks/{tid}", headers=auth(token))
    assert r.status_code == 404
    r = await client.get("/v1/tasks", params={"workspace_id": "WS-26-999999"})
    assert r.status_code == 403
