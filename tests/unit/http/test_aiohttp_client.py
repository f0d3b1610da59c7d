"""HUB_HTTP_CLIENT=aiohttp: the same engine rules through aiohttp's client (SSRF check on the
resolved address before connecting, no redirects on requests, the fetch API's rules)."""

from __future__ import annotations

import asyncio

import pytest

from broker_hub import netguard
from broker_hub.retry import Attempt
from tests.unit.http.support import (
    RawServer,
    Req,
    ThreadedServer,
    answering,
    engine_request,
    http_response,
    read_request,
    running_engine,
)
from workers.http_aiohttp import AiohttpClient
from workers.http_engine import FetchError

pytestmark = pytest.mark.timeout(30)

AIOHTTP = {"http_client": "aiohttp"}


def test_engine_picks_aiohttp_by_setting() -> None:
    with running_engine(**AIOHTTP) as engine:
        assert isinstance(engine._client, AiohttpClient)


def test_request_body_limit_keep_alive_and_headers() -> None:
    raw = http_response(200, b"0123456789", ("X-Multi: a", "X-Multi: b"))
    with ThreadedServer(answering(lambda req: raw)) as server, running_engine(**AIOHTTP) as e:
        first = engine_request(
            e, "POST", server.url("/cb"), headers={"X-T": "1"}, data=b"hi", read_limit=4
        )
        second = engine_request(e, "POST", server.url("/cb"), data=b"again", read_limit=100)
    assert first == (Attempt(200, ""), b"0123")
    assert second == (Attempt(200, ""), b"0123456789")
    req = server.requests[0]
    assert (req.body, req.header("x-t"), req.header("accept-encoding")) == (b"hi", b"1", None)
    assert req.header("user-agent") == b"broker-hub (WebSub hub)"
    assert server.connections == 1


def test_no_redirects_on_requests() -> None:
    raw = http_response(302, b"", ("Location: /elsewhere",))
    with ThreadedServer(answering(lambda req: raw)) as server, running_engine(**AIOHTTP) as e:
        attempt, _ = engine_request(e, "GET", server.url("/cb?hub.mode=x"))
    assert attempt == Attempt(302, "")
    assert len(server.requests) == 1


@pytest.mark.parametrize("spelling", ["127.0.0.1", "localhost", "127.1"])
def test_private_address_refused_without_connecting(spelling: str) -> None:
    with ThreadedServer(answering(lambda req: http_response(200))) as server:
        with running_engine(allow_private=False, **AIOHTTP) as engine:
            attempt, _ = engine_request(
                engine, "POST", f"http://{spelling}:{server.port}/", data=b"x"
            )
        assert server.connections == 0
    assert attempt.forbidden and attempt.error.startswith("forbidden address")


def test_resolved_address_checked_by_the_guarded_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name (not a literal) that resolves to a forbidden address: refused at resolve time."""
    monkeypatch.setattr(netguard, "is_forbidden_ip", lambda address: str(address) == "127.0.0.1")
    monkeypatch.setattr(netguard, "_LOCAL_NAMES", frozenset())  # let "localhost" reach DNS
    with ThreadedServer(answering(lambda req: http_response(200))) as server:
        with running_engine(allow_private=False, **AIOHTTP) as engine:
            attempt, _ = engine_request(engine, "GET", f"http://localhost:{server.port}/")
        assert server.connections == 0
    assert attempt.forbidden, attempt


def test_trickled_head_ends_at_the_deadline() -> None:
    async def trickle(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> None:
        if await read_request(reader, conn, 1) is None:
            return
        writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(200):
            await writer.drain()
            await asyncio.sleep(0.3)
            writer.write(b"x")

    with ThreadedServer(trickle) as server, running_engine(**AIOHTTP) as engine:
        attempt, _ = engine_request(engine, "POST", server.url("/"), data=b"x")
    assert attempt == Attempt(None, "timeout")


def test_fetch_redirects_cap_and_forbidden_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netguard, "is_forbidden_ip", lambda address: str(address) == "127.0.0.2")

    def make(req: Req) -> bytes:
        if req.target == b"/start":
            return http_response(301, b"", ("Location: /feed",))
        if req.target == b"/feed":
            return http_response(200, b"<feed/>")
        if req.target == b"/big":
            return http_response(200, b"x" * 5000)
        return http_response(302, b"", ("Location: http://127.0.0.2:1/",))

    with (
        ThreadedServer(answering(make)) as server,
        running_engine(allow_private=False, **AIOHTTP) as engine,
    ):
        ok = engine.submit(engine.fetch(server.url("/start"))).result(8)
        with pytest.raises(FetchError) as big:
            engine.submit(engine.fetch(server.url("/big"), max_bytes=1000)).result(8)
        with pytest.raises(FetchError) as hop:
            engine.submit(engine.fetch(server.url("/away"))).result(8)
    assert (ok.status, ok.body, ok.redirects) == (200, b"<feed/>", 1)
    assert big.value.permanent and "larger than 1000" in big.value.reason
    assert hop.value.permanent and "forbidden" in hop.value.reason
