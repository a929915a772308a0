"""What a run fetched and has not committed yet: staged on the data dir's disk, in checkpoints.

Layout of ``<data-dir>/.staging/<run_id>/``::

    checkpoint.json                 who may resume it: API URL, workspaces, narrowing, lake,
                                    the snapshot it builds on, the code's checkpoint format
    ckpt-000001/<dataset>-<ws>.parquet
    ckpt-000002/...

A checkpoint is a folder of complete Parquet files written under a temporary name, fsynced and
renamed into place: after SIGKILL or a power cut every checkpoint is whole or absent, and every
detail a checkpoint holds is whole (its task row, version row and history rows are written
together). The run checkpoints every ``EVERY_DETAILS`` details or ``EVERY_S`` seconds, whichever
comes first, so a killed run loses at most that much fetched work. Checkpoints are never lake
data: the lake sees them only when the run commits, and the staging folder goes with the commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from scrums_velocity import __version__
from scrums_velocity.lake.schemas import _DEDUPE, PARTITIONED, SCHEMAS, frame
from scrums_velocity.observe import event

if TYPE_CHECKING:  # imported where used: it imports pandas
    import pyarrow.dataset as pads

STAGING = ".staging"
EVERY_DETAILS = 500
EVERY_S = 5.0
# Bump when what a checkpoint holds changes meaning: older checkpoints are then discarded.
FORMAT = 1


def staging_root(data_dir: Path) -> Path:
    return data_dir / STAGING


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class CheckpointKey:
    """What must match for a checkpoint to be resumed: anything else and it is discarded."""

    api_url: str
    workspaces: tuple[str, ...]
    service_lines: tuple[str, ...]
    projects: tuple[str, ...]
    lake: str
    base_snapshot: str | None  # the lake snapshot its rows were computed against
    code: str = f"{FORMAT}/{__version__}"

    def mismatch(self, other: dict[str, Any]) -> str | None:
        mine = asdict(self)
        for name, value in mine.items():
            theirs = other.get(name)
            if isinstance(value, tuple):
                theirs = tuple(theirs or ())
            if theirs != value:
                return f"{name} differs"
        return None


class StagingWriter:
    """Buffers rows per (dataset, workspace); :meth:`checkpoint` makes them durable."""

    def __init__(self, directory: Path, run_id: str) -> None:
        self.directory = directory
        self.run_id = run_id
        self._buffers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.rows: dict[str, int] = dict.fromkeys(PARTITIONED, 0)
        existing = sorted(directory.glob("ckpt-*")) if directory.is_dir() else []
        self._seq = int(existing[-1].name.removeprefix("ckpt-")) if existing else 0
        self._details = 0  # details buffered since the last checkpoint
        self._last = time.monotonic()
        self.checkpoints = 0
        self.details_saved = 0

    def add(self, dataset: str, workspace_id: str, row: dict[str, Any]) -> None:
        self._buffers.setdefault((dataset, workspace_id), []).append(
            {**row, "workspace_id": workspace_id}
        )
        self.rows[dataset] += 1

    def detail_done(self) -> None:
        """One detail's rows are all added: checkpoint if it is time."""
        self._details += 1
        if self._details >= EVERY_DETAILS or time.monotonic() - self._last >= EVERY_S:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Write every buffered row as one new checkpoint folder, atomically."""
        self._last = time.monotonic()
        if not any(self._buffers.values()):
            return
        self._seq += 1
        name = f"ckpt-{self._seq:06d}"
        tmp = self.directory / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for (dataset, ws), rows in self._buffers.items():
            if rows:
                path = tmp / f"{dataset}-{ws}.parquet"
                table = pa.Table.from_pylist(rows, schema=SCHEMAS[dataset])
                pq.write_table(table, path, compression="zstd")
                _fsync(path)
        _fsync(tmp)
        os.rename(tmp, self.directory / name)
        _fsync(self.directory)
        self._buffers.clear()
        self.details_saved += self._details
        self._details = 0
        self.checkpoints += 1

    def close(self) -> None:
        self.checkpoint()

    def abort(self) -> None:
        self._buffers.clear()


def staged(staging: Path, dataset: str) -> pads.Dataset | None:
    """Every complete checkpoint's rows of ``dataset`` (None when there are none)."""
    files = sorted(staging.glob(f"ckpt-*/{dataset}-*.parquet"))
    if not files:
        return None
    import pyarrow.dataset as pads

    return pads.dataset([str(f) for f in files], schema=SCHEMAS[dataset], format="parquet")


def unique_rows(staging: Path, dataset: str) -> int:
    """How many distinct rows of ``dataset`` the checkpoints hold (what a resumed run adds)."""
    ds = staged(staging, dataset)
    if ds is None:
        return 0
    return frame(ds.to_table(columns=_DEDUPE[dataset])).unique().height


def saved_details(staging: Path) -> dict[str, Any]:
    """Task id -> updated_at of every detail the checkpoints hold (the latest per task)."""
    ds = staged(staging, "tasks")
    if ds is None:
        return {}
    rows = frame(ds.to_table(columns=["id", "updated_at", "extracted_at"]))
    latest = rows.sort("extracted_at").unique("id", keep="last")
    return dict(zip(latest["id"].to_list(), latest["updated_at"].to_list(), strict=True))


def start(
    data_dir: Path, run_id: str, key: CheckpointKey, *, full: bool
) -> tuple[Path, str | None]:
    """The staging folder for ``run_id``: a resumable checkpoint's, renamed, or a new one.

    Returns the folder and the id of the run it continues (None for a fresh start). Staging
    folders that cannot be resumed (another API, workspaces, lake or snapshot, an older code
    version, ``--full``, or no checkpoint.json at all) are removed with a log line.
    """
    root = staging_root(data_dir)
    resumed_from = None
    chosen: Path | None = None
    candidates = sorted(root.iterdir()) if root.is_dir() else []
    for path in reversed(candidates):  # newest first (run ids sort by time)
        if chosen is not None or not path.is_dir():
            _discard(path, "an older staging folder")
            continue
        try:
            meta = json.loads((path / "checkpoint.json").read_text())
        except (OSError, ValueError):
            _discard(path, "no readable checkpoint.json")
            continue
        reason = "--full ignores checkpoints" if full else key.mismatch(meta.get("key", {}))
        if reason is None and not any(path.glob("ckpt-*")):
            reason = "it holds no checkpoint"
        if reason is not None:
            _discard(path, reason, run_id=meta.get("run_id"))
            continue
        chosen, resumed_from = path, str(meta.get("run_id"))
    target = root / run_id
    if chosen is not None:
        for tmp in chosen.glob(".ckpt-*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)  # what the kill interrupted
        os.rename(chosen, target)
    else:
        target.mkdir(parents=True)
    meta = {"run_id": run_id, "resumed_from": resumed_from, "key": asdict(key)}
    tmp = target / "checkpoint.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, target / "checkpoint.json")
    return target, resumed_from


def _discard(path: Path, reason: str, run_id: str | None = None) -> None:
    event("extract.checkpoint_discarded", folder=path.name, run_id=run_id or "-", reason=reason)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
