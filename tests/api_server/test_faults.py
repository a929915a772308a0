"""Operational knobs: injected faults at the configured rate, the token bucket, latency."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from scrums_velocity.api_server import FAULT_KINDS, InProcessTransport, Knobs, create_app
from tests.conftest import auth, live_server

pytestmark = pytest.mark.anyio


def classify(response: httpx.Response | None, error: Exception | None) -> str:
    """What a client sees, named after the fault that causes it (``ok`` for a good answer)."""
    if isinstance(error, httpx.TimeoutException):
        return "hang"
    if isinstance(error, httpx.RemoteProtocolError):
        return "drop"
    if error is not None:
        raise error
    if response.status_code in (500, 502, 503):
        return str(response.status_code)
    try:
        json.loads(response.content)
    except ValueError:
        return "invalid_json" if response.content.startswith(b"<html>") else "truncated"
    assert response.status_code == 200
    return "ok"


@pytest.mark.slow
async def test_each_fault_is_observed_at_its_configured_rate(small_dataset):
    n, rate = 1400, 0.35
    knobs = Knobs(fault_rate=rate, hang_seconds=6.0, seed=3)
    ws = small_dataset.workspaces[0].id
    seen: dict[str, int] = dict.fromkeys((*FAULT_KINDS, "ok"), 0)
    with live_server(small_dataset, knobs) as server:
        limits = httpx.Limits(max_connections=16)
        timeout = httpx.Timeout(2.0, connect=5.0)  # a hang (6 s) always trips it; a slow CI never
        async with httpx.AsyncClient(
            base_url=server.base_url,
            headers=auth(small_dataset.admin_token),
            timeout=timeout,
            limits=limits,
        ) as c:
            sem = asyncio.Semaphore(16)

            async def one(i: int) -> None:
                async with sem:
                    try:
                        r = await c.get("/v1/tasks", params={"workspace_id": ws, "limit": 50})
                        seen[classify(r, None)] += 1
                    except httpx.HTTPError as exc:
                        seen[classify(None, exc)] += 1

            await asyncio.gather(*(one(i) for i in range(n)))
            injected = (await c.get("/_mock/stats")).json()["faults"]
    assert sum(seen.values()) == n
    for kind in FAULT_KINDS:
        # what the client saw is exactly what the server injected ...
        assert seen[kind] == injected.get(kind, 0), (kind, seen, injected)
        # ... and each kind's rate is rate/7 within four binomial standard deviations
        p = rate / len(FAULT_KINDS)
        sd = (n * p * (1 - p)) ** 0.5
        assert abs(seen[kind] - n * p) < 4 * sd, (kind, seen[kind], n * p)
    assert abs((n - seen["ok"]) / n - rate) < 0.05


async def test_fault_sequence_is_reproducible_from_the_seed(small_dataset):
    async def run(seed: int) -> list[str]:
        app = create_app(
            small_dataset,
            Knobs(fault_rate=0.5, fault_kinds=("500", "503", "truncated", "drop"), seed=seed),
        )
        out = []
        async with httpx.AsyncClient(
            transport=InProcessTransport(app),
            base_url="http://m",
            headers=auth(small_dataset.admin_token),
        ) as c:
            for _ in range(60):
                try:
                    out.append(
                        classify(await c.get(f"/v1/tasks/{small_dataset.tasks['id'][0]}"), None)
                    )
                except httpx.HTTPError as exc:
                    out.append(classify(None, exc))
        return out

    first = await run(1)
    assert first == await run(1)
    assert first != await run(2)
    assert {"500", "503", "truncated", "drop", "ok"} == set(first)


async def test_token_bucket_answers_429_with_retry_after(small_dataset):
    app = create_app(small_dataset, Knobs(rate_limit=2.0, burst=5))
    ws = small_dataset.workspaces[0].id
    async with httpx.AsyncClient(
        transport=InProcessTransport(app),
        base_url="http://m",
        headers=auth(small_dataset.admin_token),
    ) as c:
        codes = [(await c.get("/v1/tasks", params={"workspace_id": ws})) for _ in range(8)]
        assert [r.status_code for r in codes] == [200] * 5 + [429] * 3
        limited = codes[-1]
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        await asyncio.sleep(0.55)  # one token refills in 0.5 s at 2/s
        assert (await c.get("/v1/tasks", params={"workspace_id": ws})).status_code == 200
        assert (await c.get("/v1/tasks", params={"workspace_id": ws})).status_code == 429
        assert (await c.get("/_mock/stats")).json()["rate_limited"] == 4


async def test_latency_is_added_to_each_request(small_dataset):
    app = create_app(small_dataset, Knobs(latency_ms=60))
    async with httpx.AsyncClient(
        transport=InProcessTransport(app),
        base_url="http://m",
        headers=auth(small_dataset.admin_token),
    ) as c:
        t0 = time.perf_counter()
        for _ in range(3):
            await c.get(f"/v1/tasks/{small_dataset.tasks['id'][0]}")
        assert time.perf_counter() - t0 >= 0.18


def test_bad_knobs_are_refused():
    with pytest.raises(ValueError, match="fault_rate"):
        Knobs(fault_rate=1.5)
    with pytest.raises(ValueError, match="unknown fault kinds"):
        Knobs(fault_kinds=("boom",))
