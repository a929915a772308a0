"""Validation of API records, tolerant of the schema drift an API "subject to change" brings.

* Unknown fields are kept: the raw JSON of every record is stored next to its columns.
* Unknown enum values (status, priority, history ``change``) are kept as they are and counted.
* Missing optional fields are null. Only what the pipeline cannot do without is required:
  ``id``, ``workspace_id``, ``status``, ``created_at`` and ``updated_at`` (and, in a history entry,
  ``at``). A record without them cannot be placed in time or identified, so it is rejected with
  its raw payload and the reason, and the run goes on.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

STATUSES = frozenset({"backlog", "in_progress", "in_review", "done", "cancelled"})
PRIORITIES = frozenset({"low", "medium", "high", "critical"})
CHANGES = frozenset({"status"})


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    at: AwareDatetime
    change: str | None = None
    from_value: str | None = Field(None, alias="from")
    to_value: str | None = Field(None, alias="to")
    by: str | None = None

    _utc_at = field_validator("at")(_utc)


class TaskSummary(BaseModel):
    """A task as ``GET /v1/tasks`` lists it. Only ``id`` and ``updated_at`` matter here."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    updated_at: AwareDatetime | None = None

    _utc_updated = field_validator("updated_at")(_utc)


class TaskDetail(BaseModel):
    """A task as ``GET /v1/tasks/{id}`` returns it."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    workspace_id: str = Field(min_length=1)
    service_line_id: str | None = None
    project_id: str | None = None
    title: str | None = None
    description: str | None = None
    status: str = Field(min_length=1)
    priority: str | None = None
    assignee_id: str | None = None
    external_id: str | None = None
    external_source: str | None = None
    external_url: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    created_at: AwareDatetime
    updated_at: AwareDatetime

    _utc_times = field_validator("created_at", "updated_at")(_utc)

    @field_validator("history", mode="before")
    @classmethod
    def _null_history_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class Rejected(Exception):
    """A record that cannot be parsed: carries the reason for the rejects dataset."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def reason_of(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def parse_summary(payload: Any) -> TaskSummary:
    if not isinstance(payload, dict):
        raise Rejected(f"list item is {type(payload).__name__}, not an object")
    try:
        return TaskSummary.model_validate(payload)
    except ValidationError as exc:
        raise Rejected(reason_of(exc)) from None


def parse_detail(payload: Any, expected_id: str) -> TaskDetail:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise Rejected("response has no 'data' object")
    try:
        detail = TaskDetail.model_validate(payload["data"])
    except ValidationError as exc:
        raise Rejected(reason_of(exc)) from None
    if detail.id != expected_id:
        raise Rejected(f"asked for {expected_id}, got {detail.id}")
    return detail


def count_unknown_values(detail: TaskDetail, counter: Counter) -> None:
    """Count enum values outside the documented sets (kept in the data as they are)."""
    if detail.status not in STATUSES:
        counter[f"status={detail.status}"] += 1
    if detail.priority is not None and detail.priority not in PRIORITIES:
        counter[f"priority={detail.priority}"] += 1
    for h in detail.history:
        if h.change not in CHANGES:
            counter[f"history.change={h.change}"] += 1
        for v in (h.from_value, h.to_value):
            if v is not None and v not in STATUSES:
                counter[f"history.status={v}"] += 1
    extra = set(detail.model_extra or ())
    for name in sorted(extra):
        counter[f"field={name}"] += 1


def history_key(h: HistoryEntry) -> tuple:
    return (h.at, h.change, h.from_value, h.to_value, h.by)


def history_digest(entries: list[HistoryEntry]) -> str:
    """A digest of a task's history (in API order), to tell an extension from a rewrite."""
    sha = hashlib.sha256()
    for h in entries:
        at, change, frm, to, by = history_key(h)
        sha.update(json.dumps([at.isoformat(), change, frm, to, by]).encode())
    return sha.hexdigest()[:32]
