"""Deterministic synthetic delivery data for the mock Tasks API.

Everything is generated column-wise with numpy (no Python loop per task), so a million tasks take
seconds and memory grows linearly with the data. The result is a :class:`Dataset`: the workspaces,
service lines, projects, people and tokens as small Python objects, and the tasks and their status
history as two polars frames (timestamps as epoch milliseconds, UTC).

What makes the data realistic enough to test velocity models on:

* per-LIN throughput differs (task arrival is a Poisson process with a per-LIN rate, so weekly
  counts are Poisson-like); lead times are log-normal with a per-LIN median;
* histories follow backlog → in_progress → in_review → done, some skip a step, some are reopened
  after done, some are cancelled, some tasks arrive already done with no history (imports);
* "slowdown" LINs complete only a quarter of their work in the last three weeks, and one LIN is
  younger than four weeks;
* about 5% of tasks have no service line (only in a workspace whose ``require_task_service_line``
  setting is off); external bindings are mixed (jira, clickup, linear, none) and a few probable
  duplicates exist (the same title created in both systems within days);
* agents (AGT-*) make a share of the status changes, more of the closures;
* titles include unicode, quotes, HTML/script payloads and a 2,000-character title.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

STATUSES = ("backlog", "in_progress", "in_review", "done", "cancelled")
PRIORITIES = ("low", "medium", "high", "critical")
SOURCES = ("jira", "clickup", "linear")

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS

# Titles a reporter must show as text, never interpret.
HOSTILE_TITLES = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(document.cookie)>',
    "Robert'); DROP TABLE tasks;-- & \"quotes\" 'too'",
    "Ünïcödé 🚀 修复登录错误 — עברית ‮override‬",
    ("Fix a very long title " * 100)[:1997] + "end",  # 2,000 characters
)

_VERBS = (
    "Implement",
    "Fix",
    "Refactor",
    "Add",
    "Remove",
    "Migrate",
    "Document",
    "Investigate",
    "Optimise",
    "Harden",
    "Upgrade",
    "Instrument",
    "Test",
    "Review",
    "Automate",
    "Deprecate",
)
_OBJECTS = (
    "idempotency key validation",
    "retry policy",
    "rate limiter",
    "audit logging",
    "distributed tracing",
    "schema migration",
    "feature flag",
    "error budget alert",
    "cache invalidation",
    "webhook signature check",
    "pagination",
    "session timeout",
    "memory leak",
    "dependency pinning",
    "load test",
    "access control list",
    "backup job",
    "search index",
    "CSV export",
    "onboarding flow",
)
_COMPONENTS = (
    "payment endpoint",
    "billing service",
    "worker process",
    "mobile app",
    "admin console",
    "auth gateway",
    "reporting pipeline",
    "notification service",
    "checkout page",
    "data lake",
    "public API",
    "scheduler",
    "invoice generator",
    "customer portal",
)
_QUALIFIERS = (
    "",
    "for EU customers",
    "in staging",
    "behind a feature flag",
    "for the Q3 audit",
    "after the incident",
    "for mobile clients",
    "in the batch path",
    "for enterprise tenants",
    "before the migration",
    "for partner integrations",
    "under load",
    "for accessibility",
    "in the legacy flow",
    "for GDPR",
    "for the new region",
    "in the nightly job",
    "for SSO users",
)
_WS_NAMES = ("Apex Digital", "Nova Health", "Orbit Logistics", "Helix Finance", "Quill Media")
_WS_KEYS = ("APEX", "NOVA", "ORBT", "HLX", "QUIL")
_LIN_NAMES = (
    "Payments",
    "Platform",
    "Mobile",
    "Data",
    "Identity",
    "Growth",
    "Checkout",
    "Search",
    "Billing",
    "Messaging",
    "Infra",
    "Analytics",
    "Onboarding",
    "Support Tools",
    "Risk",
)


@dataclass(frozen=True)
class Integration:
    source: str  # jira | clickup | linear
    active: bool
    slug: str


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    key: str
    require_task_service_line: bool
    integrations: tuple[Integration, ...]

    @property
    def active_integration(self) -> Integration | None:
        return next((i for i in self.integrations if i.active), None)


@dataclass(frozen=True)
class ServiceLine:
    id: str
    workspace_id: str
    name: str
    profile: str  # steady | slowdown | young
    weekly_rate: float
    first_activity_ms: int


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    service_line_ids: tuple[str, ...]


@dataclass(frozen=True)
class Principal:
    """Who a bearer token acts as, and which workspaces it may read and write."""

    identity: str  # USR-* or AGT-*
    workspace_ids: frozenset[str]

    def __repr__(self) -> str:  # never print a token; this object holds none, but be explicit
        return f"Principal(identity={self.identity!r}, workspaces={sorted(self.workspace_ids)!r})"


@dataclass
class Dataset:
    seed: int
    now_ms: int
    weeks: int
    workspaces: list[Workspace]
    service_lines: list[ServiceLine]
    projects: list[Project]
    users: dict[str, list[str]]  # workspace_id -> USR-* ids
    agents: dict[str, list[str]]  # workspace_id -> AGT-* ids
    tokens: dict[str, Principal] = field(repr=False)
    tasks: pl.DataFrame = field(repr=False)
    history: pl.DataFrame = field(repr=False)

    @property
    def admin_token(self) -> str:
        """A token that may read and write every workspace (the one ``mock-api`` prints)."""
        return next(
            t
            for t, p in self.tokens.items()
            if p.identity.startswith("USR-") and len(p.workspace_ids) == len(self.workspaces)
        )

    @property
    def agent_token(self) -> str:
        return next(t for t, p in self.tokens.items() if p.identity.startswith("AGT-"))

    def workspace_token(self, workspace_id: str) -> str:
        """A token restricted to one workspace."""
        return next(
            t for t, p in self.tokens.items() if p.workspace_ids == frozenset({workspace_id})
        )

    def write_parquet(self, directory: Path) -> dict[str, Path]:
        """Write the tasks and history frames (plus the dimension tables) as Parquet files."""
        directory.mkdir(parents=True, exist_ok=True)
        out = {"tasks": directory / "tasks.parquet", "history": directory / "history.parquet"}
        self.tasks.write_parquet(out["tasks"])
        self.history.write_parquet(out["history"])
        return out


def _token(seed: int, label: str) -> str:
    digest = hashlib.sha256(f"scrums-mock:{seed}:{label}".encode()).hexdigest()
    return f"svt_{digest[:32]}"


def _id(prefix: str, year: int, n: int) -> str:
    return f"{prefix}-{year % 100:02d}-{n:06d}"


def default_now() -> datetime:
    """The current UTC time truncated to the minute: what the CLI uses when ``--now`` is absent."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def generate(
    *,
    tasks: int = 20_000,
    seed: int = 7,
    weeks: int = 26,
    now: datetime | None = None,
    workspaces: int | None = None,
    service_lines: int | None = None,
    unlinked_share: float = 0.05,
    duplicate_share: float = 0.004,
    rework: float = 0.4,
) -> Dataset:
    """Generate a dataset. Same arguments (including ``now``) → identical data.

    ``rework`` is the mean number of review round trips (in_review → in_progress → in_review) of
    a reviewed task, Poisson, at most 3; raise it for a history-heavy dataset (about 5 entries
    per task at ``rework=1.5``).
    """
    if tasks < 1:
        raise ValueError("tasks must be at least 1")
    if weeks < 2:
        raise ValueError("weeks must be at least 2")
    now = (now or default_now()).astimezone(UTC)
    now_ms = int(now.timestamp() * 1000)
    year = now.year
    rng = np.random.default_rng(seed)

    n_ws = workspaces or min(3, max(1, tasks // 300))
    n_ws = max(1, min(n_ws, len(_WS_NAMES)))
    n_lin = service_lines or int(np.clip(tasks // 500, 5, 50))
    n_lin = max(n_lin, n_ws)

    # Workspaces: the first hosts unlinked tasks (its setting is off); integrations cycle.
    ws_list: list[Workspace] = []
    for w in range(n_ws):
        source = SOURCES[w % 3]
        integrations = [Integration(source, True, _WS_KEYS[w].lower() + "digital")]
        if w % 3 == 1:
            integrations.append(Integration("jira", False, _WS_KEYS[w].lower()))
        if w == 3:  # a fourth workspace has no active integration at all
            integrations = [Integration("clickup", False, _WS_KEYS[w].lower())]
        ws_list.append(
            Workspace(
                id=_id("WS", year, 21 + w),
                name=_WS_NAMES[w],
                key=_WS_KEYS[w],
                require_task_service_line=(w != 0),
                integrations=tuple(integrations),
            )
        )

    # Service lines: a per-LIN rate and profile. Index 1 (and one in the middle when there are
    # ten or more) slow down sharply in the last three weeks; the last one is 20 days old.
    window_ms = weeks * WEEK_MS
    start_ms = now_ms - window_ms
    rates = rng.lognormal(mean=np.log(10.0), sigma=0.6, size=n_lin)
    profiles = ["steady"] * n_lin
    profiles[1 % n_lin] = "slowdown"
    if n_lin >= 10:
        profiles[n_lin // 2] = "slowdown"
    profiles[-1] = "young"
    lin_start = np.full(n_lin, start_ms, dtype=np.int64)
    lin_start[-1] = now_ms - 20 * DAY_MS
    lin_ws = np.arange(n_lin) % n_ws
    lin_ids = [_id("LIN", year, 84_700 + 29 * i) for i in range(n_lin)]
    lines = [
        ServiceLine(
            id=lin_ids[i],
            workspace_id=ws_list[lin_ws[i]].id,
            name=f"{_LIN_NAMES[i % len(_LIN_NAMES)]} {i // len(_LIN_NAMES) + 1}",
            profile=profiles[i],
            weekly_rate=float(rates[i]),
            first_activity_ms=int(lin_start[i]),
        )
        for i in range(n_lin)
    ]
    lead_median_days = rng.uniform(2.5, 9.0, size=n_lin)

    # Projects span 2-4 service lines, across workspaces.
    n_proj = max(2, n_lin // 3)
    projects: list[Project] = []
    lin_projects: list[list[int]] = [[] for _ in range(n_lin)]
    for p in range(n_proj):
        span = rng.choice(n_lin, size=min(n_lin, int(rng.integers(2, 5))), replace=False)
        for i in span:
            lin_projects[int(i)].append(p)
        projects.append(
            Project(
                id=_id("PROJ", year, 4_200 + 17 * p),
                name=f"Initiative {p + 1}",
                service_line_ids=tuple(lin_ids[int(i)] for i in sorted(span)),
            )
        )

    # People: users per workspace (3 per LIN, at least 4) and 3 agents per workspace.
    users: dict[str, list[str]] = {}
    agents: dict[str, list[str]] = {}
    u_next, a_next = 40, 900
    for w, ws in enumerate(ws_list):
        nu = max(4, 3 * int((lin_ws == w).sum()))
        users[ws.id] = [_id("USR", year, u_next + k) for k in range(nu)]
        agents[ws.id] = [_id("AGT", year, a_next + k) for k in range(3)]
        u_next += nu
        a_next += 3
    all_ws = frozenset(ws.id for ws in ws_list)
    tokens = {
        _token(seed, "admin"): Principal(users[ws_list[0].id][0], all_ws),
        _token(seed, "agent"): Principal(agents[ws_list[0].id][0], all_ws),
    }
    for ws in ws_list:
        tokens[_token(seed, f"ws:{ws.id}")] = Principal(users[ws.id][1], frozenset({ws.id}))

    # ---- tasks: service line and creation time -------------------------------------------
    n_dup = int(tasks * duplicate_share) if tasks >= 200 else 0
    n_base = tasks - n_dup
    active_ms = (now_ms - lin_start).astype(np.float64)
    weights = rates * active_ms
    lin = rng.choice(n_lin, size=n_base, p=weights / weights.sum())
    created = lin_start[lin] + (rng.random(n_base) * active_ms[lin]).astype(np.int64)

    # Probable duplicates: a twin of an existing task, same LIN, created up to 5 days later.
    twin_of = rng.choice(n_base, size=n_dup, replace=False) if n_dup else np.empty(0, np.int64)
    lin = np.concatenate([lin, lin[twin_of]])
    created = np.concatenate(
        [created, np.minimum(created[twin_of] + rng.integers(0, 5 * DAY_MS, n_dup), now_ms - 1)]
    )
    created = created // 1000 * 1000
    n = tasks

    # ---- lifecycles ---------------------------------------------------------------------------
    lead = (rng.lognormal(np.log(lead_median_days[lin]), 0.8) * DAY_MS).astype(np.int64)
    lead = np.maximum(lead, 3_600_000)
    t_start = created + (lead * rng.uniform(0.05, 0.4, n)).astype(np.int64)
    t_review = created + (lead * rng.uniform(0.6, 0.9, n)).astype(np.int64)
    t_done = created + lead

    # Slowdown LINs: most completions due in the last three weeks slip past "now".
    slow = np.isin(lin, [i for i, p in enumerate(profiles) if p == "slowdown"])
    slip = slow & (t_done > now_ms - 21 * DAY_MS) & (rng.random(n) < 0.75)
    shift = np.where(slip, now_ms - t_done + rng.integers(DAY_MS, 30 * DAY_MS, n), 0)
    t_review = np.where(slip & (t_review > now_ms - 21 * DAY_MS), t_review + shift, t_review)
    t_done = t_done + shift

    u = rng.random(n)
    cancelled = u < 0.08
    cancel_from_backlog = cancelled & (rng.random(n) < 0.6)
    variant = rng.random(n)
    skip_backlog = ~cancelled & (variant < 0.08)
    skip_review = ~cancelled & (variant >= 0.08) & (variant < 0.20)
    reopened = ~cancelled & (variant >= 0.20) & (variant < 0.27)
    imported_done = ~cancelled & (variant >= 0.27) & (variant < 0.31) & (t_done <= now_ms)
    parked = ~cancelled & (variant >= 0.31) & (variant < 0.36)  # never started: aging backlog
    t_cancel = np.where(
        cancel_from_backlog,
        created + (lead * rng.uniform(0.05, 0.5, n)).astype(np.int64),
        t_start + (lead * rng.uniform(0.1, 0.6, n)).astype(np.int64),
    )
    t_reopen = t_done + (rng.exponential(2.0, n) * DAY_MS).astype(np.int64) + 60_000
    t_rereview = t_reopen + (rng.exponential(1.0, n) * DAY_MS).astype(np.int64) + 60_000
    t_redone = t_rereview + (rng.exponential(1.5, n) * DAY_MS).astype(np.int64) + 60_000

    B, P, R, D, C = range(5)  # status codes, indexes into STATUSES
    # Review round trips, between entering review and done, at fixed fractions of that gap.
    bounces = np.minimum(rng.poisson(rework, n), 3) if rework > 0 else np.zeros(n, np.int64)
    gap = t_done - t_review
    bounces = np.where(gap >= 7 * 60_000, bounces, 0)  # >= 1 minute apart: no equal timestamps
    back = [t_review + gap * (2 * j - 1) // 7 for j in (1, 2, 3)]
    fwd = [t_review + gap * (2 * j) // 7 for j in (1, 2, 3)]
    # Transition slots per task, in time order: (at, from, to, present).
    at = np.stack(
        [
            t_start,
            t_review,
            back[0],
            fwd[0],
            back[1],
            fwd[1],
            back[2],
            fwd[2],
            t_done,
            t_reopen,
            t_rereview,
            t_redone,
            t_cancel,
        ],
        axis=1,
    )
    DONE_SLOT, CANCEL_SLOT = 8, 12
    frm = np.tile(np.array([B, P, R, P, R, P, R, P, R, D, P, R, B], dtype=np.int8), (n, 1))
    to = np.tile(np.array([P, R, P, R, P, R, P, R, D, P, R, D, C], dtype=np.int8), (n, 1))
    present = np.zeros(at.shape, dtype=bool)
    present[:, 0] = ~cancelled & ~skip_backlog
    present[:, 1] = ~cancelled & ~skip_review
    for j in (1, 2, 3):
        present[:, 2 * j] = present[:, 2 * j + 1] = present[:, 1] & (bounces >= j)
    present[:, DONE_SLOT] = ~cancelled
    present[:, DONE_SLOT + 1 : CANCEL_SLOT] = reopened[:, None]
    present[:, CANCEL_SLOT] = cancelled
    frm[skip_review, DONE_SLOT] = P  # in_progress -> done directly
    frm[:, CANCEL_SLOT] = np.where(cancel_from_backlog, B, P)
    present[cancelled & ~cancel_from_backlog, 0] = True  # backlog -> in_progress, then cancel
    present[imported_done | parked] = False
    at = at // 1000 * 1000  # whole seconds, like the API document's examples
    present &= at <= now_ms

    initial = np.where(skip_backlog, P, B).astype(np.int8)
    n_slots = at.shape[1]
    last_slot = np.where(present.any(axis=1), n_slots - 1 - np.argmax(present[:, ::-1], axis=1), -1)
    status = np.where(last_slot >= 0, to[np.arange(n), np.maximum(last_slot, 0)], initial)
    status = np.where(imported_done, D, status).astype(np.int8)
    last_at = np.where(last_slot >= 0, at[np.arange(n), np.maximum(last_slot, 0)], created)
    last_at = np.where(imported_done, t_done, last_at)
    touched = rng.random(n) < 0.10  # a later non-status edit (priority, description)
    updated = np.where(
        touched, last_at + ((now_ms - last_at) * rng.random(n) * 0.5).astype(np.int64), last_at
    )
    updated = np.minimum(np.maximum(updated, created), now_ms) // 1000 * 1000

    # ---- who (indexes into one people array: users, then agents) --------------------------
    people = [u for ws in ws_list for u in users[ws.id]] + [
        a for ws in ws_list for a in agents[ws.id]
    ]
    person_index = {p: k for k, p in enumerate(people)}
    ws_of = lin_ws[lin]
    ws_user_idx = [np.array([person_index[u] for u in users[ws.id]]) for ws in ws_list]
    ws_agent_idx = [np.array([person_index[a] for a in agents[ws.id]]) for ws in ws_list]
    assignee = np.empty(n, dtype=np.int64)
    actor_agent = np.empty(n, dtype=np.int64)
    first_user = np.array([ws_user_idx[w][0] for w in range(n_ws)])
    for w in range(n_ws):
        m = ws_of == w
        k = int(m.sum())
        assignee[m] = ws_user_idx[w][rng.integers(0, len(ws_user_idx[w]), k)]
        actor_agent[m] = ws_agent_idx[w][rng.integers(0, len(ws_agent_idx[w]), k)]
    assignee[rng.random(n) < 0.05] = -1
    person_map = dict(enumerate(people)) | {-1: None}

    # ---- unlinked tasks: only where the workspace allows it --------------------------------
    unlinked = np.zeros(n, dtype=bool)
    relaxed = np.array([not ws.require_task_service_line for ws in ws_list])[ws_of]
    if relaxed.any() and unlinked_share > 0:
        p_unlinked = min(0.5, unlinked_share * n / relaxed.sum())
        unlinked = relaxed & (rng.random(n) < p_unlinked)
        unlinked[n_base:] = False
        unlinked[twin_of] = False

    # ---- projects -----------------------------------------------------------------------------
    proj_idx = np.full(n, -1, dtype=np.int64)
    has_proj = rng.random(n) < 0.6
    pick = rng.random(n)
    for i in range(n_lin):
        if not lin_projects[i]:
            continue
        m = (lin == i) & has_proj
        choices = np.array(lin_projects[i])
        proj_idx[m] = choices[(pick[m] * len(choices)).astype(np.int64)]
    proj_idx[n_base:] = proj_idx[twin_of]

    # ---- external bindings --------------------------------------------------------------------
    ws_src = np.array(
        [
            SOURCES.index(ws.active_integration.source) if ws.active_integration else -1
            for ws in ws_list
        ]
    )
    src = np.where(rng.random(n) < 0.75, ws_src[ws_of], -1)
    src[twin_of] = ws_src[ws_of[twin_of]]
    src[n_base:] = -1  # the twin was created by hand in Scrums, the original came from sync

    # ---- titles -------------------------------------------------------------------------------
    vi = rng.integers(0, len(_VERBS), n)
    oi = rng.integers(0, len(_OBJECTS), n)
    ci = rng.integers(0, len(_COMPONENTS), n)
    qi = rng.integers(0, len(_QUALIFIERS), n)
    hostile = np.full(n, -1, dtype=np.int64)
    if n >= 50:
        picks = rng.choice(
            n_base, size=min(n_base, len(HOSTILE_TITLES) * max(1, n // 5000)), replace=False
        )
        hostile[picks] = np.arange(len(picks)) % len(HOSTILE_TITLES)
    vi[n_base:], oi[n_base:], ci[n_base:] = vi[twin_of], oi[twin_of], ci[twin_of]
    qi[n_base:] = qi[twin_of]
    hostile[n_base:] = hostile[twin_of]

    # ---- assemble, ordered by creation (the immutable key ids follow) ----------------------
    order = np.argsort(created, kind="stable")
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.arange(n)

    prio = rng.choice(4, size=n, p=[0.3, 0.45, 0.2, 0.05])

    frame = pl.DataFrame(
        {
            "seq": inv,
            "workspace_idx": ws_of,
            "lin": np.where(unlinked, -1, lin),
            "proj": proj_idx,
            "verb": vi,
            "obj": oi,
            "comp": ci,
            "qual": qi,
            "hostile": hostile,
            "status": status,
            "priority": prio,
            "assignee": assignee,
            "source": src,
            "created_ms": created,
            "updated_ms": updated,
        }
    ).sort("seq")

    created_year = (
        pl.from_epoch(frame["created_ms"], time_unit="ms").dt.year().cast(pl.Int32).to_numpy()
    )
    frame = frame.with_columns(
        pl.Series("year", created_year),
    ).with_columns(
        (pl.int_range(pl.len()).over("year") + 1).alias("year_seq"),
        (pl.int_range(pl.len()).over(["workspace_idx", "source"]) + 1000).alias("ext_seq"),
    )
    title = (
        pl.when(pl.col("hostile") >= 0)
        .then(
            pl.col("hostile").replace_strict(
                dict(enumerate(HOSTILE_TITLES)), default=None, return_dtype=pl.String
            )
        )
        .otherwise(
            pl.concat_str(
                pl.col("verb").replace_strict(dict(enumerate(_VERBS)), return_dtype=pl.String),
                pl.col("obj").replace_strict(dict(enumerate(_OBJECTS)), return_dtype=pl.String),
                pl.lit("on"),
                pl.col("comp").replace_strict(dict(enumerate(_COMPONENTS)), return_dtype=pl.String),
                pl.col("qual").replace_strict(dict(enumerate(_QUALIFIERS)), return_dtype=pl.String),
                separator=" ",
            ).str.strip_chars()
        )
    )
    ws_key = pl.col("workspace_idx").replace_strict(
        {w: ws.key for w, ws in enumerate(ws_list)}, return_dtype=pl.String
    )
    ws_slug = pl.col("workspace_idx").replace_strict(
        {
            w: (ws.active_integration.slug if ws.active_integration else "")
            for w, ws in enumerate(ws_list)
        },
        return_dtype=pl.String,
    )
    ext_source = pl.col("source").replace_strict(
        dict(enumerate(SOURCES)) | {-1: None}, return_dtype=pl.String
    )
    ext_id = (
        pl.when(ext_source == "clickup")
        .then(pl.format("86{}", pl.col("ext_seq").cast(pl.String).str.zfill(7)))
        .when(ext_source.is_not_null())
        .then(pl.format("{}-{}", ws_key, pl.col("ext_seq")))
    )
    ext_url = (
        pl.when(ext_source == "jira")
        .then(pl.format("https://{}.atlassian.net/browse/{}", ws_slug, ext_id))
        .when(ext_source == "clickup")
        .then(pl.format("https://app.clickup.com/t/{}", ext_id))
        .when(ext_source == "linear")
        .then(pl.format("https://linear.app/{}/issue/{}", ws_slug, ext_id))
    )
    tasks_df = frame.select(
        pl.col("seq").cast(pl.Int64),
        pl.format(
            "TSK-{}-{}",
            (pl.col("year") % 100).cast(pl.String).str.zfill(2),
            pl.col("year_seq").cast(pl.String).str.zfill(6),
        ).alias("id"),
        pl.col("workspace_idx")
        .replace_strict({w: ws.id for w, ws in enumerate(ws_list)}, return_dtype=pl.String)
        .alias("workspace_id"),
        pl.col("lin")
        .replace_strict(dict(enumerate(lin_ids)) | {-1: None}, return_dtype=pl.String)
        .alias("service_line_id"),
        pl.col("proj")
        .replace_strict(
            {k: p.id for k, p in enumerate(projects)} | {-1: None}, return_dtype=pl.String
        )
        .alias("project_id"),
        title.alias("title"),
        pl.format(
            "{}. Acceptance: covered by tests, deployed behind a flag, documented in the runbook.",
            title.str.slice(0, 120),
        ).alias("description"),
        pl.col("status").replace_strict(dict(enumerate(STATUSES)), return_dtype=pl.String),
        pl.col("priority").replace_strict(dict(enumerate(PRIORITIES)), return_dtype=pl.String),
        pl.col("assignee").replace_strict(person_map, return_dtype=pl.String).alias("assignee_id"),
        ext_id.alias("external_id"),
        ext_source.alias("external_source"),
        ext_url.alias("external_url"),
        pl.col("created_ms"),
        pl.col("updated_ms"),
    )

    # ---- history, long form -------------------------------------------------------------------
    rows, slots = np.nonzero(present)
    h_at = at[rows, slots]
    by_agent = rng.random(len(rows)) < np.where(to[rows, slots] >= D, 0.25, 0.12)
    actor = np.where(by_agent, actor_agent[rows], assignee[rows])
    # unassigned tasks are moved by the workspace's first user
    actor = np.where(actor < 0, first_user[ws_of[rows]], actor)
    history_df = (
        pl.DataFrame(
            {
                "seq": inv[rows],
                "at_ms": h_at,
                "from_status": frm[rows, slots],
                "to_status": to[rows, slots],
                "by": actor,
            },
        )
        .with_columns(
            pl.col("by").replace_strict(person_map, return_dtype=pl.String),
            pl.col("from_status").replace_strict(dict(enumerate(STATUSES)), return_dtype=pl.String),
            pl.col("to_status").replace_strict(dict(enumerate(STATUSES)), return_dtype=pl.String),
        )
        .sort(["seq", "at_ms"])
    )

    return Dataset(
        seed=seed,
        now_ms=now_ms,
        weeks=weeks,
        workspaces=ws_list,
        service_lines=lines,
        projects=projects,
        users=users,
        agents=agents,
        tokens=tokens,
        tasks=tasks_df,
        history=history_df,
    )


def iso_ms(ms: int) -> str:
    """Epoch ms as the API writes it: ``2026-04-10T10:00:00Z``, with ``.123`` only if non-zero."""
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
