"""Running the mock API: in-process (an httpx transport) or on 127.0.0.1 under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn


class InProcessTransport(httpx.ASGITransport):
    """``httpx.ASGITransport`` that turns a response the app left unfinished (the ``drop``
    fault) into the ``httpx.RemoteProtocolError`` a real socket would give."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except AssertionError:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=request
            ) from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningServer:
    base_url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread | None = None

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)


def make_server(app: Any, port: int = 0, *, log_level: str = "warning") -> uvicorn.Server:
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=1,
    )
    return uvicorn.Server(config)


@contextlib.contextmanager
def serve_in_thread(app: Any, port: int = 0) -> Iterator[RunningServer]:
    """Serve ``app`` on 127.0.0.1 from a background thread for the duration of the block."""
    server = make_server(app, port)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("mock API server did not start")
        time.sleep(0.01)
    running = RunningServer(
        f"http://127.0.0.1:{server.config.port}", server.config.port, server, thread
    )
    try:
        yield running
    finally:
        running.stop()


def listen_socket(port: int) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:``port`` (0 = a free port).

    proto=IPPROTO_TCP matters: asyncio enables TCP_NODELAY on accepted connections only when the
    socket says it is TCP. With proto 0, every response waits ~40 ms on delayed ACKs.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    sock.listen(2048)
    return sock


def run_forever(app: Any, port: int, announce) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` (0 = a free port) until interrupted.

    The socket is bound before ``announce(base_url)`` is called, so the printed URL is live and
    ``--port 0`` has no race between choosing a port and binding it.
    """
    sock = listen_socket(port)
    actual = sock.getsockname()[1]
    announce(f"http://127.0.0.1:{actual}")
    server = make_server(app, actual, log_level="warning")
    server.run(sockets=[sock])


@contextlib.contextmanager
def mock_api_process(*args: str) -> Iterator[dict[str, str]]:
    """``velocity mock-api --port 0 ARGS`` in a child process; yields what it announced
    (``base_url``, ``token``, ``workspaces``, ``tasks``) and stops it afterwards."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "scrums_velocity", "mock-api", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603 - our own interpreter
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        info: dict[str, str] = {}
        for _ in range(4):
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"mock-api did not start: {proc.stderr.read().strip()[:300]}")
            key, _, value = line.rstrip("\n").partition(": ")
            info[key] = value
        yield info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
