"""``velocity demo``: the whole pipeline on the built-in API server and its synthetic data.

Starts ``velocity mock-api`` as a child process on 127.0.0.1 (its own process, so that server and
client do not share one interpreter), runs the nightly pipeline into ``data/demo/`` with two demo
leads (their emails written as ``.eml`` files, no SMTP needed), then says where everything is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from scrums_velocity.api_server.serve import mock_api_process
from scrums_velocity.api_server.synth import generate
from scrums_velocity.config import ApiConfig, Config, Lead, ServiceLine
from scrums_velocity.errors import ApiError
from scrums_velocity.models.query import connect_read_only
from scrums_velocity.nightly import NightlyResult, run_nightly


@dataclass
class DemoResult:
    nightly: NightlyResult
    data_dir: Path
    slowest: pl.DataFrame


def run_demo(
    data_dir: Path = Path("data/demo"), *, tasks: int = 10_000, seed: int = 7
) -> DemoResult:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    dataset = generate(tasks=tasks, seed=seed, now=now)  # the same data the server will serve
    lins = [s.id for s in dataset.service_lines]
    now_arg = now.isoformat().replace("+00:00", "Z")
    try:
        with mock_api_process("--tasks", str(tasks), "--seed", str(seed), "--now", now_arg) as info:
            config = Config(
                data_dir=data_dir,
                api=ApiConfig(
                    url=info["base_url"],
                    token=info["token"],
                    workspaces=info["workspaces"].split(","),
                    concurrency=16,
                ),
                # every service line by its name, as leads know them (one left unnamed: the
                # report falls back to its id)
                service_lines=[
                    ServiceLine(id=s.id, name=s.name) for s in dataset.service_lines[:-1]
                ],
                leads=[
                    Lead(
                        name="Ada Lovelace (demo)", email="ada@example.com", service_lines=lins[:3]
                    ),
                    Lead(
                        name="Grace Hopper (demo)",
                        email="grace@example.com",
                        service_lines=lins[3:6],
                    ),
                ],
            )
            nightly = run_nightly(config, email_dry_run=True)
    except RuntimeError as exc:  # the server did not start
        raise ApiError(f"the demo API server did not start: {exc}") from None
    con = connect_read_only(data_dir)
    try:
        latest = con.table("marts.lin_velocity_latest").pl()
    finally:
        con.close()
    slowest = (
        latest.filter(pl.col("velocity_ratio").is_not_null())
        .sort("velocity_ratio")
        .head(3)
        .select(
            "service_line_id",
            "service_line_name",
            "health",
            "completed",
            "baseline_mean",
            "velocity_ratio",
        )
    )
    return DemoResult(nightly, data_dir, slowest)
