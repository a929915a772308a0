"""One run per data dir.

The lock is an OS file lock (``filelock``, ``flock`` on POSIX) on ``<data-dir>/.velocity.lock``:
the kernel releases it when the holding process dies, so a lock left by a killed run is simply
taken over. Beside it, ``.velocity.lock.json`` names the holder (pid, host, command, start time)
so that a refused run can say who holds the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from scrums_velocity.errors import ConfigError, LockedError

LOCK_NAME = ".velocity.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return (
            f"pid {info['pid']} on {info['host']} ('{info['command']}', "
            f"started {info['started_at']})"
        )
    except (OSError, ValueError, KeyError):
        return "another process"


@contextlib.contextmanager
def data_dir_lock(data_dir: Path, command: str) -> Iterator[None]:
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"--data-dir {data_dir} is a file, not a directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the data dir {data_dir}: {exc.strerror}") from None
    lock_path = data_dir / LOCK_NAME
    info_path = data_dir / (LOCK_NAME + ".json")
    lock = FileLock(lock_path, timeout=0, is_singleton=False)
    try:
        lock.acquire()
    except Timeout:
        raise LockedError(
            f"{data_dir} is already in use: locked by {_holder(info_path)}; "
            "another velocity run is already running"
        ) from None
    try:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        tmp = info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, info_path)
        yield
    finally:
        with contextlib.suppress(OSError):
            info_path.unlink()
        lock.release()
