"""Pydantic models of the Tasks API's bodies, as the server validates and documents them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["backlog", "in_progress", "in_review", "done", "cancelled"]
Priority = Literal["low", "medium", "high", "critical"]

_ID = {"lin": r"^LIN-\d{2}-\d{6}$", "ws": r"^WS-\d{2}-\d{6}$", "proj": r"^PROJ-\d{2}-\d{6}$"}
_ACTOR = r"^(USR|AGT)-\d{2}-\d{6}$"


class TaskCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "description": (
                "workspace_id or service_line_id is required. service_line_id is required unless "
                "the workspace setting require_task_service_line is off (400 "
                "service_line_required); a service line of another workspace is refused (400 "
                "invalid_service_line)."
            ),
            "anyOf": [
                {
                    "required": ["service_line_id"],
                    "properties": {"service_line_id": {"type": "string"}},
                },
                {"required": ["workspace_id"], "properties": {"workspace_id": {"type": "string"}}},
            ],
        },
    )

    workspace_id: str | None = Field(None, pattern=_ID["ws"])
    service_line_id: str | None = Field(None, pattern=_ID["lin"])
    project_id: str | None = Field(None, pattern=_ID["proj"])
    title: str = Field(min_length=1, max_length=4000)
    description: str | None = Field(None, max_length=20000)
    priority: Priority = "medium"
    assignee_id: str | None = Field(None, pattern=_ACTOR)
    status: Status = "backlog"


class TaskUpdate(BaseModel):
    """Only the fields sent are changed; title, status and priority may not be null."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "minProperties": 1,
            "description": (
                "Only the fields sent change. service_line_id must be a service line of the "
                "task's workspace (400 invalid_service_line) and may be null only where the "
                "workspace's require_task_service_line setting is off (400 service_line_required)."
            ),
        },
    )

    title: str = Field(None, min_length=1, max_length=4000)  # type: ignore[assignment]
    description: str | None = Field(None, max_length=20000)
    status: Status = None  # type: ignore[assignment]
    priority: Priority = None  # type: ignore[assignment]
    assignee_id: str | None = Field(None, pattern=_ACTOR)
    project_id: str | None = Field(None, pattern=_ID["proj"])
    service_line_id: str | None = Field(None, pattern=_ID["lin"])


class HistoryEntry(BaseModel):
    at: str
    change: Literal["status"]
    from_: Status = Field(alias="from")
    to: Status
    by: str


class TaskSummary(BaseModel):
    id: str
    workspace_id: str
    service_line_id: str | None
    project_id: str | None
    title: str
    status: Status
    priority: Priority
    assignee_id: str | None
    external_id: str | None
    external_source: str | None
    created_at: str
    updated_at: str


class TaskDetail(TaskSummary):
    description: str | None
    external_url: str | None
    history: list[HistoryEntry]


class Meta(BaseModel):
    cursor: str | None
    has_more: bool


class TaskList(BaseModel):
    data: list[TaskSummary]
    meta: Meta


class TaskEnvelope(BaseModel):
    data: TaskDetail


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class VelocityCounter(BaseModel):
    service_line_id: str
    workspace_id: str
    done: int = Field(description="tasks of this LIN whose current status is done")
    cancelled: int = Field(description="tasks of this LIN whose current status is cancelled")
    done_transitions: int = Field(description="every move into done, ever (never decreases)")
    cancelled_transitions: int = Field(description="every move into cancelled, ever")


class VelocityCounters(BaseModel):
    data: list[VelocityCounter]
