"""Logging and progress (observe.py): log lines on a terminal go above the progress bar, whole."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

from tests.models.lakes import one_done_task


def _on_a_terminal(args: list[str], columns: int = 80) -> str:
    """Run the CLI with stderr and stdout on a pseudo-terminal; everything it drew, raw."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrums_velocity", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the follower side closed: the process is gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(leader)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_a_builds_log_lines_go_above_its_progress_bar_whole(tmp_path):
    """Each log line starts on a fresh line (after the bar is cleared), never glued to the bar's
    text, and is not wrapped at the terminal's width (--log-json lines stay JSON)."""
    data_dir = one_done_task().write(tmp_path)
    drawn = _on_a_terminal(["build", "--data-dir", str(data_dir), "--log-json"], columns=80)
    assert "Building models" in drawn  # the bar was drawn
    lines = [m.start() for m in re.finditer(r'\{"time"', drawn)]
    assert len(lines) > 20  # build.start, a build.model per model, ...
    for start in lines:
        # what the terminal got just before it, but the cursor's show/hide codes
        before = re.sub(r"\x1b\[\?25[hl]$", "", drawn[max(0, start - 12) : start])
        assert not before or before.endswith(("\n", "\x1b[2K")), repr(drawn[start - 60 : start])
        line = drawn[start:].split("\r\n", 1)[0]
        assert line.endswith("}"), repr(line)  # whole: one JSON object on one line
