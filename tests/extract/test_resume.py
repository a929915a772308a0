"""Resumable extraction: a killed or failed run keeps what it checkpointed, the next run
refetches only what was not saved (plus what changed), and the lake equals a clean run's."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from pathlib import Path

import pytest

from scrums_velocity.api_server import Knobs, create_app, generate
from scrums_velocity.errors import ApiRetriesExhaustedError
from scrums_velocity.lake import open_lake
from scrums_velocity.lake.staging import STAGING, saved_details
from tests.conftest import NOW, live_server
from tests.extract.conftest import (
    api_env,
    assert_same_lake,
    comparable,
    extract_args,
    read_lake,
    run_extract,
    settings_for,
)


@pytest.fixture(scope="module")
def ds():
    return generate(tasks=2000, seed=79, now=NOW)


def staging_of(data_dir: Path) -> Path | None:
    folders = [p for p in (data_dir / STAGING).glob("*") if p.is_dir()]
    assert len(folders) <= 1
    return folders[0] if folders else None


def kill_after_checkpoints(args, env, data_dir: Path, checkpoints: int) -> int:
    """Start an extraction, SIGKILL it once ``checkpoints`` more checkpoints exist; return the
    number of details all checkpoints then hold."""
    before = staging_of(data_dir)
    start = len(list(before.glob("ckpt-*"))) if before else 0
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        staging = staging_of(data_dir)
        if staging and len(list(staging.glob("ckpt-*"))) >= start + checkpoints:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    staging = staging_of(data_dir)
    assert staging is not None
    return len(saved_details(staging))


@pytest.mark.slow
def test_sigkill_then_rerun_refetches_only_what_was_not_checkpointed(ds, tmp_path):
    killed = tmp_path / "killed"
    with live_server(ds, Knobs(rate_limit=600)) as server:
        env = api_env(ds, server)
        args = extract_args(ds, killed)
        stats = server.app.state.stats
        saved = [kill_after_checkpoints(args, env, killed, n) for n in (1, 2)]
        assert 0 < saved[0] < saved[1] < ds.tasks.height  # each resumed and saved more
        assert open_lake(killed).head() is None  # nothing was ever visible as lake data
        # a change to two tasks the checkpoints hold: the resumed run must refetch them
        changed = [t for t in saved_details(staging_of(killed))][:2]
        for tid in changed:
            server.app.state.store.update(
                server.app.state.store.by_id[tid], {"status": "cancelled"}, by="USR-26-000040"
            )
        before = stats.details
        final = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        rerun_details = stats.details - before
        reference = tmp_path / "reference"
        run_extract(ds, server.app, reference)  # a clean run of the same server state
    assert final.returncode == 0, final.stderr
    assert rerun_details <= ds.tasks.height - saved[1] + len(changed)
    assert rerun_details >= ds.tasks.height - saved[1]  # the rest was fetched, nothing skipped
    assert f"(+{saved[1] - len(changed)} reused from run " in final.stdout
    a, b = comparable(reference), comparable(killed)
    assert a["tasks"].equals(b["tasks"])
    assert a["task_history"].equals(b["task_history"])
    # versions: every state a run saw, so also the two tasks' states before the change
    extra = b["task_versions"].join(a["task_versions"], on=["id", "updated_at"], how="anti")
    assert sorted(extra["id"]) == sorted(changed)
    assert a["task_versions"].height + 2 == b["task_versions"].height
    run = read_lake(killed, "runs").row(0, named=True)
    assert run["details_reused"] == saved[1] - len(changed)
    assert run["resumed_from"] is not None
    assert staging_of(killed) is None  # checkpoints go with the commit


def test_killed_at_several_points_then_rerun_gives_the_lake_of_a_clean_run(ds, tmp_path):
    reference = tmp_path / "reference"
    run_extract(ds, create_app(ds), reference)
    killed = tmp_path / "killed"
    with live_server(ds, Knobs(rate_limit=600)) as server:
        env = api_env(ds, server)
        args = extract_args(ds, killed)
        saved = [kill_after_checkpoints(args, env, killed, n) for n in (1, 1, 1)]
        before = server.app.state.stats.details
        final = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        rerun_details = server.app.state.stats.details - before
    assert final.returncode == 0, final.stderr
    assert saved == sorted(saved)
    assert rerun_details == ds.tasks.height - saved[-1]
    assert_same_lake(reference, killed)
    # the manifest counts what the resumed run added, its checkpoints' rows included
    (run,) = read_lake(killed, "runs").iter_rows(named=True)
    assert run["history_rows_added"] == read_lake(killed, "task_history").height
    assert run["versions_added"] == ds.tasks.height


def test_a_failed_run_keeps_its_checkpoints_and_the_next_one_resumes(ds, tmp_path):
    app = create_app(ds)
    # the API starts failing after 700 requests: the run fails with retries exhausted
    broken = create_app(ds, Knobs(fault_rate=1.0, fault_kinds=("503",), fault_after=700))
    with pytest.raises(ApiRetriesExhaustedError):
        run_extract(ds, broken, tmp_path, settings=settings_for(ds, max_attempts=2))
    staging = staging_of(tmp_path)
    assert staging is not None
    saved = len(saved_details(staging))
    assert saved >= 500
    result = run_extract(ds, app, tmp_path)
    assert result.details_reused == saved
    assert result.details_fetched == ds.tasks.height - saved
    reference = tmp_path / "reference"
    run_extract(ds, app, reference)
    assert_same_lake(reference, tmp_path)


def test_a_checkpoint_for_another_api_is_discarded_with_a_log_line(ds, tmp_path, caplog):
    logger = logging.getLogger("scrums_velocity")
    logger.addHandler(caplog.handler)  # setup_logging stops propagation to the root logger
    caplog.set_level(logging.INFO, logger="scrums_velocity")
    app = create_app(ds)
    broken = create_app(ds, Knobs(fault_rate=1.0, fault_kinds=("503",), fault_after=700))
    with pytest.raises(ApiRetriesExhaustedError):
        run_extract(ds, broken, tmp_path, settings=settings_for(ds, max_attempts=2))
    assert staging_of(tmp_path) is not None
    # another API URL: discarded with a log line, everything fetched again
    result = run_extract(ds, app, tmp_path, settings=settings_for(ds, api_url="http://127.0.0.2:1"))
    assert result.resumed_from is None
    assert result.details_fetched == ds.tasks.height
    logger.removeHandler(caplog.handler)
    discarded = [r for r in caplog.records if r.getMessage() == "extract.checkpoint_discarded"]
    assert {r.fields["reason"] for r in discarded} == {"api_url differs"}


def test_full_ignores_checkpoints_but_still_checkpoints(ds, tmp_path):
    broken = create_app(ds, Knobs(fault_rate=1.0, fault_kinds=("503",), fault_after=700))
    with pytest.raises(ApiRetriesExhaustedError):
        run_extract(ds, broken, tmp_path, settings=settings_for(ds, max_attempts=2))
    with pytest.raises(ApiRetriesExhaustedError):
        run_extract(ds, broken, tmp_path, settings=settings_for(ds, max_attempts=2), full=True)
    staging = staging_of(tmp_path)
    assert staging is not None  # the --full run's own checkpoints
    result = run_extract(ds, create_app(ds), tmp_path, full=True)
    assert result.resumed_from is None
    assert result.details_fetched == ds.tasks.height
