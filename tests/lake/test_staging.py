"""Checkpoints: whole or absent after a kill, taken every 500 details or 5 seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scrums_velocity.lake import CheckpointKey, StagingWriter
from scrums_velocity.lake import staging as checkpoints
from scrums_velocity.lake.staging import saved_details, staged

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KEY = CheckpointKey("https://api", ("WS-26-000001",), (), (), "/lake", "tasks=1")


def task_row(i: int, updated=T0) -> dict:
    return {"id": f"TSK-26-{i:06d}", "status": "done", "created_at": T0, "updated_at": updated,
            "history_count": 0, "extracted_at": T0 + timedelta(seconds=i), "run_id": "r"}  # fmt: skip


def test_every_500_details_a_whole_checkpoint(tmp_path):
    writer = StagingWriter(tmp_path, "r")
    for i in range(1, 1201):
        writer.add("tasks", "WS-26-000001", task_row(i))
        writer.add("task_history", "WS-26-000001", {"task_id": f"TSK-26-{i:06d}", "at": T0})
        writer.detail_done()
    assert writer.checkpoints == 2
    assert len(saved_details(tmp_path)) == 1000  # the last 200 are not durable yet
    writer.close()
    assert len(saved_details(tmp_path)) == 1200
    assert staged(tmp_path, "task_history").count_rows() == 1200


def test_after_5_seconds_a_checkpoint_even_with_few_details(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(checkpoints.time, "monotonic", lambda: now[0])
    writer = StagingWriter(tmp_path, "r")
    writer.add("tasks", "WS-26-000001", task_row(1))
    writer.detail_done()
    assert writer.checkpoints == 0
    now[0] += 5.0
    writer.add("tasks", "WS-26-000001", task_row(2))
    writer.detail_done()
    assert writer.checkpoints == 1
    assert len(saved_details(tmp_path)) == 2


def test_a_checkpoint_cut_short_by_a_kill_is_ignored_then_removed(tmp_path):
    folder, _ = checkpoints.start(tmp_path, "run-1", KEY, full=False)
    writer = StagingWriter(folder, "run-1")
    writer.add("tasks", "WS-26-000001", task_row(1))
    writer.checkpoint()
    torn = folder / ".ckpt-000002.tmp"
    torn.mkdir()
    (torn / "tasks-WS-26-000001.parquet").write_bytes(b"PAR1 half a file")
    assert list(saved_details(folder)) == ["TSK-26-000001"]  # only whole checkpoints count
    resumed, resumed_from = checkpoints.start(tmp_path, "run-2", KEY, full=False)
    assert resumed_from == "run-1"
    assert resumed.name == "run-2"
    assert not list(resumed.glob(".ckpt-*"))
    assert list(saved_details(resumed)) == ["TSK-26-000001"]


def test_the_latest_row_of_a_refetched_task_wins(tmp_path):
    writer = StagingWriter(tmp_path, "r")
    writer.add("tasks", "WS-26-000001", task_row(1))
    writer.checkpoint()
    later = task_row(1, updated=T0 + timedelta(days=1))
    later["extracted_at"] = T0 + timedelta(days=2)
    writer.add("tasks", "WS-26-000001", later)
    writer.checkpoint()
    assert saved_details(tmp_path) == {"TSK-26-000001": T0 + timedelta(days=1)}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"api_url": "https://other"}, "api_url differs"),
        ({"workspaces": ("WS-26-000002",)}, "workspaces differs"),
        ({"lake": "s3://bucket/lake"}, "lake differs"),
        ({"base_snapshot": "tasks=2"}, "base_snapshot differs"),
        ({"code": "0/0.0.1"}, "code differs"),
    ],
)
def test_a_checkpoint_of_another_kind_is_discarded(tmp_path, change, reason):
    folder, _ = checkpoints.start(tmp_path, "run-1", KEY, full=False)
    writer = StagingWriter(folder, "run-1")
    writer.add("tasks", "WS-26-000001", task_row(1))
    writer.checkpoint()
    other = CheckpointKey(**{**KEY.__dict__, **change})
    assert other.mismatch({**KEY.__dict__}) == reason
    fresh, resumed_from = checkpoints.start(tmp_path, "run-2", other, full=False)
    assert resumed_from is None
    assert saved_details(fresh) == {}
    assert [p.name for p in (tmp_path / ".staging").iterdir()] == ["run-2"]
