"""Model-build benchmark (prints figures and ratios; asserts nothing).

Generates lakes of 100,000 and 1,000,000 tasks (review rework raised so there are about 5 history
entries per task). For each, in fresh child processes and in the same run: the essential query
(weekly completions per service line: one DuckDB query joining tasks and their history, read
from the lake's files as the build reads them) and `velocity build`, each with its wall time
and peak RSS, their ratio, the warehouse file's size, and the best build's slowest steps from its
log (where the time goes). Targets (issue 12) at 1M tasks on 2
cores: build <= 10x the essential query, peak RSS <= 1.5 GB, warehouse <= 150 MB.

    .venv/bin/python benchmarks/build_bench.py [--sizes 100000,1000000] [--keep DIR] [--runs 3]
    .venv/bin/python benchmarks/build_bench.py --engine spark   # DuckDB and Spark side by side

`--keep DIR` generates the lakes into DIR once and reuses them on later runs. With
`--engine spark`, each lake is also built by `velocity build --engine spark` (local[*], a fresh
JVM: its start is part of the figure) into a second data dir, and the two warehouses' marts are
compared (scrums_velocity.models.compare).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from scrums_velocity.models.compare import compare_marts

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def make_lake(tasks: int, work: Path) -> tuple[Path, int, float]:
    """Generate and write the lake in a child process: a parent grown to gigabytes by the
    generator would show up in the build child's peak RSS (it is counted from the fork)."""
    data_dir = work / f"lake-{tasks}"
    if (data_dir / "lake").is_dir():  # kept from an earlier run (--keep)
        code = (
            "import sys; from pathlib import Path; from scrums_velocity.lake import open_lake\n"
            "lake = open_lake(Path(sys.argv[1])); "
            "print(lake.dataset('task_history', lake.head()).count_rows())\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True, check=True
        ).stdout
        return data_dir, int(out.strip()), 0.0
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


# The essential computation: done tasks per service line and week of their last transition
# into done (updated_at without one), from the same files the build reads (the file list from
# the Delta log, as in the build).
ESSENTIAL = r"""
import sys, duckdb
from pathlib import Path
from scrums_velocity.lake import open_lake
lake = open_lake(Path(sys.argv[1])); snap = lake.head()
con = duckdb.connect(config={"threads": 2})
con.execute("SET VARIABLE tasks = ?", [lake.local_files("tasks", snap)])
con.execute("SET VARIABLE history = ?", [lake.local_files("task_history", snap)])
rows = con.execute(
    "with done as ("
    "  select task_id, max(\"at\") as closed_at"
    "  from read_parquet(getvariable('history'), hive_partitioning = true)"
    "  where change = 'status' and to_value = 'done' group by task_id)"
    " select t.service_line_id,"
    "  date_trunc('week', coalesce(done.closed_at, t.updated_at)) as week, count(*) as completed"
    " from read_parquet(getvariable('tasks'), hive_partitioning = true) as t"
    " left join done on done.task_id = t.id where t.status = 'done' group by all"
).fetchall()
print(len(rows), "LIN-weeks")
"""


def run_child(cmd: list[str]) -> tuple[float, float, str, str]:
    """Wall time, peak RSS (MiB), first output line and log (stderr) of a fresh process."""
    with tempfile.TemporaryFile(mode="w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        log.seek(0)
        logged = log.read()
    if status != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed (status {status})")
    return elapsed, usage.ru_maxrss / 1024, (out.splitlines() or [""])[0], logged


_STEP = re.compile(r"build\.(?:model model=(\S+)|(tests|warehouse)) .*?seconds=([0-9.]+)")


def slowest(log: str, top: int = 6) -> str:
    """The build log's slowest steps (models, data tests, the warehouse write), slowest first:
    where the time goes, for whoever next works on the build."""
    steps = [
        (float(seconds), (model or step).split(".")[-1])
        for model, step, seconds in _STEP.findall(log)
    ]
    return ", ".join(f"{name} {s:.2f}" for s, name in sorted(steps, reverse=True)[:top])


def essential_in_child(data_dir: Path) -> tuple[float, float, str, str]:
    return run_child([sys.executable, "-c", ESSENTIAL, str(data_dir)])


def build_in_child(data_dir: Path, *extra: str) -> tuple[float, float, str, str]:
    cmd = [sys.executable, "-m", "scrums_velocity", "build", "--data-dir", str(data_dir)]
    return run_child([*cmd, *extra])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--keep", type=Path, help="generate lakes here once and reuse them")
    ap.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
    ap.add_argument("--runs", type=int, default=3, help="fresh processes of each, per size")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.keep or Path(tempfile.mkdtemp(prefix="build-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# build benchmark on {os.cpu_count()} cores (each query and build in a fresh process)")
    for n in sizes:
        data_dir, history, gen_s = make_lake(n, work)
        size = sum(p.stat().st_size for p in (data_dir / "lake").resolve().rglob("*.parquet"))
        made = f"generated in {gen_s:.1f} s" if gen_s else "reused"
        print(
            f"{n:>9} tasks  {history:>9} history rows ({history / n:.1f}/task)  "
            f"lake {size / 2**20:.0f} MiB ({made})"
        )
        # each measured the same way: the best of --runs fresh processes (and the median)
        essentials = sorted(essential_in_child(data_dir) for _ in range(args.runs))
        builds = sorted(build_in_child(data_dir) for _ in range(args.runs))
        essential, (wall, _, summary, log) = essentials[0], builds[0]
        rss = max(b[1] for b in builds)
        median = args.runs // 2
        warehouse = (data_dir / "warehouse.duckdb").stat().st_size
        print(
            f"          essential query: wall={essential[0]:.2f}s "
            f"(median {essentials[median][0]:.2f}s) peak_rss={essential[1]:.0f} MiB"
            f" ({essential[2]})"
        )
        print(
            f"          velocity build:  wall={wall:.2f}s (median {builds[median][0]:.2f}s) "
            f"peak_rss={rss:.0f} MiB (largest)  warehouse {warehouse / 1e6:.0f} MB"
        )
        target = "  (targets at 1M: <= 10x, <= 1536 MiB, <= 150 MB)" if n >= 1_000_000 else ""
        print(
            f"          ratio build/essential: {wall / essential[0]:.1f}x best to best, "
            f"{builds[median][0] / essentials[median][0]:.1f}x median to median{target}"
        )
        print(f"          {summary[:160]}")
        print(
            f"          slowest steps of the best build (s; a Python model's span overlaps the"
            f" models built meanwhile): {slowest(log)}"
        )
        if args.engine == "spark":
            other = data_dir.parent / f"{data_dir.name}-spark"
            other.mkdir(exist_ok=True)
            lake = ["--lake", str((data_dir / "lake").absolute())]
            s_wall, s_rss, _, _ = build_in_child(other, "--engine", "spark", *lake)
            same = compare_marts(data_dir / "warehouse.duckdb", other / "warehouse.duckdb")
            differ = [r.mart for r in same if not r.equal and "only in" not in r.note]
            print(
                f"          spark build:     wall={s_wall:.2f}s peak_rss={s_rss:.0f} MiB "
                f"(largest process)  {s_wall / wall:.1f}x DuckDB's; marts "
                + ("equal" if not differ else f"DIFFER: {', '.join(differ)}")
            )


if __name__ == "__main__":
    main()
