"""`velocity build --engine spark` through the real runner against the DuckDB build of the same
lake with the same settings, every mart compared (keys exact, floats within 1e-9 relative): the
golden lake in New York and a 2,500-task synthetic lake in Europe/London. The per-model parity on
an edge-case lake is test_spark_engine.py's."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from scrums_velocity.api_server import generate
from scrums_velocity.api_server.lake_export import write_lake
from scrums_velocity.config import ModelConfig
from scrums_velocity.models.compare import compare_marts
from scrums_velocity.models.runner import BuildSettings, build
from tests.models.test_velocity_golden import AS_OF as GOLDEN_AS_OF
from tests.models.test_week_tasks_golden import NAMES, extended

pytest.importorskip("pyspark")
pytest.importorskip("sqlglot")
if shutil.which("java") is None:  # pragma: no cover
    pytest.skip("no Java runtime (make spark)", allow_module_level=True)

pytestmark = pytest.mark.slow


def both(lake_dir: Path, tmp: Path, **settings) -> tuple[Path, Path]:
    """The warehouses DuckDB and Spark build from one lake with the same settings."""
    out = []
    for engine in ("duckdb", "spark"):
        data_dir = tmp / engine
        data_dir.mkdir()
        model = ModelConfig(engine=engine, spark_master="local[2]", **settings.pop("model", {}))
        build(BuildSettings(data_dir=data_dir, lake=str(lake_dir), model=model, **settings))
        settings["model"] = model.model_dump(exclude={"engine", "spark_master"})
        out.append(data_dir / "warehouse.duckdb")
    return out[0], out[1]


def assert_same_marts(duck: Path, spark: Path) -> None:
    results = compare_marts(duck, spark)
    assert len(results) >= 14
    assert [str(r) for r in results if not r.equal] == []
    assert sum(r.rows for r in results) > 100  # a comparison of something
    con = duckdb.connect(str(spark), read_only=True)
    assert con.execute("select engine from marts.build_info").fetchall() == [("spark",)]


def test_the_golden_lake_in_new_york(spark, tmp_path):
    lake = extended().write(tmp_path / "lake-data")
    duck, spark = both(
        lake / "lake",
        tmp_path,
        as_of=GOLDEN_AS_OF,
        service_lines=NAMES,
        model={"baseline_weeks": 4, "timezone": "America/New_York"},
    )
    assert_same_marts(duck, spark)


def test_a_synthetic_lake_of_thousands_of_tasks_in_london(spark, tmp_path):
    now = datetime(2026, 4, 8, 10, 30, tzinfo=UTC)  # after the UK clock change
    data_dir = tmp_path / "lake-data"
    write_lake(generate(tasks=2500, seed=11, now=now), data_dir)
    duck, spark = both(data_dir / "lake", tmp_path, model={"timezone": "Europe/London"})
    assert_same_marts(duck, spark)
