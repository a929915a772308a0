"""The OpenAPI 3.1 document of the mock Tasks API (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from scrums_velocity.api_server.schemas import (
    ErrorEnvelope,
    TaskCreate,
    TaskEnvelope,
    TaskList,
    TaskUpdate,
    VelocityCounters,
)

_ID_PATTERNS = {
    "workspace_id": r"^WS-\d{2}-\d{6}$",
    "service_line_id": r"^LIN-\d{2}-\d{6}$",
    "project_id": r"^PROJ-\d{2}-\d{6}$",
    "assignee_id": r"^(USR|AGT)-\d{2}-\d{6}$",
}
_STATUS_LIST = r"^(backlog|in_progress|in_review|done|cancelled)(,(backlog|in_progress|in_review|done|cancelled))*$"  # noqa: E501
_PRIORITY_LIST = r"^(low|medium|high|critical)(,(low|medium|high|critical))*$"


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "invalid request",
        401: "missing or unknown bearer token",
        403: "the token may not access this workspace",
        404: "not found",
        429: "rate limited (see Retry-After)",
    }
    return {str(c): _json("ErrorEnvelope", text[c]) for c in codes}


def _param(name: str, description: str, schema: dict, required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def build_openapi() -> dict[str, Any]:
    list_params = [
        _param(
            "workspace_id",
            "Workspace scope. Required unless service_line_id is given.",
            {"type": "string", "pattern": _ID_PATTERNS["workspace_id"]},
        ),
        _param(
            "service_line_id",
            "Filter to one LIN-*.",
            {"type": "string", "pattern": _ID_PATTERNS["service_line_id"]},
        ),
        _param(
            "project_id",
            "Filter by project label.",
            {"type": "string", "pattern": _ID_PATTERNS["project_id"]},
        ),
        _param(
            "assignee_id",
            "Filter by assignee.",
            {"type": "string", "pattern": _ID_PATTERNS["assignee_id"]},
        ),
        _param(
            "status",
            "One status or a comma-separated list.",
            {"type": "string", "pattern": _STATUS_LIST},
        ),
        _param(
            "priority",
            "One priority or a comma-separated list.",
            {"type": "string", "pattern": _PRIORITY_LIST},
        ),
        _param(
            "cursor",
            "Opaque cursor from meta.cursor of the previous page of the same query; any other "
            "value is refused with 400 invalid_cursor.",
            {"type": "string", "minLength": 1},
        ),
        _param(
            "limit",
            "Results per page (max 100, default 25).",
            {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
        ),
    ]
    task_id = {
        "name": "task_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": r"^TSK-\d{2}-\d{6}$"},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Scrums.com Tasks API (scrums-velocity mock)",
            "version": "1.0.0",
            "description": (
                "A faithful mock of the planned Scrums.com Tasks API, with server extensions "
                "under /_mock/ for reconciliation and tests."
            ),
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/tasks": {
                "get": {
                    "operationId": "listTasks",
                    "summary": "List tasks for a workspace or service line.",
                    "description": (
                        "workspace_id or service_line_id is required (400 missing_parameter "
                        "otherwise). Ordered by creation (immutable): pages never skip or repeat."
                    ),
                    "parameters": list_params,
                    "responses": {
                        "200": _json("TaskList", "a page of tasks"),
                        **_errors(400, 401, 403, 429),
                    },
                },
                "post": {
                    "operationId": "createTask",
                    "summary": "Create a task.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("TaskCreate")}},
                    },
                    "responses": {
                        "201": _json("TaskEnvelope", "the created task"),
                        **_errors(400, 401, 403, 404, 429),
                    },
                },
            },
            "/v1/tasks/{task_id}": {
                "parameters": [task_id],
                "get": {
                    "operationId": "getTask",
                    "summary": "Retrieve a task with full detail (description, history).",
                    "responses": {
                        "200": _json("TaskEnvelope", "the task"),
                        **_errors(400, 401, 404, 429),
                    },
                },
                "patch": {
                    "operationId": "updateTask",
                    "summary": "Update a task; status changes are appended to its history.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("TaskUpdate")}},
                    },
                    "responses": {
                        "200": _json("TaskEnvelope", "the updated task"),
                        **_errors(400, 401, 404, 429),
                    },
                },
            },
            "/_mock/delivery-velocity": {
                "get": {
                    "operationId": "deliveryVelocityCounters",
                    "summary": "Server extension: per-LIN delivery-velocity counters.",
                    "parameters": list_params[:2],
                    "responses": {
                        "200": _json("VelocityCounters", "counters per LIN"),
                        **_errors(400, 401),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(
                TaskCreate, TaskUpdate, TaskList, TaskEnvelope, ErrorEnvelope, VelocityCounters
            ),
        },
    }
