"""Shared fixtures: synthetic datasets and the mock API, in-process and live."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from scrums_velocity.api_server import (
    Dataset,
    InProcessTransport,
    Knobs,
    create_app,
    generate,
    serve_in_thread,
)

# A Monday morning: the reference "now" of every generated test dataset.
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def small_dataset() -> Dataset:
    """1,200 tasks, 3 workspaces, 5 service lines: fast enough to build an app per test."""
    return generate(tasks=1200, seed=11, now=NOW)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(small_dataset: Dataset):
    """A fresh in-process app over the small dataset (state is per test)."""
    return create_app(small_dataset)


@pytest.fixture
async def client(api, small_dataset: Dataset) -> Iterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=InProcessTransport(api),
        base_url="http://mock",
        headers=auth(small_dataset.admin_token),
    ) as c:
        yield c


@contextlib.contextmanager
def live_server(dataset: Dataset, knobs: Knobs | None = None):
    """The mock API on 127.0.0.1 (a real socket) for the duration of the block."""
    app = create_app(dataset, knobs)
    with serve_in_thread(app) as running:
        running.app = app
        yield running
