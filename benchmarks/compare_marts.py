"""Compare every mart of two warehouses, row for row (prints each; exits 1 on any difference).

Proves a change to the models, or another engine, leaves the numbers alone: build the same lake
twice (the code before and after a change, or `--engine duckdb` and `--engine spark`), then

    .venv/bin/python benchmarks/compare_marts.py before/warehouse.duckdb after/warehouse.duckdb

A mart that gained columns is compared on the old ones (the new are listed); floats to 1e-9
relative. See scrums_velocity.models.compare.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scrums_velocity.models.compare import compare_marts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    args = ap.parse_args()
    results = compare_marts(args.before, args.after)
    for result in results:
        print(result)
    return 0 if all(r.equal or "only in after" in r.note for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
