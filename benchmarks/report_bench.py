"""Report benchmark (prints figures; asserts nothing).

Builds a warehouse for 50 service lines × 26 weeks, then times `write_report` (index.html,
email.html, CSV, Parquet) and prints the sizes. Targets: under 10 s; email.html under 60 KiB.

    .venv/bin/python benchmarks/report_bench.py [--tasks 50000] [--lines 50]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from scrums_velocity.api_server import generate
from scrums_velocity.api_server.lake_export import write_lake
from scrums_velocity.config import Config
from scrums_velocity.models.runner import BuildSettings, build
from scrums_velocity.report.render import write_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=50_000)
    ap.add_argument("--lines", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    logging.disable(logging.INFO)
    data_dir = Path(tempfile.mkdtemp(prefix="report-bench-"))
    ds = generate(
        tasks=args.tasks,
        seed=7,
        weeks=26,
        service_lines=args.lines,
        now=datetime(2026, 11, 25, 9, tzinfo=UTC),
    )
    write_lake(ds, data_dir)
    build(BuildSettings(data_dir=data_dir))
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        result = write_report(data_dir, Config(data_dir=data_dir))
        times.append(time.perf_counter() - t0)
    index = result.sizes["index.html"]
    email = result.sizes["email.html"]
    print(f"# report benchmark: {args.lines} service lines x 26 weeks, {args.tasks} tasks")
    print(
        f"write_report  best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s "
        f"over {args.runs} runs (target < 10 s)"
    )
    print(
        f"index.html    {index / 1024:.0f} KiB ({index} bytes; plotly.js's cartesian bundle "
        "inlined once, 1.43 MiB of it)"
    )
    print(f"email.html    {email / 1024:.1f} KiB ({email} bytes; target < 60 KiB)")


if __name__ == "__main__":
    main()
