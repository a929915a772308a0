"""The Spark session the Spark tests share (one per xdist worker; spark_session reuses it)."""

from __future__ import annotations

import shutil
import time

import pytest

# For the tests' small lakes: interpreted expressions instead of Janino-compiled code, no
# adaptive re-planning, one shuffle partition and the JVM's quick (C1) JIT. Query results do not
# depend on these; per-query overhead does. Measured on test_spark_engine.py on 2 cores: 101.7 s
# with the production settings, 79.2 s with these (the per-model builds 37.6 -> 22.4 s); one
# 2,500-task build from the command line 42.6 -> 29.6 s. The 1M-task benchmark
# (benchmarks/build_bench.py --engine spark) runs with the production settings.
SMALL_DATA_CONF = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "1",
    "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1",
}


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:  # pragma: no cover
        pytest.skip("no Java runtime (make spark)")
    from scrums_velocity.models.spark import spark_session

    started = time.perf_counter()
    session = spark_session("local[2]", SMALL_DATA_CONF)
    print(f"\nspark session started in {time.perf_counter() - started:.1f} s")
    return session
