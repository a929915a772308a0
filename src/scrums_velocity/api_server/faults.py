"""Operational knobs of the mock API, as one pure ASGI middleware around ``/v1/``.

Per request, in this order: the token-bucket rate limit (429 with ``Retry-After``), the configured
latency, then, at ``fault_rate``, one injected fault drawn uniformly from ``fault_kinds``:

* ``500`` / ``502`` / ``503``: an error status (JSON body for 500, a proxy's HTML page for 502/503);
* ``hang``: no answer for ``hang_seconds`` (past any sane client timeout), then the normal answer;
* ``drop``: the status line and half of the body, then the connection is closed;
* ``truncated``: a complete HTTP response whose JSON body is cut in half;
* ``invalid_json``: a 200 response whose body is not JSON.

Every decision comes from one ``random.Random(seed)``: the same seed gives the same sequence of
faults. What was injected is counted in :class:`Stats` (``GET /_mock/stats``).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

FAULT_KINDS = ("500", "502", "503", "hang", "drop", "truncated", "invalid_json")


@dataclass(frozen=True)
class Knobs:
    latency_ms: float = 0.0
    rate_limit: float | None = None  # requests per second; None = unlimited
    burst: int | None = None  # bucket size; default = max(1, rate_limit) (one second's worth)
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    hang_seconds: float = 30.0
    seed: int = 7
    fault_after: int = 0  # faults only once this many /v1/ requests were served (an outage)

    def __post_init__(self) -> None:
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}; known: {FAULT_KINDS}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")


@dataclass
class Stats:
    requests: int = 0
    details: int = 0  # GET /v1/tasks/{id}: what a resumed extraction must not repeat
    rate_limited: int = 0
    faults: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "details": self.details,
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "statuses": {str(k): v for k, v in self.statuses.items()},
        }


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate = rate
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.stamp = clock()
        self.lock = threading.Lock()

    def take(self) -> float:
        """Take a token: 0.0 if granted, else the seconds until one is available."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            return (1.0 - self.tokens) / self.rate


def _json_error(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class OperationalMiddleware:
    def __init__(self, app, knobs: Knobs, stats: Stats) -> None:
        self.app = app
        self.knobs = knobs
        self.stats = stats
        self.rng = random.Random(knobs.seed)
        self.bucket = (
            TokenBucket(knobs.rate_limit, knobs.burst or max(1, int(knobs.rate_limit)))
            if knobs.rate_limit
            else None
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        self.stats.requests += 1
        if scope["method"] == "GET" and scope["path"].startswith("/v1/tasks/"):
            self.stats.details += 1

        async def counting_send(message):
            if message["type"] == "http.response.start":
                self.stats.statuses[message["status"]] += 1
            await send(message)

        if self.bucket is not None:
            wait = self.bucket.take()
            if wait > 0:
                self.stats.rate_limited += 1
                body = _json_error(429, "rate_limited", "rate limit exceeded; retry later")
                await _respond(
                    counting_send, 429, body, [(b"retry-after", str(math.ceil(wait)).encode())]
                )
                return
        if self.knobs.latency_ms:
            await asyncio.sleep(self.knobs.latency_ms / 1000)

        fault = None
        if (
            self.knobs.fault_rate
            and self.stats.requests > self.knobs.fault_after
            and self.rng.random() < self.knobs.fault_rate
        ):
            fault = self.rng.choice(self.knobs.fault_kinds)
            self.stats.faults[fault] += 1
        if fault is None:
            await self.app(scope, receive, counting_send)
        elif fault == "500":
            body = _json_error(500, "internal_error", "internal server error (injected)")
            await _respond(counting_send, 500, body)
        elif fault in ("502", "503"):
            text = "Bad Gateway" if fault == "502" else "Service Unavailable"
            body = f"<html><body><h1>{fault} {text}</h1></body></html>".encode()
            extra = [(b"retry-after", b"1")] if fault == "503" else []
            await _respond(counting_send, int(fault), body, extra, b"text/html")
        elif fault == "hang":
            await asyncio.sleep(self.knobs.hang_seconds)
            await self.app(scope, receive, counting_send)
        else:
            await self._mangle(fault, scope, receive, counting_send)

    async def _mangle(self, fault: str, scope, receive, send) -> None:
        """Run the app, then deliver its answer broken in the way ``fault`` names."""
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if fault == "invalid_json":
            await _respond(
                send,
                200,
                b"<html>upstream error</html>{",
                headers=[],
                content_type=b"application/json",
            )
        elif fault == "truncated":
            cut = body[: max(1, len(body) // 2)]
            await _respond(send, start.get("status", 200), cut, headers=headers, content_type=None)
        else:  # drop: announce the full length, send half, then close the connection
            await send(
                {
                    "type": "http.response.start",
                    "status": start.get("status", 200),
                    "headers": [*headers, (b"content-length", str(len(body)).encode())],
                }
            )
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            # Returning with the response incomplete makes the server close the connection.


async def _respond(send, status, body, headers=(), content_type=b"application/json"):
    hdrs = list(headers)
    if content_type is not None:
        hdrs.append((b"content-type", content_type))
    hdrs.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})
