"""Logging and progress: rich progress bars on a TTY, structured log lines otherwise.

Log lines are ``<time> <level> <event> key=value ...`` or, with ``--log-json``, one JSON object per
line. Nothing here ever receives a secret: callers pass counts and ids only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

log = logging.getLogger("scrums_velocity")


class _KeyValueFormatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: Mapping[str, Any] = getattr(record, "fields", {}) or {}
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds")
        if self.as_json:
            return json.dumps(
                {
                    "time": stamp,
                    "level": record.levelname.lower(),
                    "event": record.getMessage(),
                    **fields,
                },
                default=str,
            )
        kv = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        return f"{stamp} {record.levelname} {record.getMessage()}" + (f" {kv}" if kv else "")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, Mapping):
        return ",".join(f"{k}:{v}" for k, v in value.items()) or "-"
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


# The console of the progress bar on screen, if any (Reporter): log lines go above the bar
_live: Console | None = None


class _StderrHandler(logging.StreamHandler):
    """Log lines to stderr; while a progress bar is shown, through its console, above the bar
    and unwrapped (written straight to stderr, a line would land inside the bar's line and
    garble both; printed through rich's stderr proxy, it would be wrapped at the terminal's
    width, which breaks --log-json lines)."""

    @property
    def stream(self) -> Any:
        return sys.stderr  # as it is now: pytest and callers may swap it

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it: always stderr
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if _live is None:
            super().emit(record)
            return
        try:
            _live.print(Text(self.format(record)), soft_wrap=True, highlight=False)
        except Exception:
            self.handleError(record)


def setup_logging(as_json: bool = False, level: int = logging.INFO) -> None:
    handler = _StderrHandler()
    handler.setFormatter(_KeyValueFormatter(as_json))
    root = logging.getLogger("scrums_velocity")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    log.log(level, name, extra={"fields": fields})


class _RateColumn(ProgressColumn):
    """Items per second (details fetched, pages listed)."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "")


class Reporter:
    """Progress of a long stage. ``update`` is cheap; output is throttled."""

    def __init__(
        self, stage: str, *, tty: bool | None = None, every: float = 5.0, rate: bool = True
    ) -> None:
        """``rate``: show items per second and the time left (not for steps of uneven cost,
        such as a build's models)."""
        self.stage = stage
        self.rate = rate
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.every = every
        self._last = 0.0
        self._progress: Progress | None = None
        self._tasks: dict[str, Any] = {}
        self.values: dict[str, Any] = {}

    def __enter__(self) -> Reporter:
        global _live
        if self.tty:
            pace = (_RateColumn(), TimeRemainingColumn()) if self.rate else ()
            console = Console(stderr=True)
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                *pace,
                TextColumn("{task.fields[note]}"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )
            self._progress.start()
            _live = console
        return self

    def __exit__(self, *exc: object) -> None:
        global _live
        if self._progress is not None:
            _live = None
            self._progress.stop()
        elif self.values:
            event(f"{self.stage}.progress", **self.values)

    def bar(
        self, key: str, description: str, completed: int, total: int | None, note: str = ""
    ) -> None:
        if self._progress is None:
            return
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(description, total=total, note=note)
        self._progress.update(self._tasks[key], completed=completed, total=total, note=note)

    def update(self, **values: Any) -> None:
        self.values.update(values)
        if self._progress is not None:
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            event(f"{self.stage}.progress", **self.values)
