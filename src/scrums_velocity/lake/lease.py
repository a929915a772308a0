"""One writer at a time per lake, whatever machine it runs on.

A local lake is locked with an OS lock on ``<lake>/_velocity_writer.lock`` (the kernel releases
it when the holder dies). An object-store lake has a lease object ``_velocity/writer.json``
created with a create-only PUT (``If-None-Match: *``): of two runs racing for it exactly one wins,
the other fails with :class:`LockedError` naming the holder. The holder renews the lease every
``LEASE_S / 4`` seconds with a conditional PUT on its ETag. A lease that expired (its holder
stopped renewing) or whose holder is a dead process on this host is taken over, again with a
conditional PUT, so that of two runs taking over the same stale lease only one succeeds.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from filelock import FileLock, Timeout

from scrums_velocity.errors import LakeError, LockedError
from scrums_velocity.lake.location import LakeLocation, redact, storage_message
from scrums_velocity.observe import event

LEASE_S = 300.0
LEASE_KEY = "_velocity/writer.json"
LOCAL_LOCK = "_velocity_writer.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Holder:
    run_id: str
    host: str
    pid: int
    lease_until: datetime

    @classmethod
    def parse(cls, body: bytes) -> _Holder | None:
        try:
            data = json.loads(body)
            return cls(
                str(data["run_id"]),
                str(data["host"]),
                int(data["pid"]),
                datetime.fromisoformat(data["lease_until"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treated as stale

    def stale(self, now: datetime) -> bool:
        if self.lease_until < now:
            return True
        return self.host == socket.gethostname() and not _alive(self.pid)


class WriterLease:
    """``with WriterLease(location, run_id):`` holds the lake for one run."""

    def __init__(self, location: LakeLocation, run_id: str, lease_s: float = LEASE_S) -> None:
        self.location = location
        self.run_id = run_id
        self.lease_s = lease_s
        self._file_lock: FileLock | None = None
        self._store: Any = None
        self._etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None
        # Set by Lake.prepare: the head snapshot a run builds on and the table versions it
        # commits on top of (the head's, or what quarantine left of them).
        self.head: Any = None
        self.base: dict[str, int] | None = None

    # ---- object store ----------------------------------------------------------------------
    def _body(self) -> bytes:
        until = datetime.now(UTC) + timedelta(seconds=self.lease_s)
        return json.dumps(
            {
                "run_id": self.run_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "lease_until": until.isoformat(),
            }
        ).encode()

    def _acquire_object(self) -> None:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        store = self._store = self.location.store()
        try:
            self._etag = obstore.put(store, LEASE_KEY, self._body(), mode="create")["e_tag"]
            return
        except AlreadyExistsError:
            pass
        current = obstore.get(store, LEASE_KEY)
        etag = current.meta["e_tag"]
        holder = _Holder.parse(bytes(current.bytes()))
        if holder is not None and not holder.stale(datetime.now(UTC)):
            raise LockedError(
                f"another run ({holder.run_id} on {holder.host}, pid {holder.pid}) is writing "
                f"the lake at {self.location}; its lease runs until "
                f"{holder.lease_until.isoformat(timespec='seconds')} unless it renews it"
            )
        try:
            self._etag = obstore.put(store, LEASE_KEY, self._body(), mode={"e_tag": etag})["e_tag"]
        except PreconditionError:
            raise LockedError(
                f"another run took over the stale lease on the lake at {self.location} first"
            ) from None
        event(
            "lake.lease_taken_over",
            previous=holder.run_id if holder else "(unreadable)",
            host=holder.host if holder else "-",
        )

    def _renew_loop(self) -> None:
        import obstore

        while not self._stop.wait(self.lease_s / 4):
            try:
                result = obstore.put(
                    self._store, LEASE_KEY, self._body(), mode={"e_tag": self._etag}
                )
                self._etag = result["e_tag"]
            except Exception as exc:
                self.lost = storage_message(exc)
                event("lake.lease_lost", run_id=self.run_id, error=self.lost)
                return

    def _release_object(self) -> None:
        import obstore

        with contextlib.suppress(Exception):
            current = obstore.head(self._store, LEASE_KEY)
            if current["e_tag"] == self._etag:
                obstore.delete(self._store, LEASE_KEY)

    # ---- the context manager ---------------------------------------------------------------
    def __enter__(self) -> WriterLease:
        try:
            if self.location.is_local:
                os.makedirs(self.location.url, exist_ok=True)
                self._file_lock = FileLock(os.path.join(self.location.url, LOCAL_LOCK), timeout=0)
                try:
                    self._file_lock.acquire()
                except Timeout:
                    raise LockedError(
                        f"another run is writing the lake at {self.location}"
                    ) from None
            else:
                self._acquire_object()
                self._thread = threading.Thread(target=self._renew_loop, daemon=True)
                self._thread.start()
        except (LockedError, LakeError):
            raise
        except OSError as exc:
            raise LakeError(
                f"cannot lock the lake at {self.location}: {redact(str(exc))}"
            ) from None
        except Exception as exc:  # obstore's errors: unreachable store, no bucket, denied
            raise LakeError(
                f"cannot reach the lake at {self.location}: {storage_message(exc)}"
            ) from None
        return self

    def check(self) -> None:
        """Raise if the lease was lost (so this run must not publish)."""
        if self.lost is not None:
            raise LakeError(f"this run lost its lease on the lake at {self.location}: {self.lost}")

    def __exit__(self, *exc: object) -> None:
        if self._file_lock is not None:
            self._file_lock.release()
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._release_object()
