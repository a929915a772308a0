"""One writer per lake: the lease on object storage, the OS lock on a local lake."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import obstore
import pytest

from scrums_velocity.errors import LockedError
from scrums_velocity.lake import WriterLease, open_lake, resolve_location
from scrums_velocity.lake.lease import LEASE_KEY


def _write_lease(location, **fields) -> None:
    body = {"run_id": "old-run", "host": "elsewhere", "pid": 1, **fields}
    obstore.put(location.store(), LEASE_KEY, json.dumps(body).encode())


def test_a_held_lease_refuses_a_second_writer_by_name(s3_lake, tmp_path):
    location = resolve_location(s3_lake, tmp_path)
    with WriterLease(location, "run-a"):
        with pytest.raises(LockedError) as err, WriterLease(location, "run-b"):
            pass
        assert str(err.value).startswith(
            f"another run (run-a on {socket.gethostname()}, pid {os.getpid()}) is writing "
            f"the lake at {s3_lake}; its lease runs until "
        )
    with WriterLease(location, "run-c"):  # released: the next writer gets it
        pass


def test_a_live_lease_of_another_host_is_respected(s3_lake, tmp_path):
    location = resolve_location(s3_lake, tmp_path)
    until = datetime.now(UTC) + timedelta(minutes=5)
    _write_lease(location, lease_until=until.isoformat())
    with pytest.raises(LockedError, match=r"another run \(old-run on elsewhere, pid 1\)"):
        WriterLease(location, "run-b").__enter__()


@pytest.mark.parametrize("case", ["expired", "dead process on this host", "unreadable"])
def test_a_stale_lease_is_taken_over(s3_lake, tmp_path, case):
    location = resolve_location(s3_lake, tmp_path)
    if case == "expired":
        _write_lease(location, lease_until=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    elif case == "dead process on this host":
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout
        _write_lease(
            location,
            host=socket.gethostname(),
            pid=int(dead),
            lease_until=(datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        )
    else:
        obstore.put(location.store(), LEASE_KEY, b"{not json")
    with WriterLease(location, "run-b"):
        body = json.loads(bytes(obstore.get(location.store(), LEASE_KEY).bytes()))
        assert body["run_id"] == "run-b"
    with pytest.raises(FileNotFoundError):
        obstore.get(location.store(), LEASE_KEY)  # released on exit


def test_the_lease_is_renewed_while_held(s3_lake, tmp_path):
    location = resolve_location(s3_lake, tmp_path)
    lease = WriterLease(location, "run-a", lease_s=0.4)
    with lease:
        first = json.loads(bytes(obstore.get(location.store(), LEASE_KEY).bytes()))
        time.sleep(0.5)
        later = json.loads(bytes(obstore.get(location.store(), LEASE_KEY).bytes()))
        assert later["lease_until"] > first["lease_until"]
        lease.check()


def test_a_lost_lease_stops_the_commit(s3_lake, tmp_path):
    location = resolve_location(s3_lake, tmp_path)
    lease = WriterLease(location, "run-a", lease_s=0.4)
    with lease:
        _write_lease(location, lease_until=datetime.now(UTC).isoformat())  # someone took it
        time.sleep(0.3)
        with pytest.raises(Exception, match="this run lost its lease on the lake"):
            lease.check()


def test_a_local_lake_has_one_writer(tmp_path):
    lake = open_lake(tmp_path)
    second = pytest.raises(LockedError, match=r"another run is writing the lake at ")
    with lake.lease("run-a"), second, lake.lease("run-b"):
        pass
    with lake.lease("run-c"):
        pass
