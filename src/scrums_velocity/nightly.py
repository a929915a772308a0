"""``velocity nightly``: extract → build → report → email, as one command for cron.

The data dir is locked for the whole run (a second run exits with "already running"). A failed
stage stops the later ones; the lake, warehouse and report of the last good run stay in place
(each stage swaps its output in atomically). Every stage's outcome is recorded in the lake's run
manifest as one ``nightly`` row, whatever happened.

Exit codes: ``errors.exit_codes()`` (the README's table is generated from it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from scrums_velocity.config import Config, revalidate
from scrums_velocity.errors import ConfigError, VelocityError
from scrums_velocity.extract import ClientSettings, ExtractOptions, extract
from scrums_velocity.lake import RunRecord, new_run_id, open_lake, resolve_location
from scrums_velocity.lock import data_dir_lock
from scrums_velocity.models import BuildSettings, build
from scrums_velocity.observe import event
from scrums_velocity.report import check_can_send, send_reports, write_report

STAGES = ("extract", "build", "report", "email")


@dataclass
class NightlyResult:
    stages: dict[str, str] = field(default_factory=dict)  # stage -> succeeded | failed | skipped
    messages: dict[str, str] = field(default_factory=dict)
    failed_stage: str | None = None
    error: VelocityError | None = None
    report_dir: Path | None = None
    duration_s: float = 0.0

    def summary(self) -> str:
        parts = [f"{s} {self.stages.get(s, 'not run')}" for s in STAGES]
        return f"nightly: {', '.join(parts)} in {self.duration_s:.1f} s"


def run_nightly(
    config: Config,
    *,
    email_dry_run: bool = False,
    strict: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
) -> NightlyResult:
    """Run every stage in order; raise the failing stage's error after recording it.

    Every configuration problem is raised before the lock is taken and before any stage starts,
    so a bad configuration never leaves half a run behind (see :func:`preflight`).
    """
    data_dir = config.data_dir
    settings = preflight(config, email_dry_run=email_dry_run)
    options = ExtractOptions(
        data_dir=data_dir,
        workspaces=tuple(config.api.workspaces),
        service_lines=tuple(config.api.service_lines),
        projects=tuple(config.api.projects),
        strict=strict,
        lake=config.lake,
    )
    bsettings = BuildSettings.from_config(config)
    result = NightlyResult()
    started = datetime.now(UTC)
    t0 = time.monotonic()
    with data_dir_lock(data_dir, "velocity nightly"):
        event("nightly.start", data_dir=str(data_dir))
        steps = {
            "extract": lambda: _extract(config, settings, options, transport),
            "build": lambda: build(bsettings, lock=False).summary(),
            "report": lambda: _report(config, result),
            "email": lambda: _email(config, email_dry_run),
        }
        for stage in STAGES:
            if result.failed_stage is not None:
                result.stages[stage] = "skipped"
                continue
            if stage == "email" and not config.leads:
                result.stages[stage] = "skipped"
                result.messages[stage] = "no leads configured"
                continue
            try:
                result.messages[stage] = steps[stage]()
                result.stages[stage] = "succeeded"
                event(f"nightly.{stage}", outcome="succeeded", detail=result.messages[stage])
            except VelocityError as exc:
                result.stages[stage] = "failed"
                result.messages[stage] = str(exc)
                result.failed_stage, result.error = stage, exc
                event(f"nightly.{stage}", outcome="failed", error=str(exc))
        result.duration_s = time.monotonic() - t0
        _record(config, result, started)
    stages: dict[str, Any] = dict(result.stages)
    event("nightly.done", seconds=round(result.duration_s, 1), **stages)
    if result.error is not None:
        err = result.error
        raise type(err)(f"nightly failed at {result.failed_stage}: {err}")
    return result


def preflight(config: Config, *, email_dry_run: bool = False) -> ClientSettings:
    """Every check of the configuration a stage would otherwise make only when it runs."""
    revalidate(config)  # ConfigInvalid; a Config changed with model_copy was never validated
    data_dir = config.data_dir
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"data dir {data_dir} is not a directory")
    settings = ClientSettings.from_config(config)
    resolve_location(config.lake, data_dir)  # the lake URL and its endpoint's scheme
    if not email_dry_run:
        check_can_send(config)
    return settings


def _report(config: Config, result: NightlyResult) -> str:
    report = write_report(config.data_dir, config, lock=False)  # nightly holds the lock
    result.report_dir = report.directory
    return report.summary()


def _email(config: Config, dry_run: bool) -> str:
    return send_reports(config, config.data_dir, dry_run=dry_run).summary()


def _extract(
    config: Config,
    settings: ClientSettings,
    options: ExtractOptions,
    transport: httpx.AsyncBaseTransport | None,
) -> str:
    """Extract, then vacuum what no snapshot within the retention period needs."""
    summary = extract(settings, options, transport=transport, lock=False).summary()
    lake = open_lake(config.data_dir, config.lake)
    with lake.lease(new_run_id(datetime.now(UTC))) as lease:
        removed = lake.vacuum(lease, timedelta(days=config.lake_retention_days))
    return f"{summary}; vacuum removed {sum(removed.values())} files"


def _record(config: Config, result: NightlyResult, started: datetime) -> None:
    """One ``nightly`` row in the lake's run manifest with every stage's outcome."""
    try:
        lake = open_lake(config.data_dir, config.lake)
        if lake.head() is None:
            return  # nothing was ever extracted: there is no lake to record into
    except VelocityError as exc:
        event("nightly.not_recorded", error=str(exc))
        return
    run_id = new_run_id(started)
    failed = result.failed_stage
    record = RunRecord(
        run_id,
        "nightly",
        started_at=started,
        finished_at=datetime.now(UTC),
        mode="nightly",
        stages=dict(result.stages),
        duration_s=result.duration_s,
        outcome="failed" if failed else "succeeded",
        error=f"{failed}: {result.messages[failed]}" if failed else None,
    )
    try:
        with lake.lease(run_id) as lease:
            lake.commit(lease, run_id, None, [], record.row(), started)
    except VelocityError as exc:  # the stages' outcome stands; the record is best effort
        event("nightly.not_recorded", error=str(exc))
