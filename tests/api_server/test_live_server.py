"""The mock API over a real socket on 127.0.0.1: concurrency, and the ``mock-api`` command."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading

import httpx
import pytest

from scrums_velocity.api_server import generate
from scrums_velocity.api_server.serve import mock_api_process
from tests.conftest import NOW, auth, live_server


def test_paging_over_a_socket_while_another_client_writes_concurrently():
    ds = generate(tasks=3000, seed=21, workspaces=1, now=NOW)
    ws = ds.workspaces[0].id
    original = ds.tasks["id"].to_list()
    lins = [s.id for s in ds.service_lines]
    with live_server(ds) as server:
        stop = threading.Event()
        writes = []

        def writer():
            rng = random.Random(1)
            with httpx.Client(base_url=server.base_url, headers=auth(ds.agent_token)) as w:
                while not stop.is_set():
                    tid = rng.choice(original)
                    body = {
                        "status": rng.choice(["in_progress", "done", "cancelled"]),
                        "service_line_id": rng.choice(lins),
                    }
                    assert w.patch(f"/v1/tasks/{tid}", json=body).status_code == 200
                    writes.append(tid)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            ids, cursor = [], None
            with httpx.Client(base_url=server.base_url, headers=auth(ds.admin_token)) as c:
                while True:
                    params = {
                        "workspace_id": ws,
                        "limit": 10,
                        **({"cursor": cursor} if cursor else {}),
                    }
                    body = c.get("/v1/tasks", params=params).json()
                    ids += [t["id"] for t in body["data"]]
                    cursor = body["meta"]["cursor"]
                    if not body["meta"]["has_more"]:
                        break
        finally:
            stop.set()
            thread.join()
    assert len(writes) > 50  # the writer really ran alongside the pager
    assert ids == original


def test_listen_socket_is_tcp_so_asyncio_disables_nagle():
    """A socket with proto 0 made every mock-api response wait ~40 ms on delayed ACKs."""
    import socket

    from scrums_velocity.api_server.serve import listen_socket

    with listen_socket(0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[0] == "127.0.0.1"


def test_mock_api_command_prints_url_token_and_workspaces():
    args = ("--tasks", "500", "--seed", "3", "--now", "2026-11-23T09:00:00Z", "--latency-ms", "1")
    with mock_api_process(*args) as lines:
        assert lines["base_url"].startswith("http://127.0.0.1:")
        assert int(lines["base_url"].rsplit(":", 1)[1]) > 0
        ds = generate(tasks=500, seed=3, now=NOW)
        assert lines["token"] == ds.admin_token
        assert lines["workspaces"].split(",") == [w.id for w in ds.workspaces]
        assert lines["tasks"] == "500"
        r = httpx.get(
            lines["base_url"] + "/v1/tasks",
            params={"workspace_id": ds.workspaces[0].id},
            headers=auth(lines["token"]),
        )
        assert r.status_code == 200
        assert len(r.json()["data"]) == 25


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault-kinds", "boom"], "Error: unknown fault kinds: ['boom']"),
        (["--now", "yesterday"], "Error: --now must be an ISO timestamp"),
        (["--now", "2026-11-23T09:00:00"], "Error: --now needs a time zone"),
    ],
)
def test_mock_api_bad_arguments_are_one_line_errors(args, message):
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "mock-api", "--tasks", "10", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.startswith(message)
    assert r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr


def test_port_in_use_is_a_clear_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "scrums_velocity",
                "mock-api",
                "--tasks",
                "10",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2
    assert r.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}")


def test_version_and_help():
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "--version"], capture_output=True, text=True
    )
    assert r.stdout.startswith("velocity 0.")
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert "mock-api" in r.stdout
