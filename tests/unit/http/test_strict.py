"""The client parses responses strictly (RFC 9112): what a lenient parser would read as a
valid response, and so a desync vector, is an HTTPError and the connection is not reused."""

from __future__ import annotations

import pytest

from tests.unit.http.support import RawServer, Req, answering, async_test, client, http_response
from workers import http11

pytestmark = pytest.mark.timeout(15)

BAD_RESPONSES = {
    "four-digit status": b"HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello",
    "two-digit status": b"HTTP/1.1 20 OK\r\nContent-Length: 5\r\n\r\nhello",
    "space before colon": b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
    "xchunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "gzip transfer coding": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    ),
    "no CRLF after chunk": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n"
    ),
    "Content-Length and chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    ),
    "two Content-Lengths": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
    ),
    "signed Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    "HTTP/2.0 status line": b"HTTP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "obsolete line folding": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 5\r\n\r\nhello",
    "bare LF line ends": b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
}


@pytest.mark.parametrize("raw", list(BAD_RESPONSES.values()), ids=list(BAD_RESPONSES))
@async_test
async def test_malformed_response_is_refused_and_connection_dropped(raw: bytes) -> None:
    def make(req: Req) -> bytes:
        return raw if req.target == b"/bad" else http_response(200, b"fine")

    async with RawServer(answering(make)) as server:
        with client() as c:
            with pytest.raises(http11.HTTPError):
                await c.request("GET", server.url("/bad"), {}, None, 100)
            after = await c.request("GET", server.url("/next"), {}, None, 100)
    assert (after.status, after.body) == (200, b"fine")
    assert [(r.target, r.conn) for r in server.requests] == [(b"/bad", 1), (b"/next", 2)]


@async_test
async def test_extra_bytes_after_a_response_drop_the_connection() -> None:
    """A response followed by bytes nobody asked for (a smuggled second response) is not
    kept for the next request: that request goes to a new connection and reads its own."""

    def make(req: Req) -> bytes:
        if req.target == b"/first":
            return http_response(200, b"one") + http_response(200, b"smuggled")
        return http_response(200, b"two")

    async with RawServer(answering(make)) as server:
        with client() as c:
            first = await c.request("GET", server.url("/first"), {}, None, 100)
            second = await c.request("GET", server.url("/second"), {}, None, 100)
    assert (first.body, second.body) == (b"one", b"two")
    assert [(r.target, r.conn) for r in server.requests] == [(b"/first", 1), (b"/second", 2)]


@async_test
async def test_head_requests_refused_before_connecting() -> None:
    """The response parser cannot be told a response has no body: HEAD is not offered."""
    async with RawServer(answering(lambda req: http_response(200, b"x"))) as server:
        with client() as c, pytest.raises(ValueError, match="HEAD"):
            await c.request("HEAD", server.url(), {}, None, 10)
    assert server.connections == 0
