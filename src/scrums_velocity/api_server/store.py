"""The mock API's in-memory task store: tasks, indexes, cursors and delivery-velocity counters.

Ordering is by ``seq``, an immutable integer given to each task when it is created (creation order).
A cursor names the last ``seq`` a page returned plus a fingerprint of the query it belongs to, and
is signed, so that paging never skips or repeats a task however other tasks change meanwhile, and
a tampered or foreign cursor is refused.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from scrums_velocity.api_server.synth import STATUSES, Dataset, Workspace, iso_ms

TERMINAL = ("done", "cancelled")


class StoreError(Exception):
    """A request the store refuses; ``status`` and ``code`` become the JSON error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(slots=True)
class Task:
    seq: int
    id: str
    workspace_id: str
    service_line_id: str | None
    project_id: str | None
    title: str
    description: str | None
    status: str
    priority: str
    assignee_id: str | None
    external_id: str | None
    external_source: str | None
    external_url: str | None
    created_ms: int
    updated_ms: int
    history: list[tuple[int, str, str, str]] = field(default_factory=list)  # at, from, to, by

    def summary(self) -> dict:
        """The record as ``GET /v1/tasks`` lists it (no description, URL or history)."""
        return {
            "id": self.id,
            "workspace_id": self.workspace_id,
            "service_line_id": self.service_line_id,
            "project_id": self.project_id,
            "title": self.title,
            "status": self.status,
            "priority": self.priority,
            "assignee_id": self.assignee_id,
            "external_id": self.external_id,
            "external_source": self.external_source,
            "created_at": iso_ms(self.created_ms),
            "updated_at": iso_ms(self.updated_ms),
        }

    def detail(self) -> dict:
        """The record as ``GET /v1/tasks/{id}`` returns it."""
        d = self.summary()
        d["description"] = self.description
        d["external_url"] = self.external_url
        d["history"] = [
            {"at": iso_ms(at), "change": "status", "from": f, "to": t, "by": by}
            for at, f, t, by in self.history
        ]
        return d


@dataclass
class Counter:
    """Delivery-velocity counters of one LIN (a documented server extension)."""

    done: int = 0  # tasks whose current status is done
    cancelled: int = 0  # tasks whose current status is cancelled
    done_transitions: int = 0  # every move into done, ever (monotone)
    cancelled_transitions: int = 0  # every move into cancelled, ever (monotone)

    def as_dict(self) -> dict[str, int]:
        return {
            "done": self.done,
            "cancelled": self.cancelled,
            "done_transitions": self.done_transitions,
            "cancelled_transitions": self.cancelled_transitions,
        }


@dataclass(frozen=True)
class Query:
    workspace_id: str | None
    service_line_id: str | None
    project_id: str | None
    assignee_id: str | None
    statuses: frozenset[str] | None
    priorities: frozenset[str] | None

    def fingerprint(self) -> str:
        parts = [
            self.workspace_id or "",
            self.service_line_id or "",
            self.project_id or "",
            self.assignee_id or "",
            ",".join(sorted(self.statuses or ())),
            ",".join(sorted(self.priorities or ())),
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]

    def matches(self, t: Task) -> bool:
        return (
            (self.workspace_id is None or t.workspace_id == self.workspace_id)
            and (self.service_line_id is None or t.service_line_id == self.service_line_id)
            and (self.project_id is None or t.project_id == self.project_id)
            and (self.assignee_id is None or t.assignee_id == self.assignee_id)
            and (self.statuses is None or t.status in self.statuses)
            and (self.priorities is None or t.priority in self.priorities)
        )


class TaskStore:
    def __init__(self, dataset: Dataset, *, clock=time.time) -> None:
        self.dataset = dataset
        self._clock = clock
        self._secret = hashlib.sha256(f"cursor-secret:{dataset.seed}".encode()).digest()
        self.workspaces: dict[str, Workspace] = {w.id: w for w in dataset.workspaces}
        self.lin_workspace: dict[str, str] = {s.id: s.workspace_id for s in dataset.service_lines}
        self.tasks: list[Task] = []  # position == seq
        self.by_id: dict[str, Task] = {}
        self._index: dict[str, dict[str, list[int]]] = {
            "workspace_id": defaultdict(list),
            "service_line_id": defaultdict(list),
            "project_id": defaultdict(list),
            "assignee_id": defaultdict(list),
        }
        self.counters: dict[str, Counter] = defaultdict(Counter)
        self._year_seq: dict[int, int] = defaultdict(int)
        self._ext_seq: dict[tuple[str, str], int] = defaultdict(lambda: 1000)
        self._load(dataset)

    # ---- loading ---------------------------------------------------------------------------
    def _load(self, ds: Dataset) -> None:
        hist: dict[int, list[tuple[int, str, str, str]]] = defaultdict(list)
        for seq, at, f, t, by in ds.history.select(
            "seq", "at_ms", "from_status", "to_status", "by"
        ).iter_rows():
            hist[seq].append((at, f, t, by))
        for row in ds.tasks.select(Task.__slots__[:-1]).iter_rows():
            task = Task(*row, history=hist.pop(row[0], []))  # type: ignore[misc]
            self._append(task)
            year = int(task.id[4:6])
            self._year_seq[year] = max(self._year_seq[year], int(task.id[7:]))
            if task.external_source:
                key = (task.workspace_id, task.external_source)
                digits = "".join(ch for ch in task.external_id or "" if ch.isdigit())
                self._ext_seq[key] = max(self._ext_seq[key], int(digits[-7:] or 0))
            if task.service_line_id:
                c = self.counters[task.service_line_id]
                c.done_transitions += sum(1 for h in task.history if h[2] == "done")
                c.cancelled_transitions += sum(1 for h in task.history if h[2] == "cancelled")
                if not task.history and task.status in TERMINAL:  # imported already closed
                    if task.status == "done":
                        c.done_transitions += 1
                    else:
                        c.cancelled_transitions += 1
                self._count(task.service_line_id, task.status, +1)

    def _append(self, task: Task) -> None:
        assert task.seq == len(self.tasks)
        self.tasks.append(task)
        self.by_id[task.id] = task
        for name, index in self._index.items():
            value = getattr(task, name)
            if value is not None:
                index[value].append(task.seq)  # seq grows, so lists stay sorted

    def _reindex(self, task: Task, name: str, old: str | None, new: str | None) -> None:
        index = self._index[name]
        if old is not None:
            seqs = index[old]
            del seqs[bisect.bisect_left(seqs, task.seq)]
        if new is not None:
            bisect.insort(index[new], task.seq)

    def _count(self, lin: str | None, status: str, delta: int) -> None:
        if lin is None or status not in TERMINAL:
            return
        c = self.counters[lin]
        if status == "done":
            c.done += delta
        else:
            c.cancelled += delta

    # ---- time ------------------------------------------------------------------------------
    def now_ms(self, after: int = 0) -> int:
        """Wall-clock milliseconds, strictly after ``after`` so updated_at always moves."""
        return max(int(self._clock() * 1000), after + 1)

    # ---- cursors ---------------------------------------------------------------------------
    def encode_cursor(self, query: Query, last_seq: int) -> str:
        payload = json.dumps({"k": last_seq, "q": query.fingerprint()}, separators=(",", ":"))
        sig = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:24]
        raw = f"{payload}.{sig}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode_cursor(self, query: Query, cursor: str) -> int:
        bad = StoreError(400, "invalid_cursor", "cursor is malformed or was not issued by this API")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            payload, sig = raw.rsplit(".", 1)
            want = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:24]
            if not hmac.compare_digest(sig, want):
                raise bad
            data = json.loads(payload)
            last_seq = data["k"]
        except StoreError:
            raise
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise bad from None
        if data.get("q") != query.fingerprint():
            raise StoreError(
                400, "invalid_cursor", "cursor belongs to a different query (filters changed)"
            )
        if not isinstance(last_seq, int) or last_seq < -1:
            raise bad
        return last_seq

    # ---- listing ---------------------------------------------------------------------------
    def _candidates(self, query: Query) -> list[int] | None:
        """The narrowest index list for the query (sorted seqs), or None to scan all."""
        best: list[int] | None = None
        for name in ("service_line_id", "project_id", "assignee_id", "workspace_id"):
            value = getattr(query, name)
            if value is None:
                continue
            seqs = self._index[name].get(value, [])
            if best is None or len(seqs) < len(best):
                best = seqs
        return best

    def list(self, query: Query, limit: int, cursor: str | None) -> tuple[list[Task], str | None]:
        after = self.decode_cursor(query, cursor) if cursor else -1
        candidates = self._candidates(query)
        out: list[Task] = []
        seqs: Iterable[int]
        if candidates is None:
            seqs = range(after + 1, len(self.tasks))
        else:
            seqs = candidates[bisect.bisect_right(candidates, after) :]
        it: Iterator[int] = iter(seqs)
        last = after
        for seq in it:
            task = self.tasks[seq]
            if not query.matches(task):
                continue
            if len(out) == limit:
                # One more match exists: there is a next page, starting after ``last``.
                return out, self.encode_cursor(query, last)
            out.append(task)
            last = seq
        return out, None

    # ---- writes ----------------------------------------------------------------------------
    def create(self, fields: dict, by: str) -> Task:
        ws_id = fields.get("workspace_id")
        lin = fields.get("service_line_id")
        if lin is not None:
            lin_ws = self.lin_workspace.get(lin)
            if lin_ws is None:
                raise StoreError(404, "not_found", f"service line {lin} not found")
            if ws_id is not None and ws_id != lin_ws:
                raise StoreError(
                    400, "invalid_service_line", f"{lin} does not belong to workspace {ws_id}"
                )
            ws_id = lin_ws
        if ws_id is None:
            raise StoreError(
                400, "missing_parameter", "workspace_id or service_line_id is required"
            )
        ws = self.workspaces.get(ws_id)
        if ws is None:
            raise StoreError(404, "not_found", f"workspace {ws_id} not found")
        if lin is None and ws.require_task_service_line:
            raise StoreError(
                400,
                "service_line_required",
                f"workspace {ws_id} requires service_line_id (setting require_task_service_line)",
            )
        now = self.now_ms()
        year = int(iso_ms(now)[2:4])
        self._year_seq[year] += 1
        ext_id = ext_source = ext_url = None
        integ = ws.active_integration
        if integ is not None:
            key = (ws.id, integ.source)
            self._ext_seq[key] += 1
            n = self._ext_seq[key]
            ext_source = integ.source
            if integ.source == "jira":
                ext_id = f"{ws.key}-{n}"
                ext_url = f"https://{integ.slug}.atlassian.net/browse/{ext_id}"
            elif integ.source == "clickup":
                ext_id = f"86{n:07d}"
                ext_url = f"https://app.clickup.com/t/{ext_id}"
            else:
                ext_id = f"{ws.key}-{n}"
                ext_url = f"https://linear.app/{integ.slug}/issue/{ext_id}"
        task = Task(
            seq=len(self.tasks),
            id=f"TSK-{year:02d}-{self._year_seq[year]:06d}",
            workspace_id=ws.id,
            service_line_id=lin,
            project_id=fields.get("project_id"),
            title=fields["title"],
            description=fields.get("description"),
            status=fields.get("status") or "backlog",
            priority=fields.get("priority") or "medium",
            assignee_id=fields.get("assignee_id"),
            external_id=ext_id,
            external_source=ext_source,
            external_url=ext_url,
            created_ms=now,
            updated_ms=now,
        )
        self._append(task)
        if task.status in TERMINAL and lin is not None:
            c = self.counters[lin]
            if task.status == "done":
                c.done_transitions += 1
            else:
                c.cancelled_transitions += 1
            self._count(lin, task.status, +1)
        return task

    def remove(self, task_id: str) -> None:
        """Delete a task (no endpoint: the API has none; tests use it to simulate deletions)."""
        task = self.by_id.pop(task_id)
        for name in self._index:
            self._reindex(task, name, getattr(task, name), None)
        self._count(task.service_line_id, task.status, -1)

    def update(self, task: Task, fields: dict, by: str) -> Task:
        if "service_line_id" in fields:
            new_lin = fields["service_line_id"]
            if new_lin is None:
                if self.workspaces[task.workspace_id].require_task_service_line:
                    raise StoreError(
                        400,
                        "service_line_required",
                        f"workspace {task.workspace_id} requires service_line_id",
                    )
            elif self.lin_workspace.get(new_lin) != task.workspace_id:
                raise StoreError(
                    400,
                    "invalid_service_line",
                    f"{new_lin} is not a service line of workspace {task.workspace_id}",
                )
        now = self.now_ms(after=task.updated_ms)
        old_lin, old_status = task.service_line_id, task.status
        for name in ("project_id", "assignee_id", "service_line_id"):
            if name in fields and fields[name] != getattr(task, name):
                self._reindex(task, name, getattr(task, name), fields[name])
        for name, value in fields.items():
            setattr(task, name, value)
        if task.status != old_status:
            task.history.append((now, old_status, task.status, by))
            if task.status in TERMINAL and task.service_line_id is not None:
                c = self.counters[task.service_line_id]
                if task.status == "done":
                    c.done_transitions += 1
                else:
                    c.cancelled_transitions += 1
        self._count(old_lin, old_status, -1)
        self._count(task.service_line_id, task.status, +1)
        task.updated_ms = now
        return task


def validate_status(value: str) -> None:
    if value not in STATUSES:
        raise StoreError(
            400, "invalid_parameter", f"status must be one of {', '.join(STATUSES)}; got {value!r}"
        )
