"""The mock Scrums.com Tasks API as an ASGI (Starlette) application.

Endpoints, as in the API document:

* ``GET /v1/tasks``: list (filters, comma lists for status and priority, cursor pagination);
* ``POST /v1/tasks``: create;
* ``GET /v1/tasks/{id}``: full detail with description and history;
* ``PATCH /v1/tasks/{id}``: partial update; status changes append history.

Server extensions (not in the API document, for reconciliation and tests):

* ``GET /_mock/delivery-velocity``: per-LIN delivery-velocity counters;
* ``GET /_mock/stats``: requests seen, faults injected, 429s, statuses sent;
* ``GET /openapi.json``: the OpenAPI 3.1 document of all of the above.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scrums_velocity.api_server.faults import Knobs, OperationalMiddleware, Stats
from scrums_velocity.api_server.openapi import build_openapi
from scrums_velocity.api_server.schemas import TaskCreate, TaskUpdate
from scrums_velocity.api_server.store import Query, StoreError, TaskStore
from scrums_velocity.api_server.synth import PRIORITIES, STATUSES, Dataset, Principal

_LIST_PARAMS = {
    "workspace_id",
    "service_line_id",
    "project_id",
    "assignee_id",
    "status",
    "priority",
    "cursor",
    "limit",
}


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _principal(request: Request) -> Principal:
    tokens: dict[str, Principal] = request.app.state.tokens
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise StoreError(401, "unauthorized", "missing bearer token")
    principal = tokens.get(token.strip())
    if principal is None:
        raise StoreError(401, "unauthorized", "unknown or revoked bearer token")
    return principal


def _require_workspace(principal: Principal, workspace_id: str) -> None:
    if workspace_id not in principal.workspace_ids:
        raise StoreError(403, "forbidden", f"this token may not access workspace {workspace_id}")


def _enum_list(value: str | None, name: str, allowed: tuple[str, ...]) -> frozenset[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise StoreError(
            400,
            "invalid_parameter",
            f"{name} must be a comma-separated list of {', '.join(allowed)}; got {value!r}",
        )
    return frozenset(items)


_ID_FORMATS = {
    "workspace_id": (re.compile(r"WS-\d{2}-\d{6}"), "WS-YY-NNNNNN"),
    "service_line_id": (re.compile(r"LIN-\d{2}-\d{6}"), "LIN-YY-NNNNNN"),
    "project_id": (re.compile(r"PROJ-\d{2}-\d{6}"), "PROJ-YY-NNNNNN"),
    "assignee_id": (re.compile(r"(USR|AGT)-\d{2}-\d{6}"), "USR-YY-NNNNNN or AGT-YY-NNNNNN"),
}


def _only_params(request: Request, allowed: set[str]) -> None:
    unknown = set(request.query_params) - allowed
    if unknown:
        raise StoreError(400, "invalid_parameter", f"unknown query parameter {sorted(unknown)[0]}")


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise StoreError(400, "invalid_parameter", f"{name} given more than once")
    if values and values[0] == "":
        raise StoreError(400, "invalid_parameter", f"{name} must not be empty")
    value = values[0] if values else None
    if value is not None and name in _ID_FORMATS:
        pattern, shape = _ID_FORMATS[name]
        if not pattern.fullmatch(value):
            raise StoreError(
                400, "invalid_parameter", f"{name} must look like {shape}; got {value!r}"
            )
    return value


async def list_tasks(request: Request) -> Response:
    store: TaskStore = request.app.state.store
    principal = _principal(request)
    _only_params(request, _LIST_PARAMS)
    ws = _one(request, "workspace_id")
    lin = _one(request, "service_line_id")
    if ws is None and lin is None:
        raise StoreError(400, "missing_parameter", "workspace_id or service_line_id is required")
    raw_limit = _one(request, "limit")
    try:
        limit = 25 if raw_limit is None else int(raw_limit)
    except ValueError:
        raise StoreError(
            400, "invalid_parameter", f"limit must be an integer 1-100; got {raw_limit!r}"
        ) from None
    if not 1 <= limit <= 100:
        raise StoreError(400, "invalid_parameter", f"limit must be between 1 and 100; got {limit}")
    query = Query(
        workspace_id=ws,
        service_line_id=lin,
        project_id=_one(request, "project_id"),
        assignee_id=_one(request, "assignee_id"),
        statuses=_enum_list(_one(request, "status"), "status", STATUSES),
        priorities=_enum_list(_one(request, "priority"), "priority", PRIORITIES),
    )
    cursor = _one(request, "cursor")  # validated before any early answer below
    if ws is not None:
        if ws not in store.workspaces:
            if ws in principal.workspace_ids:  # pragma: no cover - tokens name real workspaces
                raise StoreError(404, "not_found", f"workspace {ws} not found")
            raise StoreError(403, "forbidden", f"this token may not access workspace {ws}")
        _require_workspace(principal, ws)
    if lin is not None:
        lin_ws = store.lin_workspace.get(lin)
        if lin_ws is not None:
            _require_workspace(principal, lin_ws)
        elif ws is None:  # an unknown LIN alone: nothing to show, nothing to leak
            return JSONResponse({"data": [], "meta": {"cursor": None, "has_more": False}})
    tasks, next_cursor = store.list(query, limit, cursor)
    return JSONResponse(
        {
            "data": [t.summary() for t in tasks],
            "meta": {"cursor": next_cursor, "has_more": next_cursor is not None},
        }
    )


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise StoreError(400, "invalid_json", "request body must be a JSON object") from None


def _validation_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{where}: {err['msg']}"


async def create_task(request: Request) -> Response:
    store: TaskStore = request.app.state.store
    principal = _principal(request)
    _only_params(request, set())
    body = await _json_body(request)
    try:
        payload = TaskCreate.model_validate(body)
    except ValidationError as exc:
        raise StoreError(400, "validation_error", _validation_message(exc)) from None
    fields = payload.model_dump()
    target_ws = fields["workspace_id"] or store.lin_workspace.get(fields["service_line_id"] or "")
    if target_ws is not None and target_ws in store.workspaces:
        _require_workspace(principal, target_ws)
    task = store.create(fields, by=principal.identity)
    return JSONResponse({"data": task.detail()}, status_code=201)


def _get(request: Request) -> tuple[TaskStore, Principal, Any]:
    store: TaskStore = request.app.state.store
    principal = _principal(request)
    _only_params(request, set())
    task_id = request.path_params["task_id"]
    task = store.by_id.get(task_id)
    if task is None or task.workspace_id not in principal.workspace_ids:
        # A task of a workspace the token may not read is as good as absent.
        raise StoreError(404, "not_found", f"task {task_id} not found")
    return store, principal, task


async def get_task(request: Request) -> Response:
    _, _, task = _get(request)
    return JSONResponse({"data": task.detail()})


async def patch_task(request: Request) -> Response:
    store, principal, task = _get(request)
    body = await _json_body(request)
    try:
        payload = TaskUpdate.model_validate(body)
    except ValidationError as exc:
        raise StoreError(400, "validation_error", _validation_message(exc)) from None
    fields = payload.model_dump(exclude_unset=True)
    if not fields:
        raise StoreError(400, "validation_error", "body: nothing to update")
    store.update(task, fields, by=principal.identity)
    return JSONResponse({"data": task.detail()})


async def delivery_velocity(request: Request) -> Response:
    store: TaskStore = request.app.state.store
    principal = _principal(request)
    _only_params(request, {"workspace_id", "service_line_id"})
    ws = _one(request, "workspace_id")
    lin = _one(request, "service_line_id")
    rows = []
    for line in store.dataset.service_lines:
        if line.workspace_id not in principal.workspace_ids:
            continue
        if (ws and line.workspace_id != ws) or (lin and line.id != lin):
            continue
        counter = store.counters[line.id].as_dict()
        rows.append({"service_line_id": line.id, "workspace_id": line.workspace_id, **counter})
    return JSONResponse({"data": rows})


async def stats(request: Request) -> Response:
    return JSONResponse(request.app.state.stats.as_dict())


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


async def _store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return _error(exc.status, exc.code, exc.message, headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "error")
    return _error(status, code, str(getattr(exc, "detail", "error")), getattr(exc, "headers", None))


async def tasks_collection(request: Request) -> Response:
    return await (list_tasks if request.method == "GET" else create_task)(request)


async def task_item(request: Request) -> Response:
    return await (get_task if request.method == "GET" else patch_task)(request)


def create_app(dataset: Dataset, knobs: Knobs | None = None, *, clock=None) -> Any:
    """The ASGI app serving ``dataset``, wrapped in the operational middleware."""
    from starlette.exceptions import HTTPException

    store = TaskStore(dataset, **({"clock": clock} if clock else {}))
    app = Starlette(
        routes=[
            Route("/v1/tasks", tasks_collection, methods=["GET", "POST"]),
            Route("/v1/tasks/{task_id}", task_item, methods=["GET", "PATCH"]),
            Route("/_mock/delivery-velocity", delivery_velocity, methods=["GET"]),
            Route("/_mock/stats", stats, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        exception_handlers={StoreError: _store_error, HTTPException: _http_error},
    )
    stats_ = Stats()
    app.state.store = store
    app.state.tokens = dataset.tokens
    app.state.stats = stats_
    app.state.openapi = build_openapi()
    wrapped = OperationalMiddleware(app, knobs or Knobs(), stats_)
    wrapped.state = app.state  # type: ignore[attr-defined]  # tests reach the store through it
    return wrapped
