"""A run killed at any instant leaves the previous lake readable and consistent; the next run
completes the work and the result equals an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from scrums_velocity.api_server import create_app, generate
from scrums_velocity.extract import lake as lake_module
from tests.conftest import NOW, live_server
from tests.extract.conftest import assert_same_lake, read_lake, run_extract


@pytest.fixture(scope="module")
def ds():
    return generate(tasks=2000, seed=41, now=NOW)


def check_consistent(data_dir):
    """The lake, if any, is one complete snapshot: every file readable, tasks unique."""
    link = data_dir / "lake"
    if not link.is_symlink():
        assert not link.exists()
        return 0
    snap = link.resolve()
    assert snap.is_dir()
    assert not snap.name.endswith(".tmp")
    for path in snap.rglob("*.parquet"):
        pl.read_parquet(path)  # raises on a torn file
    tasks = read_lake(data_dir, "tasks")
    assert tasks["id"].n_unique() == tasks.height
    return tasks.height


def test_sigkill_at_random_points_then_rerun_gives_the_same_lake(ds, tmp_path):
    reference = tmp_path / "reference"
    run_extract(ds, create_app(ds), reference)
    killed = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "scrums_velocity",
        "extract",
        "--data-dir",
        str(killed),
        *[a for w in ds.workspaces for a in ("-w", w.id)],
    ]
    rng = random.Random(7)
    with live_server(ds) as server:
        env = {**os.environ, "SCRUMS_API_URL": server.base_url, "SCRUMS_API_TOKEN": ds.admin_token}
        t0 = time.monotonic()
        # how long one uninterrupted run takes here, to spread the kills over it
        probe = tmp_path / "probe"
        subprocess.run([*args[:5], str(probe), *args[6:]], env=env, capture_output=True, check=True)
        duration = time.monotonic() - t0
        kills = sorted(rng.uniform(0.2, duration * 0.95) for _ in range(5))
        sizes = []
        for delay in kills:
            proc = subprocess.Popen(
                args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            sizes.append(check_consistent(killed))
        final = subprocess.run(args, env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert all(n in (0, ds.tasks.height) for n in sizes), sizes  # nothing half-committed
    assert_same_lake(reference, killed)
    staging = killed / ".lake" / "staging"
    assert not staging.exists() or not any(staging.iterdir())


@pytest.mark.parametrize("step", ["rename", "replace"])
def test_a_crash_inside_the_commit_leaves_the_previous_snapshot(ds, tmp_path, monkeypatch, step):
    app = create_app(ds)
    run_extract(ds, app, tmp_path)
    before = os.readlink(tmp_path / "lake")
    app.state.store.update(
        app.state.store.by_id[ds.tasks["id"][0]], {"status": "cancelled"}, by="USR-26-000040"
    )

    real = getattr(os, step)

    def crash(src, dst, *a, **k):
        if step == "rename" or str(dst).endswith("/lake"):
            raise KeyboardInterrupt("simulated crash")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(lake_module.os, step, crash)
    with pytest.raises(KeyboardInterrupt):
        run_extract(ds, app, tmp_path)
    monkeypatch.undo()
    assert os.readlink(tmp_path / "lake") == before
    assert check_consistent(tmp_path) == ds.tasks.height
    result = run_extract(ds, app, tmp_path)
    assert result.tasks_changed == 1
    assert (
        read_lake(tmp_path, "tasks").filter(pl.col("id") == ds.tasks["id"][0])["status"].item()
        == "cancelled"
    )
    snaps = [p.name for p in (tmp_path / ".lake" / "snapshots").iterdir()]
    assert not [s for s in snaps if s.endswith(".tmp")]
