"""One extraction run: list every configured workspace, fetch what changed, commit a snapshot.

Listing and fetching are pipelined: each workspace's cursor chain runs as its own coroutine and
puts the ids of new or changed tasks on a bounded queue, from which ``concurrency`` workers fetch
details as soon as the first page arrives. Only ids and timestamps of the lake's tasks are held in
memory; rows stream to Parquet in batches.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from scrums_velocity.errors import ApiAuthError, ConfigError, ExtractError, VelocityError
from scrums_velocity.extract.client import ClientSettings, NotFound, TasksApi
from scrums_velocity.extract.records import (
    Rejected,
    TaskDetail,
    count_unknown_values,
    history_digest,
    history_key,
    parse_detail,
    parse_summary,
)
from scrums_velocity.lake import (
    CheckpointKey,
    Damage,
    Lake,
    LakeDamaged,
    Refresh,
    RunRecord,
    Snapshot,
    StagingWriter,
    WriterLease,
    new_run_id,
    open_lake,
)
from scrums_velocity.lake import staging as checkpoints
from scrums_velocity.lake.staging import saved_details
from scrums_velocity.lock import data_dir_lock
from scrums_velocity.observe import Reporter, event

PAGE_LIMIT = 100


@dataclass(frozen=True)
class ExtractOptions:
    data_dir: Path
    workspaces: tuple[str, ...]
    service_lines: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    full: bool = False
    strict: bool = False
    lake: str | None = None  # a path or s3:// URL; default <data-dir>/lake

    def __post_init__(self) -> None:
        if not self.workspaces:
            raise ConfigError(
                "no workspace to extract: pass --workspace WS-... (or set workspaces)"
            )
        if self.service_lines and self.projects:
            raise ConfigError("narrow by service line or by project, not both")


@dataclass
class ExtractResult(RunRecord):
    """What one extraction did: its run manifest row (:class:`RunRecord`) and more."""

    snapshot: Snapshot | None = None
    files_set_aside: int = 0  # damaged lake files moved to _velocity/damaged/ (mode rebuild)

    def summary(self) -> str:
        retries = ", ".join(f"{k}={v}" for k, v in sorted(self.retries.items())) or "none"
        return (
            f"run {self.run_id} ({self.mode}) {self.outcome}: {self.pages} pages, "
            f"{self.tasks_listed} tasks listed ({self.tasks_new} new, "
            f"{self.tasks_changed} changed, {self.tasks_missing} missing), "
            f"{self.details_fetched} details fetched"
            + (
                f" (+{self.details_reused} reused from run {self.resumed_from})"
                if self.resumed_from
                else ""
            )
            + f", {self.history_rows_added} history rows added, {self.rejects} rejected, "
            f"{self.requests} requests, retries: {retries}, {self.duration_s:.1f} s"
            + (
                f"; the lake was damaged: {self.files_set_aside} files set aside and "
                "everything refetched"
                if self.files_set_aside
                else ""
            )
        )


@dataclass(frozen=True)
class _Known:
    updated_at: datetime
    history_count: int
    history_digest: str | None


class _Run:
    def __init__(
        self,
        api: TasksApi,
        options: ExtractOptions,
        lake: Lake,
        lease: WriterLease,
        head: Snapshot | None,
        run_id: str,
        reporter: Reporter,
        staging: Path,
        resumed_from: str | None,
    ) -> None:
        self.api = api
        self.options = options
        self.lake = lake
        self.lease = lease
        self.head = head
        self.run_id = run_id
        self.reporter = reporter
        self.started = datetime.now(UTC)
        self.result = ExtractResult(
            run_id,
            "extract",
            started_at=self.started,
            mode="full" if options.full else "incremental",
            workspaces=list(options.workspaces),
            resumed_from=resumed_from,
        )
        self.damaged: list[Damage] = []  # set aside at commit, then the lake is rebuilt
        state = lake.load_state(head)
        self.known: dict[str, _Known] = {
            tid: _Known(upd, hc or 0, dig)
            for tid, upd, hc, dig in state.select(
                "id", "updated_at", "history_count", "history_digest"
            ).iter_rows()
        }
        del state
        self.staging = staging
        self.writer = StagingWriter(self.staging, run_id)
        # Details a killed run fetched and checkpointed: reused while unchanged since.
        self.saved: dict[str, datetime] = saved_details(staging) if resumed_from else {}
        self.t0 = time.monotonic()
        self.seen: dict[str, set[str]] = {ws: set() for ws in options.workspaces}
        self.unknown: Counter = Counter()
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=max(256, api.settings.concurrency * 8))
        self.queued = 0

    # ---- listing -------------------------------------------------------------------------------
    def _chains(self) -> list[tuple[str, dict[str, str]]]:
        chains = []
        for ws in self.options.workspaces:
            if self.options.service_lines:
                chains += [(ws, {"service_line_id": s}) for s in self.options.service_lines]
            elif self.options.projects:
                chains += [(ws, {"project_id": p}) for p in self.options.projects]
            else:
                chains.append((ws, {}))
        return chains

    async def list_chain(self, ws: str, narrow: dict[str, str]) -> None:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"workspace_id": ws, "limit": PAGE_LIMIT, **narrow}
            if cursor:
                params["cursor"] = cursor
            try:
                body = await self.api.get("/v1/tasks", params)
            except ApiAuthError as exc:
                raise ApiAuthError(f"the API refused access to workspace {ws}: {exc}") from None
            except NotFound as exc:
                raise ExtractError(f"listing workspace {ws}: {exc}") from None
            data, meta = _page_parts(body, ws)
            self.result.pages += 1
            for item in data:
                await self._listed(ws, item)
            self._progress()
            if not meta.get("has_more"):
                return
            cursor = meta.get("cursor")
            if not isinstance(cursor, str) or not cursor:
                raise ExtractError(f"listing workspace {ws}: has_more is true but no cursor")

    async def _listed(self, ws: str, item: Any) -> None:
        try:
            summary = parse_summary(item)
        except Rejected as exc:
            task_id = item.get("id") if isinstance(item, dict) else None
            self.reject(ws, "list", task_id if isinstance(task_id, str) else None, exc.reason, item)
            return
        self.seen[ws].add(summary.id)
        self.result.tasks_listed += 1
        known = self.known.get(summary.id)
        if known is None:
            self.result.tasks_new += 1
        elif summary.updated_at is None or summary.updated_at != known.updated_at:
            self.result.tasks_changed += 1
        else:
            self.result.tasks_unchanged += 1
            if not self.options.full:
                return
        if summary.updated_at is not None and self.saved.get(summary.id) == summary.updated_at:
            self.result.details_reused += 1  # checkpointed by the run this one resumes
            return
        self.queued += 1
        await self.queue.put((ws, summary.id))

    # ---- details -------------------------------------------------------------------------------
    async def fetch_worker(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            ws, task_id = item
            try:
                payload = await self.api.get(f"/v1/tasks/{task_id}")
            except NotFound:
                self.result.details_not_found += 1  # deleted since listed: the next listing tells
                continue
            except ApiAuthError as exc:
                raise ApiAuthError(
                    f"the API refused access to {task_id} in workspace {ws}: {exc}"
                ) from None
            self.result.details_fetched += 1
            try:
                detail = parse_detail(payload, task_id)
                if detail.workspace_id != ws:
                    raise Rejected(f"listed in {ws} but its workspace_id is {detail.workspace_id}")
            except Rejected as exc:
                data = payload.get("data") if isinstance(payload, dict) else payload
                self.reject(ws, "detail", task_id, exc.reason, data)
                self.writer.detail_done()
                continue
            self.record(ws, detail, payload["data"])
            self.writer.detail_done()  # checkpoints every 500 details or 5 s
            self._progress()

    def record(self, ws: str, detail: TaskDetail, raw: dict[str, Any]) -> None:
        count_unknown_values(detail, self.unknown)
        now = datetime.now(UTC)
        known = self.known.get(detail.id)
        entries, seen_keys = [], set()
        for h in detail.history:
            key = history_key(h)
            if key not in seen_keys:
                seen_keys.add(key)
                entries.append(h)
        digest = history_digest(entries)
        base = {
            "id": detail.id,
            "service_line_id": detail.service_line_id,
            "project_id": detail.project_id,
            "title": detail.title,
            "description": detail.description,
            "status": detail.status,
            "priority": detail.priority,
            "assignee_id": detail.assignee_id,
            "external_id": detail.external_id,
            "external_source": detail.external_source,
            "external_url": detail.external_url,
            "created_at": detail.created_at,
            "updated_at": detail.updated_at,
            "history_count": len(entries),
        }
        raw_json = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        extra = {"extracted_at": now, "run_id": self.run_id, "raw": raw_json}
        self.writer.add(
            "tasks", ws, {**base, **extra, "history_digest": digest, "missing_since": None}
        )
        if known is None or known.updated_at != detail.updated_at:
            self.writer.add("task_versions", ws, {**base, **extra})
            self.result.versions_added += 1
        # History: append what the lake does not hold yet.
        if known is None or known.history_count == 0:
            fresh = entries
        elif (
            len(entries) >= known.history_count
            and history_digest(entries[: known.history_count]) == known.history_digest
        ):
            fresh = entries[known.history_count :]
        else:  # the API rewrote this task's history: keep what we had, add what is new
            event("extract.history_rewritten", task_id=detail.id, workspace_id=ws)
            have = self._lake_history_keys(detail.id)
            fresh = [h for h in entries if history_key(h) not in have]
        for h in fresh:
            self.writer.add(
                "task_history",
                ws,
                {
                    "task_id": detail.id,
                    "at": h.at,
                    "change": h.change,
                    "from_value": h.from_value,
                    "to_value": h.to_value,
                    "by": h.by,
                    "extracted_at": now,
                    "run_id": self.run_id,
                },
            )
        self.result.history_rows_added += len(fresh)

    def _lake_history_keys(self, task_id: str) -> set[tuple]:
        history = self.lake.history_of(task_id, self.head)
        if history.is_empty():
            return set()
        return set(history.select("at", "change", "from_value", "to_value", "by").iter_rows())

    def reject(self, ws: str, stage: str, task_id: str | None, reason: str, payload: Any) -> None:
        self.result.rejects += 1
        self.writer.add(
            "rejects",
            ws,
            {
                "run_id": self.run_id,
                "rejected_at": datetime.now(UTC),
                "stage": stage,
                "task_id": task_id,
                "reason": reason,
                "payload": json.dumps(payload, ensure_ascii=False, default=str),
            },
        )
        event("extract.reject", workspace_id=ws, stage=stage, task_id=task_id or "-", reason=reason)

    def _progress(self) -> None:
        r = self.result
        retries = sum(self.api.stats.retries.values())
        note = f"retries {retries}" if retries else ""
        done = r.details_fetched + r.details_not_found + r.rejects
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        rate = r.details_fetched / elapsed
        self.reporter.bar("list", "Listing tasks (pages)", r.pages, None, note)
        self.reporter.bar("fetch", "Fetching details", done, self.queued, note)
        self.reporter.update(
            pages=r.pages,
            listed=r.tasks_listed,
            queued=self.queued,
            fetched=r.details_fetched,
            reused=r.details_reused,
            rate_per_s=round(rate, 1),
            eta_s=round((self.queued - done) / rate, 0) if rate > 0 else None,
            checkpoints=self.writer.checkpoints,
            rejects=r.rejects,
            retries=retries,
        )

    # ---- the whole run -------------------------------------------------------------------------
    async def run(self) -> None:
        workers = max(1, self.api.settings.concurrency)
        async with asyncio.TaskGroup() as tg:
            fetchers = [tg.create_task(self.fetch_worker()) for _ in range(workers)]
            listers = [tg.create_task(self.list_chain(ws, n)) for ws, n in self._chains()]
            await asyncio.gather(*listers)
            for _ in fetchers:
                await self.queue.put(None)

    def commit(self, outcome: str, error: str | None) -> Snapshot:
        r = self.result
        r.outcome, r.error = outcome, error
        narrowed = bool(self.options.service_lines or self.options.projects)
        refreshes = []
        if outcome == "succeeded":
            self.writer.close()
            refreshes = [
                Refresh(ws, complete=not narrowed, seen_ids=frozenset(ids))
                for ws, ids in self.seen.items()
            ]
        else:
            # A failed run commits only its row and keeps its checkpoints: the next run resumes.
            self.writer.checkpoint()
        r.requests = self.api.stats.requests
        r.retries = dict(self.api.stats.retries)
        r.http_statuses = dict(self.api.stats.statuses)
        r.unknown_values = dict(self.unknown)
        r.stages = {"extract": outcome}
        r.finished_at = datetime.now(UTC)
        r.duration_s = (r.finished_at - self.started).total_seconds()

        def inspect(snapshot: Snapshot) -> dict[str, int]:
            if outcome != "succeeded":
                return {}
            checked = self.lake.verify_history(snapshot, list(self.options.workspaces))
            r.history_mismatches = checked["history_mismatches"]
            r.tasks_missing = checked["tasks_missing"]
            if r.history_mismatches:
                event("extract.history_mismatch", tasks=r.history_mismatches)
            return checked

        if outcome == "succeeded" and r.resumed_from:
            # what the resumed run's checkpoints held counts as added by this run, once
            r.history_rows_added = checkpoints.unique_rows(self.staging, "task_history")
            r.versions_added = checkpoints.unique_rows(self.staging, "task_versions")
        rebuild = outcome == "succeeded" and bool(self.damaged)
        if rebuild:
            self.lake.quarantine(self.lease, self.damaged, self.run_id)
            r.files_set_aside = len(self.damaged)
        snapshot = self.lake.commit(
            self.lease,
            self.run_id,
            self.staging if outcome == "succeeded" else None,
            refreshes,
            r.row(),
            self.started,
            inspect=inspect,
            rebuild=rebuild,
            resumed=r.resumed_from is not None,
        )
        if outcome == "succeeded":
            shutil.rmtree(self.staging, ignore_errors=True)
        r.snapshot = snapshot
        return snapshot


def _page_parts(body: Any, ws: str) -> tuple[list[Any], dict[str, Any]]:
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("data"), list)
        or not isinstance(body.get("meta"), dict)
    ):
        raise ExtractError(f"listing workspace {ws}: the response has no data list or meta object")
    return body["data"], body["meta"]


async def extract_async(
    settings: ClientSettings,
    options: ExtractOptions,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    reporter: Reporter | None = None,
) -> ExtractResult:
    """Run one extraction into the lake (the caller holds the data-dir lock)."""
    lake = open_lake(options.data_dir, options.lake)
    run_id = new_run_id(datetime.now(UTC))
    t0 = time.monotonic()
    event(
        "extract.start",
        run_id=run_id,
        mode="full" if options.full else "incremental",
        workspaces=",".join(options.workspaces),
        api=settings.api_url,
    )
    with reporter or Reporter("extract") as rep, lake.lease(run_id) as lease:
        head = lake.prepare(lease)
        damaged = lake.damage(head) if head is not None else []
        if damaged:
            assert head is not None
            if options.service_lines or options.projects:
                raise LakeDamaged(
                    head,
                    damaged,
                    "run 'velocity extract --full' without --service-line or --project to "
                    "rebuild it from the API",
                )
            # Refetch everything; the damage is set aside when the run commits (a run that
            # fails leaves the lake as it found it).
            event(
                "extract.lake_damaged",
                snapshot=head.run_id,
                files=len(damaged),
                first=str(damaged[0]),
            )
        key = CheckpointKey(
            api_url=settings.api_url,
            workspaces=tuple(options.workspaces),
            service_lines=tuple(options.service_lines),
            projects=tuple(options.projects),
            lake=lake.location.url,
            base_snapshot=_data_versions(lease.base),
        )
        # A killed or failed run's checkpoints are resumed when they were made against the
        # same API, workspaces, lake data and code; never over a damaged lake (it is rebuilt).
        staging, resumed_from = checkpoints.start(
            options.data_dir, run_id, key, full=options.full or bool(damaged)
        )
        if resumed_from:
            event("extract.resume", run_id=run_id, resumed_from=resumed_from)
        async with TasksApi(settings, transport=transport) as api:
            run = _Run(
                api,
                options,
                lake,
                lease,
                None if damaged else head,
                run_id,
                rep,
                staging,
                resumed_from,
            )
            run.damaged = damaged
            if damaged:
                run.result.mode = "rebuild"
            try:
                await run.run()
            except (VelocityError, ExceptionGroup) as exc:
                # Not `except*`: before 3.11.4, raising inside it wraps the error in a new group.
                error = first_velocity_error(exc)
                if error is None:
                    raise
                run.commit("failed", str(error))
                event("extract.failed", run_id=run_id, error=str(error))
                raise error from None
            run.commit("succeeded", None)
    result = run.result
    result.duration_s = time.monotonic() - t0
    event("extract.done", run_id=run_id, **_summary_fields(result))
    if options.strict and result.rejects:
        raise ExtractError(
            f"{result.rejects} records were rejected (see the rejects dataset); "
            f"the rest of run {run_id} was committed"
        )
    return result


def _data_versions(versions: dict[str, int] | None) -> str | None:
    """The data tables' versions a run builds on: what a checkpoint's rows were computed from
    (a run that only added a runs row, like a failed one, leaves them as they were)."""
    if versions is None:
        return None
    return ",".join(f"{k}={v}" for k, v in sorted(versions.items()) if k != "runs")


def first_velocity_error(exc: BaseException) -> VelocityError | None:
    """The first expected failure in ``exc`` or, depth first, in the groups it holds; None if
    something unexpected (a bug) is among them."""
    if isinstance(exc, VelocityError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        found = [first_velocity_error(e) for e in exc.exceptions]
        if any(f is None for f in found):
            return None
        return found[0]
    return None


def _summary_fields(r: ExtractResult) -> dict[str, Any]:
    return {
        "pages": r.pages,
        "listed": r.tasks_listed,
        "new": r.tasks_new,
        "changed": r.tasks_changed,
        "missing": r.tasks_missing,
        "fetched": r.details_fetched,
        "rejects": r.rejects,
        "history_added": r.history_rows_added,
        "history_mismatches": r.history_mismatches,
        "requests": r.requests,
        "retries": r.retries,
        "duration_s": r.duration_s,
    }


def extract(
    settings: ClientSettings,
    options: ExtractOptions,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    lock: bool = True,
) -> ExtractResult:
    """The library entry point behind ``velocity extract``: lock, run, commit."""
    if not lock:
        return asyncio.run(extract_async(settings, options, transport=transport))
    with data_dir_lock(options.data_dir, "velocity extract"):
        return asyncio.run(extract_async(settings, options, transport=transport))
