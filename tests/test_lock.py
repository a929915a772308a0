"""One run per data dir: a clear error names the holder; a dead holder's lock is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from scrums_velocity.errors import LockedError
from scrums_velocity.lock import data_dir_lock


def test_a_second_run_is_refused_with_the_holder_named(tmp_path):
    with data_dir_lock(tmp_path, "velocity nightly"):
        with pytest.raises(LockedError) as err, data_dir_lock(tmp_path, "velocity extract"):
            pass
        message = str(err.value)
        assert message.startswith(f"{tmp_path} is already in use: locked by pid {os.getpid()} on ")
        assert "('velocity nightly', started " in message
        assert message.endswith("another velocity run is already running")
    with data_dir_lock(tmp_path, "velocity extract"):  # released: free again
        pass


def test_the_cli_says_already_running(tmp_path):
    with data_dir_lock(tmp_path / "d", "velocity nightly"):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "scrums_velocity",
                "extract",
                "--api-url",
                "http://127.0.0.1:9",
                "-w",
                "WS-26-000021",
                "--data-dir",
                str(tmp_path / "d"),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "SCRUMS_API_TOKEN": "t"},
            timeout=60,
        )
    assert r.returncode == 3
    assert r.stderr.startswith(f"Error: {tmp_path / 'd'} is already in use: locked by pid")
    assert "already running" in r.stderr


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from scrums_velocity.lock import data_dir_lock
        with data_dir_lock(Path({str(tmp_path)!r}), "velocity extract"):
            print("locked", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(LockedError, match=f"pid {proc.pid}"), data_dir_lock(tmp_path, "x"):
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with data_dir_lock(tmp_path, "velocity extract"):
        assert (tmp_path / ".velocity.lock.json").read_text().find(str(os.getpid())) > 0
