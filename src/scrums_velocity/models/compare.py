"""Compare the marts of two warehouses row for row: the proof that two builds (two engines, or
the code before and after a change) computed the same numbers.

Rows are compared as sorted multisets over the columns both sides have; floats to a relative
tolerance. ``build_info``'s ``built_at`` and ``engine`` describe the build, not the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import duckdb

SKIP = {("build_info", "built_at"), ("build_info", "engine")}


@dataclass
class MartComparison:
    mart: str
    rows: int
    columns: int
    equal: bool
    note: str = ""

    def __str__(self) -> str:
        state = "equal" if self.equal else "DIFFER"
        return f"{self.mart}: {self.rows} rows x {self.columns} columns {state}{self.note}"


def _marts(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for table, column in con.execute(
        "select table_name, column_name from duckdb_columns() "
        "where schema_name = 'marts' order by table_name, column_index"
    ).fetchall():
        out.setdefault(table, []).append(column)
    return out


def _same(a: object, b: object, rel: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


def _key(row: tuple) -> tuple:
    return tuple((v is None, f"{v:.9g}" if isinstance(v, float) else str(v)) for v in row)


def compare_marts(before: Path, after: Path, rel: float = 1e-9) -> list[MartComparison]:
    """One comparison per mart of either warehouse (a mart on one side only is unequal)."""
    a = duckdb.connect(str(before), read_only=True)
    b = duckdb.connect(str(after), read_only=True)
    try:
        ma, mb = _marts(a), _marts(b)
        out = []
        for mart in sorted(set(ma) | set(mb)):
            if mart not in ma or mart not in mb:
                side = "after" if mart in mb else "before"
                out.append(MartComparison(mart, 0, 0, False, f" (only in {side})"))
                continue
            cols = [c for c in ma[mart] if c in mb[mart] and (mart, c) not in SKIP]
            extra = [c for c in mb[mart] if c not in ma[mart]]
            select = ", ".join(f'"{c}"' for c in cols)
            ra = sorted(a.execute(f"select {select} from marts.{mart}").fetchall(), key=_key)
            rb = sorted(b.execute(f"select {select} from marts.{mart}").fetchall(), key=_key)
            equal = len(ra) == len(rb) and all(
                all(_same(x, y, rel) for x, y in zip(p, q, strict=True))
                for p, q in zip(ra, rb, strict=True)
            )
            note = f" (new columns: {', '.join(extra)})" if extra else ""
            out.append(MartComparison(mart, len(ra), len(cols), equal, note))
        return out
    finally:
        a.close()
        b.close()
