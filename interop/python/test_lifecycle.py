"""Close handshakes seen by `websockets` clients: echo, reuse, admin delete."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from harness import open_socket, recv, run, ws_connect


async def expect_closed_by_server(ws, code: int) -> None:
    with pytest.raises(ConnectionClosed) as info:
        await recv(ws)
    assert info.value.rcvd is not None, "no close frame received from the server"
    assert info.value.rcvd.code == code
    assert ws.close_code == code


def test_client_close_code_is_echoed(server):
    async def body():
        ws, _ = await open_socket(server)
        await asyncio.wait_for(ws.close(4001, "client going"), 5)
        assert ws.protocol.close_sent is not None and ws.protocol.close_sent.code == 4001
        assert ws.protocol.close_rcvd is not None, "server did not answer the close"
        assert ws.close_code == 4001

    run(body())


def test_reused_token_is_closed_with_1008(server):
    async def body():
        uri = await asyncio.to_thread(server.websocket_uri)
        before = await asyncio.to_thread(server.socket_ids)
        first = await ws_connect(uri)
        first_id = await server.wait_new_socket(before)
        try:
            # Accepted at the HTTP level, then closed with policy violation.
            second = await ws_connect(uri)
            await expect_closed_by_server(second, 1008)

            # The legitimate holder of the token is unaffected.
            await asyncio.to_thread(server.publish, "first still open", sockets=[first_id])
            assert await recv(first) == "first still open"
        finally:
            await first.close()

        # Still refused once the first connection has gone.
        third = await ws_connect(uri)
        await expect_closed_by_server(third, 1008)

    run(body())


def test_admin_delete_closes_with_1000(server):
    async def body():
        ws, ws_id = await open_socket(server, tags=["doomed"])
        status = await asyncio.to_thread(server.delete_socket, ws_id)
        assert 200 <= status < 300, status
        await expect_closed_by_server(ws, 1000)

    run(body())
