"""Compare every mart of two warehouses, row for row (prints differences; exits 1 on any).

Used to prove a change to the models leaves their numbers alone: build the same lake with the
code before and after the change, then

    .venv/bin/python benchmarks/compare_marts.py before/warehouse.duckdb after/warehouse.duckdb

Rows are compared as sorted multisets over the columns both sides have (a mart that gained a
column is compared on the old ones, and the new column is listed); floats to 1e-9 relative.
``build_info.built_at`` and ``engine`` describe the build, not the data, and are skipped.
"""

from __future__ import annotations

import argparse
import math
import sys

import duckdb

SKIP = {("build_info", "built_at"), ("build_info", "engine")}


def marts(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    rows = con.execute(
        "select table_name, column_name from duckdb_columns() "
        "where schema_name = 'marts' order by table_name, column_index"
    ).fetchall()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


def key(row: tuple) -> tuple:
    return tuple((v is None, str(v) if not isinstance(v, float) else f"{v:.9g}") for v in row)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    args = ap.parse_args()
    a = duckdb.connect(args.before, read_only=True)
    b = duckdb.connect(args.after, read_only=True)
    ma, mb = marts(a), marts(b)
    failures = 0
    for table in sorted(set(ma) | set(mb)):
        if table not in ma or table not in mb:
            print(f"{table}: only in {'after' if table in mb else 'before'}")
            continue
        cols = [c for c in ma[table] if c in mb[table] and (table, c) not in SKIP]
        extra = [c for c in mb[table] if c not in ma[table]]
        select = ", ".join(f'"{c}"' for c in cols)
        ra = sorted(a.execute(f"select {select} from marts.{table}").fetchall(), key=key)
        rb = sorted(b.execute(f"select {select} from marts.{table}").fetchall(), key=key)
        bad = len(ra) != len(rb) or any(
            not all(same(x, y) for x, y in zip(p, q, strict=True))
            for p, q in zip(ra, rb, strict=True)
        )
        note = f" (new columns: {', '.join(extra)})" if extra else ""
        print(f"{table}: {len(ra)} rows x {len(cols)} columns {'DIFFER' if bad else 'equal'}{note}")
        failures += bad
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
