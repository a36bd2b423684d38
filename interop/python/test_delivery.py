"""Message delivery to `websockets` clients: broadcast, tags, ids, payloads, pings."""

from __future__ import annotations

import asyncio

from harness import PING_INTERVAL_SECS, frame_logger, open_socket, recv, run

SENTINEL = "--sentinel--"


async def close_all(*sockets) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def expect_only(server, ws_and_expected) -> None:
    """Each socket's next messages are exactly `expected`, then the sentinel.

    The sentinel is broadcast after the messages under test, so a socket that
    got a duplicate or an unwanted message sees it before the sentinel.
    """
    await asyncio.to_thread(server.publish, SENTINEL, sockets=["*"])
    for ws, expected in ws_and_expected:
        got = [await recv(ws) for _ in range(len(expected) + 1)]
        assert got == [*expected, SENTINEL]


def test_broadcast_reaches_every_socket(server):
    async def body():
        socks = [(await open_socket(server))[0] for _ in range(3)]
        try:
            await asyncio.to_thread(server.publish, "hello everyone", sockets=["*"])
            await expect_only(server, [(ws, ["hello everyone"]) for ws in socks])
        finally:
            await close_all(*socks)

    run(body())


def test_broadcast_order_is_preserved(server):
    async def body():
        ws, _ = await open_socket(server)
        try:
            sent = [f"msg-{i}" for i in range(20)]
            for data in sent:
                await asyncio.to_thread(server.publish, data, sockets=["*"])
            assert [await recv(ws) for _ in sent] == sent
        finally:
            await ws.close()

    run(body())


def test_tag_routing_delivers_one_copy(server):
    async def body():
        both, _ = await open_socket(server, tags=["red", "blue"])
        blue, _ = await open_socket(server, tags=["blue"])
        green, _ = await open_socket(server, tags=["green"])
        untagged, _ = await open_socket(server)
        try:
            # `both` matches twice (red and blue) and must still get one copy.
            await asyncio.to_thread(server.publish, "to red+blue", tags=["red", "blue"])
            await expect_only(
                server,
                [(both, ["to red+blue"]), (blue, ["to red+blue"]), (green, []), (untagged, [])],
            )
        finally:
            await close_all(both, blue, green, untagged)

    run(body())


def test_message_by_socket_id(server):
    async def body():
        a, a_id = await open_socket(server, tags=["alpha"])
        b, _ = await open_socket(server, tags=["beta"])
        c, c_id = await open_socket(server)  # via GET /v1/websocket_uri
        try:
            await asyncio.to_thread(server.publish, "by id", sockets=[a_id, c_id])
            await expect_only(server, [(a, ["by id"]), (b, []), (c, ["by id"])])

            # Matching by id and by tag at once still yields one copy.
            await asyncio.to_thread(server.publish, "id and tag", sockets=[a_id], tags=["alpha"])
            await expect_only(server, [(a, ["id and tag"]), (b, []), (c, [])])
        finally:
            await close_all(a, b, c)

    run(body())


def test_utf8_and_large_messages_arrive_intact(server):
    async def body():
        ws, ws_id = await open_socket(server)
        try:
            small = 'Grüße, 世界! 🚀 ĀĒĪŌŪ — "quotes" \\ back\\slash\nnew line\ttab \u2028 \u00e9\u0301'
            await asyncio.to_thread(server.publish, small, sockets=[ws_id])
            assert await recv(ws) == small

            unit = "héllo wörld 日本語 🚀 ✓ "  # 1-, 2-, 3- and 4-byte UTF-8 sequences
            large = unit * (100 * 1024 // len(unit.encode("utf-8")) + 1)
            assert len(large.encode("utf-8")) >= 100 * 1024
            await asyncio.to_thread(server.publish, large, sockets=["*"])
            got = await recv(ws, timeout=10)
            assert len(got) == len(large)
            assert got == large
        finally:
            await ws.close()

    run(body())


def test_server_pings_are_answered_and_connection_survives(server):
    async def body():
        logger, frames = frame_logger("ping")
        ws, ws_id = await open_socket(server, logger=logger)
        try:
            await asyncio.sleep(3 * PING_INTERVAL_SECS + 0.5)
            # The library answered every server ping with a pong on its own.
            pings, pongs = frames.count("< PING"), frames.count("> PONG")
            assert pings >= 2, frames.messages
            assert pongs >= pings, frames.messages
            assert ws.close_code is None, "connection was closed"

            await asyncio.to_thread(server.publish, "still here", sockets=[ws_id])
            assert await recv(ws) == "still here"
        finally:
            await ws.close()

    run(body())
