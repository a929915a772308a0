"""Hand-built lakes for model tests: a few tasks and history rows written as the extractor would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from scrums_velocity.lake import SCHEMAS, open_lake


def ts(text: str) -> datetime:
    """'2026-01-05 09:00' (UTC) -> aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Lake:
    tasks: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    workspace_of: dict[str, str] = field(default_factory=dict)
    versions: list[dict] = field(default_factory=list)
    extracted: str = "2026-02-18 12:00"  # when every row was fetched: the default as_of

    def task(
        self,
        id,
        lin,
        created,
        status,
        *,
        ws="WS-26-000001",
        updated=None,
        project=None,
        title=None,
        external_id=None,
        missing_since=None,
        changes=(),
    ):
        """Add a task; ``changes`` is [(at, from, to), ...] and updated_at defaults to the last."""
        last = changes[-1][0] if changes else created
        self.tasks.append(
            {
                "id": id,
                "service_line_id": lin,
                "project_id": project,
                "title": title or f"Task {id}",
                "description": None,
                "status": status,
                "priority": "medium",
                "assignee_id": None,
                "external_id": external_id,
                "external_source": "jira" if external_id else None,
                "external_url": None,
                "created_at": ts(created),
                "updated_at": ts(updated or last),
                "history_count": len(changes),
                "history_digest": "",
                "extracted_at": ts(self.extracted),
                "missing_since": ts(missing_since) if missing_since else None,
                "run_id": "r1",
                "raw": "{}",
            }
        )
        self.workspace_of[id] = ws
        for at, frm, to, *by in changes:
            self.history.append(
                {
                    "task_id": id,
                    "at": ts(at),
                    "change": "status",
                    "from_value": frm,
                    "to_value": to,
                    "by": by[0] if by else "USR-26-000001",
                    "extracted_at": ts(self.extracted),
                    "run_id": "r1",
                }
            )

    def version(self, id, lin, updated, status, *, project=None, assignee=None):
        """An earlier state of a task added with ``task``, as the extractor saw it then."""
        current = next(row for row in self.tasks if row["id"] == id)
        self.versions.append(
            {
                **{
                    k: v for k, v in current.items() if k not in ("history_digest", "missing_since")
                },
                "service_line_id": lin,
                "project_id": project,
                "status": status,
                "assignee_id": assignee,
                "updated_at": ts(updated),
                "extracted_at": ts(updated),
            }
        )

    def write(self, data_dir: Path) -> Path:
        """Commit the tasks, history and versions as one snapshot of ``data_dir``'s lake."""
        extracted = {"extracted_at": ts(self.extracted)}
        rows = {
            "tasks": [
                {**r, **extracted, "workspace_id": self.workspace_of[r["id"]]} for r in self.tasks
            ],
            "task_history": [
                {**r, **extracted, "workspace_id": self.workspace_of[r["task_id"]]}
                for r in self.history
            ],
            "task_versions": [
                {**r, "workspace_id": self.workspace_of[r["id"]]} for r in self.versions
            ],
        }
        tables = {d: pa.Table.from_pylist(r, schema=SCHEMAS[d]) for d, r in rows.items()}
        open_lake(data_dir).replace(f"fixture-{uuid.uuid4().hex[:8]}", tables, command="fixture")
        return data_dir


def one_done_task() -> Lake:
    """The smallest lake with a number in it: one task of LIN-26-000001, done on Tue 2026-01-06."""
    lake = Lake()
    lake.task(
        "TSK-26-000001",
        "LIN-26-000001",
        "2026-01-05 09:00",
        "done",
        changes=[("2026-01-06 10:00", "backlog", "done")],
    )
    return lake
