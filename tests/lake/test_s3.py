"""The lake on S3-compatible storage (moto on 127.0.0.1): same marts as a local lake, kills and
concurrent writers leave it consistent, credentials appear nowhere."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from scrums_velocity.api_server import create_app, free_port, generate
from scrums_velocity.lake import open_lake
from scrums_velocity.models.runner import BuildSettings, build
from tests.conftest import NOW, live_server
from tests.extract.conftest import (
    api_env,
    assert_same_lake,
    check_consistent,
    extract_args,
    run_extract,
)
from tests.lake.conftest import ACCESS_KEY, SECRET_KEY

MART_KEYS = {
    "lin_velocity_weekly": ["service_line_id", "week_start"],
    "lin_velocity_latest": ["service_line_id"],
    "lin_flow_weekly": ["service_line_id", "week_start"],
    "lin_status_daily": ["service_line_id", "day", "status"],
    "lin_aging_wip": ["task_id"],
    "project_velocity_weekly": ["project_id", "week_start"],
    "data_quality": ["check_name", "workspace_id", "service_line_id", "item"],
    "lin_velocity_signals": ["service_line_id", "week_start"],
    "lin_forecast": ["service_line_id"],
}


@pytest.fixture(scope="module")
def ds():
    return generate(tasks=900, seed=53, now=NOW)


def marts(data_dir: Path) -> dict[str, pl.DataFrame]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        out = {}
        for table, key in MART_KEYS.items():
            df = con.table(f"marts.{table}").pl()
            out[table] = df.sort([k for k in key if k in df.columns], nulls_last=True)
        return out
    finally:
        con.close()


def velocity(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scrums_velocity", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_extract_and_build_on_s3_give_the_marts_of_a_local_lake(ds, s3_lake, tmp_path):
    local = tmp_path / "local"
    run_extract(ds, create_app(ds), local)
    build(BuildSettings(data_dir=local, as_of=NOW))  # one as_of: the runs' clocks differ
    remote = tmp_path / "remote"
    with live_server(ds) as server:
        env = api_env(ds, server)
        ws = [a for w in ds.workspaces for a in ("-w", w.id)]
        r = velocity("extract", "--data-dir", str(remote), "--lake", s3_lake, *ws, env=env)
        assert r.returncode == 0, r.stderr
        assert f"lake: {s3_lake} (snapshot " in r.stdout
    r = velocity(
        "build", "--data-dir", str(remote), "--lake", s3_lake, "--as-of", NOW.isoformat(), env=env
    )
    assert r.returncode == 0, r.stderr
    assert not (remote / "lake").exists()  # the lake is in the bucket; the warehouse is local
    assert_same_lake(local, remote, lake_b=s3_lake)
    a, b = marts(local), marts(remote)
    for table in MART_KEYS:
        assert a[table].height > 0 or table in ("project_velocity_weekly",), table
        assert a[table].equals(b[table]), table
    con = duckdb.connect(str(remote / "warehouse.duckdb"), read_only=True)
    url, snap = con.execute("select lake_url, lake_snapshot from marts.build_info").fetchall()[0]
    assert url == s3_lake
    assert snap == open_lake(remote, s3_lake).head().run_id


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_gives_the_lake_of_a_clean_run(ds, s3_lake, tmp_path):
    reference = tmp_path / "reference"
    run_extract(ds, create_app(ds), reference)
    killed = tmp_path / "killed"
    rng = random.Random(11)
    with live_server(ds) as server:
        env = api_env(ds, server)
        ws = [a for w in ds.workspaces for a in ("-w", w.id)]
        args = extract_args(ds, killed, "--lake", s3_lake)
        t0 = time.monotonic()  # how long one run takes here, to spread the kills over it
        probe = velocity(
            "extract",
            "--data-dir",
            str(tmp_path / "probe"),
            "--lake",
            s3_lake.replace("/lake", "/probe"),
            *ws,
            env=env,
        )
        assert probe.returncode == 0, probe.stderr
        duration = time.monotonic() - t0
        sizes = []
        for delay in sorted(rng.uniform(0.3, duration * 0.95) for _ in range(4)):
            proc = subprocess.Popen(
                args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            sizes.append(check_consistent(killed, s3_lake))
        final = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert all(n in (0, ds.tasks.height) for n in sizes), sizes  # nothing half-committed
    assert_same_lake(reference, killed, lake_b=s3_lake)


@pytest.mark.slow
def test_two_writers_on_one_lake_one_fails_with_a_clear_line(ds, s3_lake, tmp_path):
    """Two runs from two data dirs (as from two machines) start together on one S3 lake."""
    reference = tmp_path / "reference"
    run_extract(ds, create_app(ds), reference)
    with live_server(ds) as server:
        env = api_env(ds, server)
        procs = [
            subprocess.Popen(
                extract_args(ds, tmp_path / name, "--lake", s3_lake),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("one", "two")
        ]
        outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in outcomes)
    assert codes in ([0, 3], [0, 0]), outcomes  # one waits for nobody: it fails, or both commit
    for code, err in outcomes:
        if code == 3:
            last = err.strip().splitlines()[-1]
            assert last.startswith("Error: another run (")
            assert f"is writing the lake at {s3_lake}" in last
    assert_same_lake(reference, tmp_path / "one", lake_b=s3_lake)
    runs = open_lake(tmp_path, s3_lake).read("runs")
    assert runs.filter(pl.col("outcome") == "succeeded").height == codes.count(0)


@pytest.mark.slow
def test_credentials_appear_nowhere(ds, s3_lake, s3_server, tmp_path):
    data_dir = tmp_path / "data"
    with live_server(ds) as server:
        env = api_env(ds, server)
        ws = [a for w in ds.workspaces for a in ("-w", w.id)]
        outputs = [
            velocity("extract", "--data-dir", str(data_dir), "--lake", s3_lake, *ws, env=env),
            velocity("build", "--data-dir", str(data_dir), "--lake", s3_lake, env=env),
            velocity("lake", "history", "--data-dir", str(data_dir), "--lake", s3_lake, env=env),
            # failures: a bucket that does not exist, an endpoint nobody listens on
            velocity(
                "build", "--data-dir", str(data_dir), "--lake", "s3://no-such-bucket-x/l", env=env
            ),
            velocity(
                "extract",
                "--data-dir",
                str(tmp_path / "x"),
                "--lake",
                s3_lake,
                *ws,
                env={**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
            ),
        ]
    assert [o.returncode for o in outputs[:3]] == [0, 0, 0], [o.stderr for o in outputs]
    for failed in outputs[3:]:
        assert failed.returncode not in (0, 1), failed.stderr
        assert failed.stderr.strip().splitlines()[-1].startswith("Error: ")
        assert "Traceback" not in failed.stderr
    texts = [o.stdout + o.stderr for o in outputs]
    files = [p.read_bytes() for p in data_dir.rglob("*") if p.is_file()]
    objects = list(s3_server.objects(s3_lake.split("/")[2]).values())
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    warehouse = str(con.execute("select * from marts.build_info").fetchall())
    con.close()
    lake = open_lake(data_dir, s3_lake)
    reprs = [repr(lake), repr(lake.location), str(lake.location.storage_options)]
    for secret in (SECRET_KEY, ACCESS_KEY):
        assert not any(secret in t for t in texts)
        assert not any(secret.encode() in b for b in files + objects)
        assert secret not in warehouse
        assert not any(secret in r for r in reprs)
    assert len(objects) > 10  # the search covered a real lake


@pytest.mark.slow  # object_store retries a refused connection for about 4 s
def test_an_endpoint_that_refuses_connections_is_named_with_the_cause(tmp_path):
    port = free_port()  # nothing listens there
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": "us-east-1",
    }
    r = velocity("build", "--data-dir", str(tmp_path), "--lake", "s3://bucket/lake", env=env)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        "Error: cannot read the lake at s3://bucket/lake: Generic S3 error: "
        "Connection refused (os error 111)"
    ]
    assert SECRET_KEY not in r.stderr + r.stdout
