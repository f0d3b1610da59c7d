"""HTTP/1.1 on the wire for :mod:`workers.http11`: one connection, its writes with
back-pressure, and its responses parsed strictly by llhttp (through httptools).

llhttp refuses what RFC 9112 forbids and a lenient parser lets through (a four-digit status,
``Content-Length : 5``, obsolete line folding, bare LF, Content-Length with chunked, a
missing CRLF after a chunk); on top of it only ``Transfer-Encoding: chunked`` is accepted and
only HTTP/1.0 and 1.1. Bytes nobody asked for (before a request, or after the response) make
the connection unusable, so a smuggled second response is never read as the next one.

CPU per response parsed (µs, ``python -m bench.http_parsers``, median of 5): delivery 202 5.4,
20 KB feed 6.2 (Content-Length) / 7.0 (chunked); the hand-written parser this replaced took
3.7 / 4.2 / 12.8 and h11 33.8 / 50.4 / 65.9.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

MAX_HEAD_BYTES = 64 * 1024  # status line + headers
MAX_DISCARD_BYTES = 1024 * 1024  # a larger body is not drained: the connection is closed
MAX_INTERIM = 10  # 1xx responses before the final one
WRITE_HIGH_WATER = 256 * 1024  # transport buffer that pauses our writes (back-pressure)
WRITE_SLICE = 256 * 1024  # a large body is handed to the transport in slices this big


class HTTPError(Exception):
    """The peer broke the protocol, or the connection failed."""


class StaleConnection(HTTPError):
    """A reused keep-alive connection was closed before any response byte: safe to retry."""


class BodyTooLarge(HTTPError):
    """The response body (declared or streamed) exceeds the caller's hard cap."""


class Reading:
    """The response being read: what to keep, where to stop, what arrived so far."""

    def __init__(self, limit: int, cap: int, strict: bool):
        self.limit = limit  # body bytes kept
        self.cap = cap  # body bytes after which reading stops
        self.strict = strict  # past the cap: BodyTooLarge (else: cut, connection closed)
        self.status = 0
        self.version = ""
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.total = 0  # body bytes seen, kept or not
        self.head_bytes = 0  # header bytes parsed (names, values, line ends)
        self.raw_head = 0  # bytes received while the head was not complete
        self.interim = 0
        self.cut = False  # a declared length over the cap: keep ``limit`` bytes, then close
        self.head_done = False
        self.done = False
        self.reusable = False
        self.error: HTTPError | None = None
        self.received = False  # any byte of this response


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request/response exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.dirty = False  # bytes arrived that belong to no response we asked for
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._reading: Reading | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        reading = self._reading
        if reading is None or reading.done or reading.error:
            self.dirty = True
            return
        reading.received = True
        if not reading.head_done:
            reading.raw_head += len(data)
        assert self._parser is not None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HTTPError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            if not reading.done:  # after the response: junk that only makes the conn unusable
                self._fail(HTTPError(f"malformed response: {exc}"))
            self.dirty = True
        if not reading.head_done and reading.raw_head > MAX_HEAD_BYTES and not reading.error:
            self._fail(HTTPError("response head too large"))  # the head trickles in
        self._wake()

    def eof_received(self) -> bool:
        self._lost()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()
        self._parser = None  # the parser refers back to this protocol: no cycle left behind
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # --- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._reading is not None and self._reading.done:
            self.dirty = True

    def on_header(self, name: bytes, value: bytes) -> None:
        reading = self._reading
        if reading is None or reading.head_done or reading.error:
            return None
        reading.head_bytes += len(name) + len(value) + 4
        if reading.head_bytes > MAX_HEAD_BYTES:
            return self._fail(HTTPError("response head too large"))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip(" \t")  # optional whitespace around values
        reading.headers[key] = f"{reading.headers[key]}, {text}" if key in reading.headers else text
        return None

    def on_headers_complete(self) -> None:
        reading = self._reading
        assert reading is not None and self._parser is not None
        if reading.done or reading.error:
            return
        status = self._parser.get_status_code()
        version = self._parser.get_http_version()
        if version not in ("1.0", "1.1"):
            return self._fail(HTTPError(f"not an HTTP/1.x response (HTTP/{version})"))
        if 100 <= status < 200:
            reading.interim += 1
            if status == 101 or reading.interim > MAX_INTERIM:
                return self._fail(HTTPError(f"unexpected interim response {status}"))
            reading.headers = {}  # an interim response: the real one follows
            return None
        coding = reading.headers.get("transfer-encoding")
        if coding is not None and coding.strip().lower() != "chunked":
            return self._fail(HTTPError(f"unsupported Transfer-Encoding {coding!r}"))
        reading.status, reading.version, reading.head_done = status, f"HTTP/{version}", True
        length = reading.headers.get("content-length", "")
        if coding is None and length.isdigit() and int(length) > reading.cap:
            if reading.strict:
                return self._fail(BodyTooLarge(f"Content-Length {length} over {reading.cap}"))
            reading.cut = True
            if reading.limit == 0:
                self._finish(reusable=False)  # not worth reading: the connection is closed
        return None

    def on_body(self, body: bytes) -> None:
        reading = self._reading
        if reading is None or reading.done or reading.error:
            return
        reading.total += len(body)
        room = reading.limit - len(reading.body)
        if room > 0:
            reading.body += body[:room]
        if reading.total > reading.cap and reading.strict:
            self._fail(BodyTooLarge(f"body over {reading.cap} bytes"))
        elif (reading.cut or reading.total > reading.cap) and len(reading.body) >= reading.limit:
            self._finish(reusable=False)  # not worth draining: the connection is closed

    def on_message_complete(self) -> None:
        reading = self._reading
        if reading is None or reading.done or reading.error or not reading.head_done:
            return  # an interim response ended, or a response we no longer read
        assert self._parser is not None
        self._finish(reusable=self._parser.should_keep_alive())

    # --- the exchange ------------------------------------------------------------------------

    def begin(self, limit: int, cap: int, strict: bool) -> None:
        """Expect one response: keep ``limit`` body bytes, stop (or fail) past ``cap``."""
        self._reading = Reading(limit, cap, strict)
        if self._parser is None:
            # One parser per connection: llhttp starts afresh after each complete message,
            # and a connection is reused only after one (creating a parser per request was
            # ~5 µs of a delivery's CPU). RFC 9112 7.1.1 allows BWS between a chunk size and
            # its extensions ("6 ; ext").
            self._parser = httptools.HttpResponseParser(self)
            self._parser.set_dangerous_leniencies(lenient_spaces_after_chunk_size=True)

    async def write(self, data: bytes) -> None:
        """Write ``data``, waiting for the transport to drain while its buffer is full.

        Stops early when the connection closes or the response is already complete or
        broken (a server that answered before reading the whole body); such a connection
        is not reused."""
        assert self.transport is not None
        view = memoryview(data)
        for start in range(0, len(view), WRITE_SLICE):
            if self.closed or self._answered():
                self.dirty = True  # part of the request unsent: the connection is spent
                return
            self.transport.write(view[start : start + WRITE_SLICE])
            if self._write_paused:
                self._drain_waiter = asyncio.get_running_loop().create_future()
                await self._drain_waiter
                self._drain_waiter = None

    async def response(self) -> Reading:
        """The response begun with :meth:`begin`, once complete (or cut as asked)."""
        reading = self._reading
        assert reading is not None
        while not reading.done:
            if reading.error is not None:
                raise reading.error
            if self.closed:
                if not reading.received:
                    raise StaleConnection()
                raise HTTPError("connection closed before the response ended")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None
        return reading

    def usable(self, now: float, idle_limit: float) -> bool:
        return (
            not self.closed
            and not self.dirty
            and self.transport is not None
            and not self.transport.is_closing()
            and now - self.idle_since < idle_limit
        )

    def write_buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # --- internals ---------------------------------------------------------------------------

    def _lost(self) -> None:
        self.closed = True
        reading = self._reading
        if reading is not None and reading.head_done and not reading.done and not reading.error:
            delimited = "content-length" in reading.headers or (
                "transfer-encoding" in reading.headers
            )
            if not delimited and reading.status not in (204, 304):
                self._finish(reusable=False)  # the body was "until the connection closes"
        self._wake()

    def _fail(self, error: HTTPError) -> None:
        assert self._reading is not None
        self._reading.error = error
        self._wake()

    def _finish(self, *, reusable: bool) -> None:
        assert self._reading is not None
        self._reading.done = True
        self._reading.reusable = reusable
        self._wake()

    def _answered(self) -> bool:
        reading = self._reading
        return reading is not None and (reading.done or reading.error is not None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if self._answered() and self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)  # a writer waiting for drain: stop writing
