"""A run killed at any instant leaves the previous lake readable and consistent; the next run
completes the work and the result equals an uninterrupted run."""

from __future__ import annotations

import random
import signal
import subprocess
import time

import polars as pl
import pytest

from scrums_velocity.api_server import create_app, generate
from scrums_velocity.lake import Lake, open_lake
from scrums_velocity.lake.staging import STAGING
from tests.conftest import NOW, live_server
from tests.extract.conftest import (
    api_env,
    assert_same_lake,
    check_consistent,
    extract_args,
    read_lake,
    run_extract,
)


@pytest.fixture(scope="module")
def ds():
    return generate(tasks=2000, seed=41, now=NOW)


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_gives_the_same_lake(ds, tmp_path):
    reference = tmp_path / "reference"
    run_extract(ds, create_app(ds), reference)
    killed = tmp_path / "killed"
    args = extract_args(ds, killed)
    rng = random.Random(7)
    with live_server(ds) as server:
        env = api_env(ds, server)
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
    staging = killed / STAGING
    assert not staging.exists() or not any(staging.iterdir())


@pytest.mark.parametrize("crash_at", ["task_versions", "task_history", "tasks", "runs"])
def test_a_crash_inside_the_commit_leaves_the_previous_snapshot(
    ds, tmp_path, monkeypatch, crash_at
):
    app = create_app(ds)
    run_extract(ds, app, tmp_path)
    before = open_lake(tmp_path).head()
    history_rows = read_lake(tmp_path, "task_history").height
    app.state.store.update(
        app.state.store.by_id[ds.tasks["id"][0]], {"status": "cancelled"}, by="USR-26-000040"
    )
    real = Lake._write

    def crash(self, dataset, data, **kwargs):
        if dataset == crash_at:
            raise KeyboardInterrupt("simulated crash")
        return real(self, dataset, data, **kwargs)

    monkeypatch.setattr(Lake, "_write", crash)
    with pytest.raises(KeyboardInterrupt):
        run_extract(ds, app, tmp_path)
    monkeypatch.undo()
    assert open_lake(tmp_path).head() == before  # readers still see the previous snapshot
    assert check_consistent(tmp_path) == ds.tasks.height
    result = run_extract(ds, app, tmp_path)
    assert result.tasks_changed == 1
    assert (
        read_lake(tmp_path, "tasks").filter(pl.col("id") == ds.tasks["id"][0])["status"].item()
        == "cancelled"
    )
    # what the crashed run appended was rolled back, not published twice
    assert read_lake(tmp_path, "task_history").height == history_rows + 1
    assert read_lake(tmp_path, "task_versions").height == ds.tasks.height + 1
