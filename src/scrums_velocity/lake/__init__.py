"""The lake: where extracted data lives, in which format, and how runs commit to it.

Every stage reaches the lake through this package only: ``extract`` writes through
:class:`Lake` (under a :class:`WriterLease`), ``models`` read its snapshots as Arrow datasets,
``nightly`` records runs and vacuums. Nothing else knows paths, the table format or the storage.
"""

from __future__ import annotations

from pathlib import Path

from scrums_velocity.errors import ConfigError
from scrums_velocity.lake.lease import WriterLease
from scrums_velocity.lake.location import LakeLocation, redact, resolve_location
from scrums_velocity.lake.migrate import legacy_snapshot, migrate
from scrums_velocity.lake.schemas import DATASETS, PARTITIONED, SCHEMAS, RunRecord, empty
from scrums_velocity.lake.staging import CheckpointKey, StagingWriter
from scrums_velocity.lake.tables import (
    Damage,
    Lake,
    LakeDamaged,
    Refresh,
    Snapshot,
    new_run_id,
    storage_errors,
)

__all__ = [
    "DATASETS",
    "PARTITIONED",
    "SCHEMAS",
    "CheckpointKey",
    "Damage",
    "Lake",
    "LakeDamaged",
    "LakeLocation",
    "Refresh",
    "RunRecord",
    "Snapshot",
    "StagingWriter",
    "WriterLease",
    "empty",
    "legacy_snapshot",
    "migrate",
    "new_run_id",
    "open_lake",
    "redact",
    "resolve_location",
    "storage_errors",
]


def open_lake(data_dir: Path, lake: str | Path | None = None) -> Lake:
    """The lake for ``data_dir`` (``lake``: a path or ``s3://`` URL; default ``<data-dir>/lake``).

    An old-layout lake in ``data_dir`` (Parquet snapshots behind a symlink) is migrated to Delta
    first, once, when the lake lives at the default place. Call with the data dir locked.
    """
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"--data-dir {data_dir} is a file, not a directory")
    location = resolve_location(lake, data_dir)
    default = location.is_local and Path(location.url) == (data_dir / "lake").absolute()
    if default:
        old = legacy_snapshot(data_dir)
        if old is not None:
            migrate(data_dir, location, old)
        root = Path(location.url)
        if root.exists() and not root.is_dir():
            raise ConfigError(f"{root} exists but is not a lake folder; move it away and rerun")
    return Lake(location)
