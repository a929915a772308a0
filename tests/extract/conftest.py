"""Helpers for extractor tests: run an extraction against the mock API, read the lake back."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import polars as pl

from scrums_velocity.api_server import Dataset, InProcessTransport
from scrums_velocity.extract.client import ClientSettings
from scrums_velocity.extract.run import ExtractOptions, ExtractResult, extract
from scrums_velocity.lake import DATASETS, open_lake

VOLATILE = ("extracted_at", "run_id")


def settings_for(ds: Dataset, api_url: str = "http://127.0.0.1:1", **kw) -> ClientSettings:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return ClientSettings(api_url=api_url, token=ds.admin_token, **kw)


def run_extract(
    ds: Dataset, app, data_dir: Path, *, settings: ClientSettings | None = None, **options
) -> ExtractResult:
    opts = ExtractOptions(
        data_dir=data_dir, workspaces=tuple(w.id for w in ds.workspaces), **options
    )
    transport = InProcessTransport(app) if app is not None else None
    return extract(settings or settings_for(ds), opts, transport=transport)


def extract_args(ds: Dataset, data_dir: Path, *extra: str) -> list[str]:
    """``velocity extract`` of every workspace of ``ds`` into ``data_dir``, as a child process."""
    workspaces = [a for w in ds.workspaces for a in ("-w", w.id)]
    cmd = ["extract", "--data-dir", str(data_dir), *extra, *workspaces]
    return [sys.executable, "-m", "scrums_velocity", *cmd]


def api_env(ds: Dataset, server) -> dict[str, str]:
    """The environment a child ``velocity`` needs to reach ``server`` as ``ds``'s admin."""
    return {**os.environ, "SCRUMS_API_URL": server.base_url, "SCRUMS_API_TOKEN": ds.admin_token}


def read_lake(data_dir: Path, dataset: str, lake: str | None = None) -> pl.DataFrame:
    """One dataset of the lake's newest snapshot (empty when there is no lake)."""
    opened = open_lake(data_dir, lake)
    if opened.head() is None:
        return pl.DataFrame()
    return opened.read(dataset)


def comparable(data_dir: Path, lake: str | None = None) -> dict[str, pl.DataFrame]:
    """The lake's content without what legitimately differs between runs (run ids, times)."""
    out = {}
    keys = {
        "tasks": ["id"],
        "task_versions": ["id", "updated_at"],
        "task_history": ["task_id", "at", "to_value"],
    }
    for dataset, key in keys.items():
        df = read_lake(data_dir, dataset, lake)
        df = df.drop([c for c in VOLATILE if c in df.columns])
        out[dataset] = df.sort([*key, *(c for c in df.columns if c not in key)])
    return out


def assert_same_lake(
    a: Path, b: Path, lake_a: str | None = None, lake_b: str | None = None
) -> None:
    ca, cb = comparable(a, lake_a), comparable(b, lake_b)
    for name in ca:
        assert ca[name].height == cb[name].height, name
        assert ca[name].equals(cb[name]), name


def check_consistent(data_dir: Path, lake: str | None = None) -> int:
    """The lake, if any, is one complete snapshot: every dataset readable, tasks unique.

    Returns the number of tasks (0 without a lake)."""
    opened = open_lake(data_dir, lake)
    head = opened.head()
    if head is None:
        return 0
    for dataset in DATASETS:
        opened.read(dataset, head)  # raises on a torn or missing file
    tasks = opened.read("tasks", head)
    assert tasks["id"].n_unique() == tasks.height
    return tasks.height
