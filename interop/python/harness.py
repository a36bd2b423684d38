"""Shared helpers for the Python interop suite.

Each test module starts its own real `updraft` process (port 0, fresh data
dir) through the module-scoped `server` fixture in conftest.py, and talks to
it over HTTP (urllib) and WebSocket (the `websockets` package).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

REPO_ROOT = Path(__file__).resolve().parents[2]
SECURITY_TOKEN = "supersecret"
PING_INTERVAL_SECS = 1
HTTP_TIMEOUT = 5.0
WS_TIMEOUT = 5.0
# Upper bound for one test's whole coroutine.
TEST_TIMEOUT = 20.0

# Loopback only: never route through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def updraft_bin() -> Path:
    """The server binary: $UPDRAFT_BIN, or target/debug/updraft in the repo."""
    value = os.environ.get("UPDRAFT_BIN", "target/debug/updraft")
    path = Path(value)
    if not path.is_absolute():
        candidates = [Path.cwd() / path, REPO_ROOT / path]
        path = next((c for c in candidates if c.exists()), candidates[-1])
    return path


class Server:
    """A running `updraft serve` process on 127.0.0.1:<ephemeral port>."""

    def __init__(self) -> None:
        binary = updraft_bin()
        if not binary.is_file():
            raise RuntimeError(
                f"updraft binary not found at {binary}; build it with "
                "`cargo build -p updraft-server` or set UPDRAFT_BIN"
            )
        self.data_dir = tempfile.mkdtemp(prefix="updraft-interop-py-")
        env = dict(os.environ, ACCESS_CONTROL="none", SECURITY_TOKEN=SECURITY_TOKEN)
        self.proc = subprocess.Popen(
            [
                str(binary),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                self.data_dir,
                "--log-format",
                "json",
                "--ping-interval-secs",
                str(PING_INTERVAL_SECS),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log_lines: list[str] = []
        self._listening = threading.Event()
        self.addr: str | None = None
        # Drain stderr for the whole life of the process so it never blocks.
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 10
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                code = self.proc.poll()
                self.stop()
                why = f"exited with {code}" if code is not None else "did not log it within 10 s"
                raise RuntimeError(f"updraft never logged 'updraft listening' ({why}):\n" + self.log_tail())
        self.base = f"http://{self.addr}"

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log_lines.append(line.rstrip("\n"))
            if self.addr is None:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                fields = record.get("fields") or {}
                if fields.get("message") == "updraft listening" and fields.get("local_addr"):
                    self.addr = fields["local_addr"]
                    self._listening.set()

    def log_tail(self, n: int = 20) -> str:
        return "\n".join(self.log_lines[-n:])

    def terminate(self) -> None:
        """Send SIGTERM (graceful shutdown) without waiting."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # ---- HTTP -----------------------------------------------------------

    def http(self, method: str, path: str, body: Any = None, admin: bool = False) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if admin:
            headers["Authorization"] = f"Bearer {SECURITY_TOKEN}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with _OPENER.open(req, timeout=HTTP_TIMEOUT) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        text = raw.decode("utf-8")
        return status, (json.loads(text) if text else None)

    def websocket_uri(self) -> str:
        status, body = self.http("GET", "/v1/websocket_uri")
        assert status == 200, body
        assert body["uri"].startswith(f"ws://{self.addr}/?token="), body
        return body["uri"]

    def create_socket(self, tags: list[str]) -> dict[str, Any]:
        status, body = self.http("POST", "/v1/sockets", {"tags": tags}, admin=True)
        assert status == 201, body
        assert body["tags"] == tags, body
        return body

    def socket_ids(self) -> set[str]:
        status, body = self.http("GET", "/v1/sockets", admin=True)
        assert status == 200, body
        return {s["id"] for s in body["results"]}

    def publish(self, data: str, sockets: list[str] | None = None, tags: list[str] | None = None) -> None:
        receivers = {"sockets": sockets or [], "tags": tags or []}
        status, body = self.http("POST", "/v1/messages", {"data": data, "receivers": receivers})
        assert status == 201, body
        assert body["data"] == data

    def delete_socket(self, socket_id: str) -> int:
        status, _ = self.http("DELETE", f"/v1/sockets/{socket_id}", admin=True)
        return status

    async def wait_registered(self, socket_id: str, timeout: float = 5.0) -> None:
        """Registration after the handshake is asynchronous: poll the list."""
        deadline = time.monotonic() + timeout
        while True:
            ids = await asyncio.to_thread(self.socket_ids)
            if socket_id in ids:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"socket {socket_id} never listed by GET /v1/sockets")
            await asyncio.sleep(0.02)

    async def wait_new_socket(self, before: set[str], timeout: float = 5.0) -> str:
        """Id of the one socket that appeared since `before` was taken."""
        deadline = time.monotonic() + timeout
        while True:
            new = await asyncio.to_thread(self.socket_ids) - before
            if len(new) == 1:
                return new.pop()
            assert len(new) == 0, f"more than one new socket: {new}"
            if time.monotonic() > deadline:
                raise AssertionError("connected socket never listed by GET /v1/sockets")
            await asyncio.sleep(0.02)


class FrameLog(logging.Handler):
    """Collects websockets' debug frame log ("< PING ...", "> PONG ...")."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def count(self, prefix: str) -> int:
        return sum(1 for m in self.messages if m.startswith(prefix))


def frame_logger(name: str) -> tuple[logging.Logger, FrameLog]:
    logger = logging.getLogger(f"interop.{name}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = FrameLog()
    logger.handlers[:] = [handler]
    return logger, handler


def ws_connect(uri: str, **kwargs: Any) -> connect:
    """websockets client with bounded timeouts and no client-side pings."""
    opts: dict[str, Any] = dict(
        open_timeout=WS_TIMEOUT,
        close_timeout=WS_TIMEOUT,
        ping_interval=None,  # only the server pings, so its pings are what we test
        proxy=None,
    )
    opts.update(kwargs)
    return connect(uri, **opts)


async def open_socket(server: Server, tags: list[str] | None = None, **kwargs: Any) -> tuple[ClientConnection, str]:
    """Connect a socket and wait until the server has registered it.

    With `tags`, the socket is created through POST /v1/sockets (admin);
    otherwise through GET /v1/websocket_uri, its id found by listing.
    """
    if tags is not None:
        created = await asyncio.to_thread(server.create_socket, tags)
        ws = await ws_connect(created["uri"], **kwargs)
        await server.wait_registered(created["id"])
        return ws, created["id"]
    before = await asyncio.to_thread(server.socket_ids)
    uri = await asyncio.to_thread(server.websocket_uri)
    ws = await ws_connect(uri, **kwargs)
    socket_id = await server.wait_new_socket(before)
    return ws, socket_id


async def recv(ws: ClientConnection, timeout: float = WS_TIMEOUT) -> str:
    msg = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(msg, str), f"expected a text frame, got {type(msg).__name__}"
    return msg


def run(coro: Any, timeout: float = TEST_TIMEOUT) -> Any:
    """Run one test's coroutine with a hard time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
