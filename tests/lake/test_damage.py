"""A damaged lake: every reader refuses it with one line, the next extraction repairs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from scrums_velocity.api_server import create_app, generate
from scrums_velocity.lake import LakeDamaged, open_lake
from scrums_velocity.models.runner import BuildSettings, build
from tests.conftest import NOW
from tests.extract.conftest import assert_same_lake, read_lake, run_extract


@pytest.fixture(scope="module")
def ds():
    return generate(tasks=600, seed=71, now=NOW)


@pytest.fixture(scope="module")
def reference(ds, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reference")
    run_extract(ds, create_app(ds), path)
    return path


def a_file(data_dir: Path, dataset: str) -> Path:
    """One data file of the head snapshot of ``dataset`` (through the Delta log)."""
    lake = open_lake(data_dir)
    table = lake.dataset(dataset, lake.head())
    return data_dir / "lake" / dataset / table.files[0]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def velocity(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scrums_velocity", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("dataset", "harm", "reason"),
    [
        ("tasks", truncate, r"is truncated or changed \(\d+ of \d+ bytes\)"),
        ("tasks", Path.unlink, "is missing"),
        ("task_history", Path.unlink, "is missing"),
        ("task_versions", truncate, r"is truncated or changed"),
    ],
)
def test_build_refuses_a_damaged_snapshot_in_one_line(ds, tmp_path, dataset, harm, reason):
    run_extract(ds, create_app(ds), tmp_path)
    build(BuildSettings(data_dir=tmp_path))
    before = (tmp_path / "warehouse.duckdb").read_bytes()
    victim = a_file(tmp_path, dataset)
    harm(victim)
    r = velocity("build", "--data-dir", str(tmp_path))
    assert r.returncode == 9
    (line,) = r.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"Error: the lake's snapshot {open_lake(tmp_path).head().run_id} ")
    rel = victim.relative_to(tmp_path / "lake")
    assert f"is damaged: {rel} " in line
    assert "the next 'velocity extract' sets the damage aside and refetches it" in line
    assert "Traceback" not in r.stderr
    assert re.search(reason, line)
    assert (tmp_path / "warehouse.duckdb").read_bytes() == before  # the last good one stays


@pytest.mark.parametrize(
    ("dataset", "harm", "full"),
    [
        ("tasks", truncate, False),
        ("tasks", Path.unlink, True),
        ("task_history", Path.unlink, False),
        ("task_history", truncate, True),
    ],
)
def test_the_next_extraction_sets_the_damage_aside_and_rebuilds(
    ds, reference, tmp_path, dataset, harm, full
):
    app = create_app(ds)
    run_extract(ds, app, tmp_path)
    victim = a_file(tmp_path, dataset)
    rel = victim.relative_to(tmp_path / "lake").as_posix()
    size = victim.stat().st_size
    harm(victim)
    result = run_extract(ds, app, tmp_path, full=full)
    assert result.mode == "rebuild"
    assert result.files_set_aside == 1
    assert result.details_fetched == ds.tasks.height  # everything refetched
    assert "the lake was damaged: 1 files set aside" in result.summary()
    assert_same_lake(reference, tmp_path)
    assert open_lake(tmp_path).damage(open_lake(tmp_path).head()) == []
    kept = tmp_path / "lake" / "_velocity" / "damaged" / result.run_id / rel
    assert kept.exists() == (harm is truncate)  # what was left of it is kept for inspection
    if harm is truncate:
        assert kept.stat().st_size == size // 2
    build(BuildSettings(data_dir=tmp_path))
    # and the run after is incremental again
    assert run_extract(ds, app, tmp_path).mode == "incremental"


def test_a_narrowed_run_refuses_a_damaged_lake(ds, tmp_path):
    app = create_app(ds)
    run_extract(ds, app, tmp_path)
    truncate(a_file(tmp_path, "tasks"))
    with pytest.raises(LakeDamaged, match="without --service-line or --project"):
        run_extract(ds, app, tmp_path, service_lines=(ds.tasks["service_line_id"][0],))


def test_missing_tasks_and_their_history_survive_a_rebuild(ds, tmp_path):
    """Tasks the API no longer returns are kept (marked missing) with their history."""
    app = create_app(ds)
    run_extract(ds, app, tmp_path)
    gone = ds.tasks["id"][5]
    history = read_lake(tmp_path, "task_history").filter(task_id=gone).height
    assert history > 0
    app.state.store.remove(gone)
    truncate(a_file(tmp_path, "task_versions"))
    run_extract(ds, app, tmp_path)
    tasks = read_lake(tmp_path, "tasks")
    assert tasks.filter(id=gone)["missing_since"].is_not_null().all()
    assert read_lake(tmp_path, "task_history").filter(task_id=gone).height == history
