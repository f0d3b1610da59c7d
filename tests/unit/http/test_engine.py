"""HttpEngine: one total deadline per request, bounded per-host tables. Real loopback servers
on their own event loop thread, the engine on its own."""

from __future__ import annotations

import asyncio

import pytest

from broker_hub.config import Settings
from broker_hub.retry import Attempt
from tests.unit.http.support import (
    RawServer,
    ThreadedServer,
    answering,
    engine_request,
    http_response,
    read_request,
    running_engine,
)
from workers import http_engine
from workers.http_engine import HttpEngine

pytestmark = pytest.mark.timeout(30)


def _trickler(prefix: bytes) -> object:
    """Sends ``prefix`` then one header byte every 0.3 s, for as long as it is let."""

    async def handler(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> None:
        req = await read_request(reader, conn, 1)
        if req is None:
            return
        server.requests.append(req)
        writer.write(prefix)
        for _ in range(200):
            await writer.drain()
            await asyncio.sleep(0.3)
            writer.write(b"x")

    return handler


@pytest.mark.parametrize(
    "prefix",
    [
        b"HTTP/1.1 200 OK\r\nX-Slow: ",  # a trickled head
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",  # a trickled body
    ],
    ids=["head", "body"],
)
def test_trickling_server_ends_at_the_one_total_deadline(prefix: bytes) -> None:
    with ThreadedServer(_trickler(prefix)) as server, running_engine() as engine:  # 1 s timeout
        # engine_request waits 5 s at most: each byte alone would never trip a read timeout
        attempt, body = engine_request(engine, "POST", server.url("/cb"), data=b"x", read_limit=9)
    assert attempt == Attempt(None, "timeout")
    assert body == b""


def test_per_host_semaphores_dropped_when_idle() -> None:
    raw = http_response(200, b"ok")
    with ThreadedServer(answering(lambda req: raw)) as server, running_engine() as engine:
        # 40 netlocs (userinfo differs) of one server: 40 keys of the per-host table
        urls = [f"http://user{i}@127.0.0.1:{server.port}/" for i in range(40)]
        for url in urls:
            attempt, _ = engine_request(engine, "GET", url)
            assert attempt.status == 200
        assert engine.per_host_entries() == 0


def test_literal_refusal_table_is_bounded() -> None:
    engine = HttpEngine(Settings(allow_private_addresses=False, http_timeout=1.0))
    engine.start()
    try:
        # forbidden literals: refused before any connection, so nothing leaves the machine
        for i in range(http_engine.REFUSAL_CACHE_SIZE + 500):
            url = f"http://10.{i // 65536}.{i // 256 % 256}.{i % 256}/cb"
            attempt, _ = engine_request(engine, "POST", url, data=b"x")
            assert attempt.forbidden
        assert len(engine._literal_refusals) <= http_engine.REFUSAL_CACHE_SIZE
    finally:
        engine.stop()
