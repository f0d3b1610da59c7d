"""HttpEngine.fetch against real loopback servers: redirects (each hop's address checked),
the body cap, identity bodies only, the one total deadline, per-host fetch slots."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from broker_hub import netguard
from tests.unit.http.support import (
    RawServer,
    Req,
    ThreadedServer,
    answering,
    http_response,
    read_request,
    running_engine,
)
from workers.http_engine import FetchError, FetchResult, HttpEngine

pytestmark = pytest.mark.timeout(30)


def fetch(engine: HttpEngine, url: str, **kwargs: Any) -> FetchResult:
    return engine.submit(engine.fetch(url, **kwargs)).result(timeout=8)


def fetch_error(engine: HttpEngine, url: str, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(engine, url, **kwargs)
    return info.value


def test_redirect_chain_followed_relative_and_absolute() -> None:
    with ThreadedServer(answering(lambda req: http_response(200, b"<feed/>"))) as final:
        target = final.url("/feed.xml?x=1")

        def hops(req: Req) -> bytes:
            if req.target == b"/start":
                return http_response(301, b"", ("Location: /two",))  # relative
            if req.target == b"/two":
                return http_response(302, b"", ("Location: three",))  # relative to /two
            if req.target == b"/three":
                return http_response(303, b"", (f"Location: {target}",))
            return http_response(404)

        with ThreadedServer(answering(hops)) as first, running_engine() as engine:
            result = fetch(engine, first.url("/start"), headers={"If-None-Match": '"e1"'})
    assert (result.status, result.body, result.final_url) == (200, b"<feed/>", target)
    assert result.redirects == 3
    assert [r.target for r in first.requests] == [b"/start", b"/two", b"/three"]
    assert [r.method for r in final.requests] == ["GET"]
    assert final.requests[0].header("if-none-match") == b'"e1"'


@pytest.mark.parametrize("status", [307, 308])
def test_temporary_and_permanent_redirects_followed(status: int) -> None:
    def make(req: Req) -> bytes:
        if req.target == b"/old":
            return http_response(status, b"moved", ("Location: /new",))
        return http_response(200, b"new")

    with ThreadedServer(answering(make)) as server, running_engine() as engine:
        result = fetch(engine, server.url("/old"))
    assert (result.status, result.body, result.redirects) == (200, b"new", 1)


def test_too_many_redirects_is_permanent() -> None:
    loop = http_response(302, b"", ("Location: /again",))
    with ThreadedServer(answering(lambda req: loop)) as server, running_engine() as engine:
        error = fetch_error(engine, server.url("/"), max_redirects=2)
    assert error.permanent
    assert "too many redirects" in error.reason
    assert len(server.requests) == 3  # the first request and two redirects followed


@pytest.mark.parametrize("location_host", ["127.0.0.2", "localhost"])
def test_redirect_to_forbidden_address_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, location_host: str
) -> None:
    """The policy narrowed to forbid 127.0.0.2 only (and local names, as always), so the
    first hop on 127.0.0.1 is allowed; the redirect's target gets no connection."""
    monkeypatch.setattr(netguard, "is_forbidden_ip", lambda address: str(address) == "127.0.0.2")
    with ThreadedServer(answering(lambda req: http_response(200, b"secret")), "127.0.0.2") as inner:
        location = f"http://{location_host}:{inner.port}/admin"
        redirect = http_response(302, b"", (f"Location: {location}",))
        with (
            ThreadedServer(answering(lambda req: redirect)) as outer,
            running_engine(allow_private=False) as engine,
        ):
            error = fetch_error(engine, outer.url("/topic"))
        assert inner.connections == 0
    assert error.permanent
    assert "forbidden" in error.reason
    assert len(outer.requests) == 1


def test_first_hop_to_forbidden_address_refused() -> None:
    with ThreadedServer(answering(lambda req: http_response(200))) as server:
        with running_engine(allow_private=False) as engine:
            error = fetch_error(engine, server.url("/"))
        assert server.connections == 0
    assert error.permanent and "forbidden" in error.reason


def test_non_http_redirect_refused() -> None:
    redirect = http_response(301, b"", ("Location: file:///etc/passwd",))
    with ThreadedServer(answering(lambda req: redirect)) as server, running_engine() as engine:
        error = fetch_error(engine, server.url("/"))
    assert error.permanent and "http(s)" in error.reason


def _chunked(body: bytes, piece: int = 16384) -> bytes:
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), piece):
        part = body[i : i + piece]
        out += b"%x\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\n\r\n"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_over_the_cap_refused_at_the_cap_accepted(framing: str) -> None:
    cap = 64 * 1024

    def make(req: Req) -> bytes:
        body = b"x" * (cap if req.target == b"/fits" else 2 * 1024 * 1024)
        return http_response(200, body) if framing == "content-length" else _chunked(body)

    with ThreadedServer(answering(make)) as server, running_engine() as engine:
        error = fetch_error(engine, server.url("/big"), max_bytes=cap)
        fits = fetch(engine, server.url("/fits"), max_bytes=cap)
    assert error.permanent
    assert f"larger than {cap}" in error.reason
    assert len(fits.body) == cap


def test_no_accept_encoding_sent_and_compressed_body_refused() -> None:
    gz = http_response(200, b"\x1f\x8b\x08\x00", ("Content-Encoding: gzip",))
    with ThreadedServer(answering(lambda req: gz)) as server, running_engine() as engine:
        error = fetch_error(engine, server.url("/"), headers={"Accept-Encoding": "gzip"})
    assert error.permanent and "Content-Encoding gzip" in error.reason
    assert server.requests[0].header("accept-encoding") is None
    assert server.requests[0].header("user-agent") == b"broker-hub (WebSub hub)"


def test_304_passes_through_with_its_headers() -> None:
    def make(req: Req) -> bytes:
        if req.header("if-none-match") == b'"v1"':
            return http_response(304, b"", ('ETag: "v1"',), content_length=False)
        return http_response(200, b"<feed/>", ('ETag: "v1"',))

    with ThreadedServer(answering(make)) as server, running_engine() as engine:
        first = fetch(engine, server.url("/t"))
        again = fetch(engine, server.url("/t"), headers={"If-None-Match": first.headers["etag"]})
    assert (first.status, first.body) == (200, b"<feed/>")
    assert (again.status, again.body, again.headers["etag"]) == (304, b"", '"v1"')
    assert server.connections == 1  # kept alive across both


@pytest.mark.parametrize(
    "prefix",
    [b"HTTP/1.1 200 OK\r\nX-Slow: ", b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"],
    ids=["head", "body"],
)
def test_trickling_topic_server_ends_at_the_deadline(prefix: bytes) -> None:
    async def trickle(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> None:
        if await read_request(reader, conn, 1) is None:
            return
        writer.write(prefix)
        for _ in range(200):
            await writer.drain()
            await asyncio.sleep(0.3)
            writer.write(b"x")

    with ThreadedServer(trickle) as server, running_engine() as engine:  # 1 s deadline
        error = fetch_error(engine, server.url("/feed"))
    assert (error.reason, error.permanent) == ("timeout", False)


def test_per_host_fetch_slots_leave_other_hosts_free() -> None:
    """Hanging fetches fill one host's slots (HUB_FETCH_PER_HOST=2); a fetch from another
    host does not wait for them, and the hanging host never sees more than two at once."""
    release = threading.Event()
    inflight = {"now": 0, "max": 0}

    async def hang(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> None:
        if await read_request(reader, conn, 1) is None:
            return
        inflight["now"] += 1
        inflight["max"] = max(inflight["max"], inflight["now"])
        for _ in range(200):  # 10 s at most
            if release.is_set():
                break
            await asyncio.sleep(0.05)
        inflight["now"] -= 1
        writer.write(http_response(200, b"late"))
        await writer.drain()

    with (
        ThreadedServer(hang) as slow,
        ThreadedServer(answering(lambda req: http_response(200, b"quick"))) as quick,
        running_engine(http_timeout=20.0, fetch_per_host=2) as engine,
    ):
        hanging = [engine.submit(engine.fetch(slow.url(f"/{i}"))) for i in range(4)]
        try:
            for _ in range(200):  # until both slots of the slow host are taken (10 s at most)
                if inflight["now"] == 2:
                    break
                time.sleep(0.05)
            assert inflight["now"] == 2
            assert fetch(engine, quick.url("/other")).body == b"quick"
            assert not any(f.done() for f in hanging)
        finally:
            release.set()
        results = [f.result(timeout=10) for f in hanging]
    assert [r.body for r in results] == [b"late"] * 4
    assert inflight["max"] == 2
    assert engine.per_host_entries() == 0
