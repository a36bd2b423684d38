"""SIGTERM on the server closes every `websockets` client with 1001."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from websockets.exceptions import ConnectionClosed

from harness import open_socket, recv, run


def test_sigterm_closes_sockets_with_1001(server):
    async def body():
        a, _ = await open_socket(server)
        b, _ = await open_socket(server, tags=["t"])
        server.terminate()
        for ws in (a, b):
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws, timeout=10)
            assert info.value.rcvd is not None, "no close frame received from the server"
            assert info.value.rcvd.code == 1001
            assert ws.close_code == 1001

    run(body())
    try:
        code = server.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail("server did not exit within 10 s of SIGTERM")
    assert code == 0, f"exit code {code}\n{server.log_tail()}"
