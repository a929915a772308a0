"""The Tasks API client: bounded concurrency, a client-side rate limit, deadlines and retries.

Each request:

1. waits for a slot (``concurrency``) and for the rate limiter (``max_rps``: a leaky bucket that
   lets at most 3 requests through together, see :func:`_limiter`);
2. runs under httpx's connect/read timeouts *and* an overall per-attempt deadline (a server that
   trickles bytes never holds a slot forever);
3. is retried, with exponential backoff and full jitter (``tenacity.wait_random_exponential``),
   on 5xx, timeouts, dropped connections and bodies that are not JSON; a 429 waits what its
   ``Retry-After`` says instead. After ``max_attempts`` failures (or ``max_rate_limited`` 429s:
   the server pacing us is not a failure) the run fails with a clear message.

401 and 403 are not retried; they become :class:`ApiAuthError`. The bearer token lives only in the
client's default headers: it is never logged, never in an error message, never in a repr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_random_exponential,
)

from scrums_velocity.errors import (
    ApiAuthError,
    ApiError,
    ApiRetriesExhaustedError,
    ApiUnreachableError,
    ConfigError,
)
from scrums_velocity.lake.location import is_loopback

if TYPE_CHECKING:
    from scrums_velocity.config import Config

log = logging.getLogger("scrums_velocity.extract")


@dataclass(frozen=True)
class ClientSettings:
    api_url: str
    token: str = field(repr=False)
    concurrency: int = 16
    max_rps: float | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    deadline: float = 30.0  # per attempt, the whole request including the body
    max_attempts: int = 6
    max_rate_limited: int = 30  # 429s pace us rather than fail us: their own, larger cap
    backoff_base: float = 0.25  # seconds; full jitter over base * 2**attempt
    backoff_max: float = 15.0
    allow_http: bool = False

    @classmethod
    def from_config(cls, config: Config) -> ClientSettings:
        """The ``[api]`` section's settings (the token from SCRUMS_API_TOKEN or the file)."""
        api = config.api
        if not api.url:
            raise ConfigError("no API URL: set api.url in the configuration or SCRUMS_API_URL")
        return cls(
            api_url=api.url,
            token=api.token.get_secret_value() if api.token else "",
            concurrency=api.concurrency,
            max_rps=api.max_rps,
            connect_timeout=min(api.timeout_s, 10.0),
            read_timeout=api.timeout_s,
            deadline=api.deadline_s,
            max_attempts=api.max_attempts,
            allow_http=api.allow_http,
        )

    def __post_init__(self) -> None:
        check_url(self.api_url, self.allow_http)
        if not self.token:
            raise ConfigError("no API token: set SCRUMS_API_TOKEN (or api.token in the config)")
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if self.max_rps is not None and self.max_rps <= 0:
            raise ConfigError("--max-rps must be positive")
        if self.max_attempts < 1:
            raise ConfigError("--max-attempts must be at least 1")


def check_url(url: str, allow_http: bool) -> None:
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        # never echo it: the part before the @ is a credential
        raise ConfigError(
            "the API URL must not carry credentials (user:password@): "
            "put the token in SCRUMS_API_TOKEN"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"API URL must be http(s)://host[:port]; got {url!r}")
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing plain http to {parts.hostname}: the token would travel unencrypted "
            "(use https, or --allow-http if you really mean it)"
        )


class Retryable(Exception):
    def __init__(self, cause: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail
        self.retry_after = retry_after


class NotFound(Exception):
    pass


@dataclass
class ClientStats:
    requests: int = 0
    retries: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)


class TasksApi:
    """An async client of the Tasks API. Use as ``async with TasksApi(settings) as api``."""

    def __init__(
        self, settings: ClientSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.stats = ClientStats()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._limiter = _limiter(settings.max_rps) if settings.max_rps else None
        timeout = httpx.Timeout(
            settings.read_timeout, connect=settings.connect_timeout, pool=settings.deadline
        )
        self._client = httpx.AsyncClient(
            base_url=settings.api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {settings.token}", "Accept": "application/json"},
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
            ),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"TasksApi(api_url={self.settings.api_url!r}, token=<redacted>)"

    async def __aenter__(self) -> TasksApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    # ---- one attempt -------------------------------------------------------------------------
    async def _attempt(self, path: str, params: dict[str, Any] | None) -> Any:
        async with self._slots:
            if self._limiter is not None:
                await self._limiter.acquire()
            self.stats.requests += 1
            try:
                async with asyncio.timeout(self.settings.deadline):
                    response = await self._client.get(path, params=params)
            except TimeoutError:
                raise Retryable(
                    "timeout", f"no complete answer within {self.settings.deadline:g} s"
                ) from None
            except httpx.TimeoutException as exc:
                raise Retryable("timeout", f"timed out ({type(exc).__name__})") from None
            except httpx.ConnectError as exc:
                raise Retryable("connect", f"cannot connect: {_short(exc)}") from None
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                raise Retryable("connection", f"connection dropped: {_short(exc)}") from None
        status = response.status_code
        self.stats.statuses[str(status)] += 1
        if status == 429:
            raise Retryable("429", "rate limited (429)", _retry_after(response))
        if status >= 500:
            raise Retryable("5xx", f"server error {status}", _retry_after(response))
        if status in (401, 403):
            raise ApiAuthError(_api_message(response, status))
        if status == 404:
            raise NotFound(_api_message(response, status))
        if status >= 400:
            raise ApiError(f"GET {path} was refused: {_api_message(response, status)}")
        try:
            return json.loads(response.content)
        except ValueError:
            raise Retryable("invalid_json", "the response body is not valid JSON") from None

    # ---- with retries --------------------------------------------------------------------------
    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        backoff = wait_random_exponential(
            multiplier=self.settings.backoff_base, max=self.settings.backoff_max
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, Retryable) and exc.retry_after is not None:
                # at least what the server asked, plus full jitter so that the clients it paused
                # together do not all come back in the same instant
                floor = min(exc.retry_after, 60.0)
                return floor + random.uniform(0, max(floor, self.settings.backoff_base))
            return backoff(state)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, Retryable):
                self.stats.retries[exc.cause] += 1
                log.debug("retry %s %s: %s", path, exc.cause, exc.detail)

        failures = {"429": 0, "other": 0}

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            kind = "429" if isinstance(exc, Retryable) and exc.cause == "429" else "other"
            failures[kind] += 1
            if kind == "429":
                return failures[kind] >= self.settings.max_rate_limited
            return failures[kind] >= self.settings.max_attempts

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception_type(Retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(path, params)
        except Retryable as exc:
            where = f"{self.settings.api_url.rstrip('/')}{path}"
            if exc.cause == "connect":
                raise ApiUnreachableError(
                    f"cannot reach the API at {self.settings.api_url}: {exc.detail} "
                    f"(after {self.settings.max_attempts} attempts)"
                ) from None
            tries = sum(failures.values())
            raise ApiRetriesExhaustedError(
                f"GET {where} failed after {tries} attempts; last: {exc.detail}"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover


def _limiter(rps: float) -> AsyncLimiter:
    """A leaky bucket draining at ``rps`` that holds up to 12 ms of requests (at most 3).

    A bucket of one loses every scheduling hiccup for good (the next slot is simply later); a
    small bucket absorbs them. A bigger one (10) drew 429s from a server whose own bucket holds
    10, because arrival jitter bunches the client's bursts further (measured: 9 per 3,000).
    """
    size = max(1, min(3, round(rps * 0.012)))
    return AsyncLimiter(size, size / rps)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _api_message(response: httpx.Response, status: int) -> str:
    try:
        err = response.json()["error"]
        return f"{status} {err['code']}: {err['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}"


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
