"""The connection pool: idle connections are swept on a timer and capped in all; large
request bodies are written with back-pressure. Real servers on the loopback interface."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.unit.http.support import (
    RawServer,
    Req,
    answering,
    async_test,
    http_response,
    read_request,
)
from workers import http11

pytestmark = pytest.mark.timeout(20)


def _ok(req: Req) -> bytes:
    return http_response(200, b"ok")


async def _wait_until(condition, seconds: float = 4.0) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass (a bounded wait, not a timing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@async_test
async def test_idle_connections_to_origins_never_contacted_again_are_swept() -> None:
    async with contextlib.AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(RawServer(answering(_ok))) for _ in range(20)]
        c = http11.Client(allow_private=True, connect_timeout=2.0, idle_seconds=0.3)
        stack.callback(c.close)
        for server in servers:
            assert (await c.request("GET", server.url(), {}, None, 10)).status == 200
        assert sum(s.open for s in servers) == 20  # kept alive for reuse at first
        # no further request: only the sweeper can close them
        assert await _wait_until(lambda: sum(s.open for s in servers) == 0)
        assert c.idle_count() == 0


@async_test
async def test_idle_connections_capped_in_all_oldest_closed_first() -> None:
    async with contextlib.AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(RawServer(answering(_ok))) for _ in range(12)]
        c = http11.Client(allow_private=True, connect_timeout=2.0, max_idle=5)
        stack.callback(c.close)
        for server in servers:
            assert (await c.request("GET", server.url(), {}, None, 10)).status == 200
        assert c.idle_count() == 5
        assert await _wait_until(lambda: sum(s.open for s in servers) == 5)
        assert [s.open for s in servers] == [0] * 7 + [1] * 5  # the newest five kept
        # a kept one is reused, a closed one reconnects
        await c.request("GET", servers[-1].url(), {}, None, 10)
        await c.request("GET", servers[0].url(), {}, None, 10)
        assert (servers[-1].connections, servers[0].connections) == (1, 2)


@async_test
async def test_large_body_written_with_back_pressure() -> None:
    """A peer that does not read: the client buffers about its write high-water mark, not
    the whole body; once the peer reads, the body arrives whole."""
    size = 16 * 1024 * 1024
    body = bytes(range(256)) * (size // 256)
    reading = asyncio.Event()
    got: list[Req] = []

    async def slow_reader(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> None:
        await reading.wait()
        req = await read_request(reader, conn, 1)
        assert req is not None
        got.append(req)
        writer.write(http_response(200, b"thanks"))
        await writer.drain()

    async with RawServer(slow_reader) as server:
        c = http11.Client(allow_private=True, connect_timeout=2.0)
        try:
            task = asyncio.create_task(c.request("POST", server.url(), {}, body, 10))
            await asyncio.sleep(0.5)  # the kernel's socket buffers fill up meanwhile
            buffered = c.write_buffered()
            reading.set()
            response = await task
        finally:
            c.close()
    assert buffered <= 1024 * 1024, buffered
    assert response.status == 200
    assert got[0].body == body


@async_test
async def test_answer_before_the_body_is_read_stops_the_upload() -> None:
    """A server answering 413 after the head, never reading the 16 MiB body: the client stops
    writing, returns the 413, and does not reuse that connection."""
    body = b"z" * (16 * 1024 * 1024)

    async def refuse_early(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> None:
        if conn == 1:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(http_response(413, b"too big"))
            await writer.drain()
            await asyncio.sleep(10)  # keeps the connection open, reads nothing more
            return
        await answering(_ok)(server, reader, writer, conn)

    async with RawServer(refuse_early) as server:
        c = http11.Client(allow_private=True, connect_timeout=2.0)
        try:
            refused = await c.request("POST", server.url("/up"), {}, body, 100)
            after = await c.request("GET", server.url("/next"), {}, None, 100)
        finally:
            c.close()
    assert (refused.status, refused.body) == (413, b"too big")
    assert after.status == 200
    assert server.connections == 2
