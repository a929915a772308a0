"""Resumable extraction benchmark (prints figures, asserts nothing).

Against the mock API in its own process on 127.0.0.1 with a token-bucket rate limit, for one
dataset: the wall time of a clean extraction, next to a run SIGKILLed at 80% of that time plus the
run that resumes it (target: killed + resume <= 1.3x the clean run), and how many details the
resume reused from the checkpoints and how many it fetched.

    .venv/bin/python benchmarks/resume_bench.py [--tasks 20000] [--rate 100]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scrums_velocity.api_server.serve import mock_api_process
from scrums_velocity.lake import open_lake

NOW = "2026-11-23T09:00:00Z"


def extract(info: dict[str, str], data_dir: Path, rate: float, kill_after: float | None = None):
    cmd = [sys.executable, "-m", "scrums_velocity", "extract", "--data-dir", str(data_dir),
           "--max-rps", str(rate * 0.95), *[a for w in info["workspaces"].split(",")
                                            for a in ("-w", w)]]  # fmt: skip
    env = {**os.environ, "SCRUMS_API_URL": info["base_url"], "SCRUMS_API_TOKEN": info["token"]}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    return time.perf_counter() - t0, proc.returncode, out.decode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--rate", type=float, default=100.0, help="server rate limit, req/s")
    args = ap.parse_args()
    server = ("--tasks", str(args.tasks), "--seed", "7", "--now", NOW,
              "--rate-limit", str(args.rate))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, mock_api_process(*server) as info:
        work = Path(tmp)
        clean_s, rc, _ = extract(info, work / "clean", args.rate)
        assert rc == 0, "the clean run failed"
        killed_s, rc, _ = extract(info, work / "resumed", args.rate, kill_after=0.8 * clean_s)
        print(f"killed run: exit {rc} after {killed_s:.1f} s")
        resume_s, rc, _ = extract(info, work / "resumed", args.rate)
        assert rc == 0, "the resumed run failed"
        run = open_lake(work / "resumed").read("runs").row(-1, named=True)
    total = killed_s + resume_s
    print(f"tasks {args.tasks}, server limit {args.rate:.0f} req/s, client at 95% of it")
    print(f"clean run:               {clean_s:8.1f} s")
    print(f"killed at 80% + resume:  {killed_s:8.1f} s + {resume_s:.1f} s = {total:.1f} s")
    print(f"ratio to the clean run:  {total / clean_s:8.2f}x  (target <= 1.3x)")
    print(f"resume: {run['details_reused']} details reused from run {run['resumed_from']}, "
          f"{run['details_fetched']} fetched, {run['requests']} requests")  # fmt: skip


if __name__ == "__main__":
    main()
