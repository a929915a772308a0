"""One-line errors and exit codes for the operator; the token never leaks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scrums_velocity.api_server import Knobs, generate
from scrums_velocity.extract.client import ClientSettings, TasksApi
from tests.conftest import NOW, live_server


@pytest.fixture(scope="module")
def ds():
    return generate(tasks=400, seed=37, now=NOW, workspaces=2)


def velocity(
    *args: str, token: str | None, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRUMS_")}
    if token is not None:
        env["SCRUMS_API_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "scrums_velocity", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def one_line_error(r: subprocess.CompletedProcess) -> str:
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ")
    assert "Traceback" not in r.stderr
    return last


def test_unknown_token_is_401_and_a_foreign_workspace_is_403(ds, tmp_path):
    ws0, ws1 = ds.workspaces[0].id, ds.workspaces[1].id
    with live_server(ds) as server:
        r = velocity(
            "extract",
            "--api-url",
            server.base_url,
            "-w",
            ws0,
            "--data-dir",
            "d",
            token="svt_not_a_real_token",
            cwd=tmp_path,
        )
        assert r.returncode == 4
        assert one_line_error(r) == (
            f"Error: the API refused access to workspace {ws0}: "
            "401 unauthorized: unknown or revoked bearer token"
        )
        assert "svt_not_a_real_token" not in r.stderr + r.stdout
        r = velocity(
            "extract",
            "--api-url",
            server.base_url,
            "-w",
            ws0,
            "-w",
            ws1,
            "--data-dir",
            "d",
            token=ds.workspace_token(ws0),
            cwd=tmp_path,
        )
        assert r.returncode == 4
        assert one_line_error(r) == (
            f"Error: the API refused access to workspace {ws1}: "
            f"403 forbidden: this token may not access workspace {ws1}"
        )


def test_unreachable_api(ds, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        r = velocity(
            "extract",
            "--api-url",
            f"http://127.0.0.1:{port}",
            "-w",
            "WS-26-000021",
            "--max-attempts",
            "2",
            "--data-dir",
            "d",
            token="t",
            cwd=tmp_path,
        )
    assert r.returncode == 4
    assert one_line_error(r).startswith(
        f"Error: cannot reach the API at http://127.0.0.1:{port}: cannot connect"
    )


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        (
            ["--api-url", "http://api.example.com", "-w", "WS-26-000021"],
            "t",
            "Error: refusing plain http to api.example.com: the token would travel unencrypted",
        ),
        (
            ["--api-url", "https://api.example.com", "-w", "WS-26-000021"],
            None,
            "Error: no API token: set SCRUMS_API_TOKEN",
        ),
        (["--api-url", "https://api.example.com"], "t", "Error: no workspace to extract"),
        (["-w", "WS-26-000021"], "t", "Error: no API URL: pass --api-url or set SCRUMS_API_URL"),
        (["--api-url", "ftp://x", "-w", "W"], "t", "Error: API URL must be http(s)://host[:port]"),
        (
            ["--api-url", "https://u:svt_secret_in_url@api.example.com", "-w", "WS-26-000021"],
            "t",
            "Error: the API URL must not carry credentials (user:password@): put the token in",
        ),
    ],
)
def test_bad_arguments(tmp_path, args, token, message):
    r = velocity("extract", *args, "--data-dir", "d", token=token, cwd=tmp_path)
    assert r.returncode == 2
    assert one_line_error(r).startswith(message)
    assert "svt_secret_in_url" not in r.stdout + r.stderr  # a URL's credentials are never echoed
    assert not (tmp_path / "d").exists()  # refused before anything was written


def test_allow_http_lets_plain_http_through_to_the_network_error(tmp_path):
    r = velocity(
        "extract",
        "--api-url",
        "http://nonexistent.invalid",
        "-w",
        "WS-26-000021",
        "--allow-http",
        "--max-attempts",
        "1",
        "--data-dir",
        "d",
        token="t",
        cwd=tmp_path,
    )
    assert r.returncode == 4
    assert one_line_error(r).startswith("Error: cannot reach the API at http://nonexistent.invalid")


def test_the_token_appears_in_no_log_error_manifest_file_or_repr(ds, tmp_path):
    token = ds.admin_token
    knobs = Knobs(fault_rate=0.2, fault_kinds=("500", "drop", "invalid_json"), seed=2)
    with live_server(ds, knobs) as server:
        r = velocity(
            "extract",
            "--api-url",
            server.base_url,
            "--data-dir",
            "d",
            "--log-json",
            *[a for w in ds.workspaces for a in ("-w", w.id)],
            token=token,
            cwd=tmp_path,
        )
    assert r.returncode == 0, r.stderr
    assert '"event": "extract.done"' in r.stderr
    assert token not in r.stdout + r.stderr
    for path in (tmp_path / "d").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    settings = ClientSettings(api_url="https://x", token=token)
    assert token not in repr(settings)
    assert token not in repr(TasksApi(settings))
    assert token not in str(vars(settings).get("__repr__", ""))


def test_expected_failures_are_found_inside_task_group_errors():
    from scrums_velocity.errors import ApiAuthError
    from scrums_velocity.extract.run import first_velocity_error

    auth = ApiAuthError("refused")
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [auth]), ApiAuthError("second")])
    assert first_velocity_error(nested) is auth
    assert first_velocity_error(ExceptionGroup("bug", [auth, ValueError("bug")])) is None
    assert first_velocity_error(ValueError("bug")) is None


def test_extract_and_build_read_velocity_toml_with_flags_over_it(ds, tmp_path):
    import duckdb

    with live_server(ds) as server:
        (tmp_path / "velocity.toml").write_text(
            f'data_dir = "from-config"\n[api]\nurl = "{server.base_url}"\n'
            f'workspaces = ["{ds.workspaces[0].id}"]\n[model]\ntimezone = "Asia/Tokyo"\nbaseline_weeks = 6\n'
        )
        r = velocity("extract", token=ds.admin_token, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        lake_line = r.stdout.rstrip().splitlines()[-1]
        assert lake_line.startswith(f"lake: {tmp_path / 'from-config' / 'lake'} (snapshot ")
        n_ws0 = sum(1 for w in ds.tasks["workspace_id"] if w == ds.workspaces[0].id)
        assert f"{n_ws0} tasks listed" in r.stdout
    r = velocity("build", "--baseline-weeks", "8", token=None, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    con = duckdb.connect(str(tmp_path / "from-config" / "warehouse.duckdb"), read_only=True)
    assert con.execute("select timezone, baseline_weeks from marts.build_info").fetchall() == [
        ("Asia/Tokyo", 8)
    ]
    con.close()
