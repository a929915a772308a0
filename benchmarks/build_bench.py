"""Model-build benchmark (prints figures; asserts nothing).

Generates lakes of 100,000 and 1,000,000 tasks (review rework raised so there are about 5 history
entries per task), then builds the warehouse from each in a fresh child process and prints the
wall time and the child's peak RSS. Targets: 1,000,000 tasks in under 30 s and under 4 GB on
2 cores, and no more than 12x the 100,000-task time.

    .venv/bin/python benchmarks/build_bench.py [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def make_lake(tasks: int, work: Path) -> tuple[Path, int, float]:
    """Generate and write the lake in a child process: a parent grown to gigabytes by the
    generator would show up in the build child's peak RSS (it is counted from the fork)."""
    data_dir = work / f"lake-{tasks}"
    code = (
        "import sys; from datetime import datetime, UTC; from pathlib import Path\n"
        "from scrums_velocity.api_server import generate\n"
        "from scrums_velocity.api_server.lake_export import write_lake\n"
        f"ds = generate(tasks={tasks}, seed=7, now=datetime.fromisoformat({NOW.isoformat()!r}),"
        " rework=1.5)\n"
        "write_lake(ds, Path(sys.argv[1])); print(ds.history.height)\n"
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True, check=True
    ).stdout
    return data_dir, int(out.strip()), time.perf_counter() - t0


def build_in_child(data_dir: Path) -> tuple[float, float, str]:
    cmd = [sys.executable, "-m", "scrums_velocity", "build", "--data-dir", str(data_dir)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"build of {data_dir} failed (status {status})")
    return elapsed, usage.ru_maxrss / 1024, out.splitlines()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="build-bench-"))
    print(f"# build benchmark on {os.cpu_count()} cores (each build in a fresh process)")
    times = {}
    for n in sizes:
        data_dir, history, gen_s = make_lake(n, work)
        wall, rss, summary = build_in_child(data_dir)
        times[n] = wall
        size = sum(p.stat().st_size for p in (data_dir / "lake").resolve().rglob("*.parquet"))
        print(
            f"{n:>9} tasks  {history:>9} history rows ({history / n:.1f}/task)  "
            f"lake {size / 2**20:.0f} MiB (generated in {gen_s:.1f} s)  "
            f"build wall={wall:.1f}s peak_rss={rss:.0f} MiB"
        )
        print(f"          {summary[:160]}")
    if len(sizes) == 2:
        small, big = sizes
        print(
            f"scaling: {big // small}x the tasks -> {times[big] / times[small]:.1f}x the time "
            f"(target <= 12x); 1M target: < 30 s and < 4096 MiB"
        )


if __name__ == "__main__":
    main()
