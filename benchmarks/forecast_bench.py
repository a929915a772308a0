"""Forecast benchmark (prints figures; asserts nothing).

50 service lines x 10,000 Monte Carlo trials each, on daily windows of 84 days (Poisson
throughput of 0.5 to 6 a day) and 20 to 200 open tasks. Target: under 5 s on 2 cores.

    .venv/bin/python benchmarks/forecast_bench.py [--lines 50] [--trials 10000]
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import numpy as np

from scrums_velocity.models.forecast import forecast_line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=50)
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    lines = [
        (f"LIN-26-{i:06d}", rng.poisson(rng.uniform(0.5, 6.0), 84), int(rng.integers(20, 201)))
        for i in range(args.lines)
    ]
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        rows = [
            forecast_line(lin, daily, n, date(2026, 11, 28), seed=7, trials=args.trials)
            for lin, daily, n in lines
        ]
        times.append(time.perf_counter() - t0)
    print(
        f"# forecast benchmark: {args.lines} LINs x {args.trials} trials "
        "(when-done + 2/4-week counts)"
    )
    print(
        f"wall: best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s over "
        f"{args.runs} runs (target < 5 s); {min(times) / args.lines * 1000:.0f} ms per LIN"
    )
    print(f"median p85 horizon: {np.median([r['p85_days'] for r in rows]):.0f} days")


if __name__ == "__main__":
    main()
