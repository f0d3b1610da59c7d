"""The raw HTTP/1.1 side of the benchmark's subscriber server (``bench/subscriber.py``): the
connection protocol, chunked bodies, whole responses as bytes. The request parser and the
handlers stay in the server, where the hot path of a delivery is one function.

HTTP/1.1 as far as the hubs need it: persistent connections (HTTP/1.0 only with
``Connection: keep-alive``), any number of them; pipelined requests (every complete request in
one read is answered, in order, by one write); request bodies by ``Content-Length`` or
``Transfer-Encoding: chunked`` (chunked bodies are re-parsed from the start on each read until
complete: correct, not fast; trailers are ignored); ``Expect: 100-continue``; a request with
``Connection: close`` is answered with ``Connection: close`` and the connection closed. Header
names are case-insensitive; a malformed request gets ``400`` (``501`` for a transfer coding
other than chunked, ``431``/``413`` when too large) and the connection is closed. Connections
idle for 75 s are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.subscriber import Server

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
IDLE_SECONDS = 75.0

# Header names as they appear in the lower-cased head, which starts with the CRLF that ends
# the request line: each header line is preceded by CRLF, so a match is always a header name.
H_CONTENT_LENGTH = b"\r\ncontent-length:"
H_TRANSFER_ENCODING = b"\r\ntransfer-encoding:"
H_CONNECTION = b"\r\nconnection:"
H_SIGNATURE = b"\r\nx-hub-signature:"
H_DELIVERY_ID = b"\r\nx-hub-delivery-id:"
H_EXPECT = b"\r\nexpect:"

REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found",
           413: "Content Too Large", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented"}
R204 = b"HTTP/1.1 204 No Content\r\n\r\n"
R204_CLOSE = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
R204_KEEP_ALIVE = b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"  # for HTTP/1.0
R100 = b"HTTP/1.1 100 Continue\r\n\r\n"
TEXT_UTF8 = b"text/plain; charset=utf-8"
JSON_UTF8 = b"application/json; charset=utf-8"


def response(status: int, body: bytes = b"", content_type: bytes | None = None,
             connection: bytes = b"", head_only: bool = False) -> bytes:
    """A whole response. ``connection``: b"" (HTTP/1.1 keep-alive), b"close" or b"keep-alive"
    (an HTTP/1.0 client that asked for it)."""
    if status == 204:
        return R204_CLOSE if connection == b"close" else R204_KEEP_ALIVE if connection else R204
    lines = [b"HTTP/1.1 %d %s" % (status, REASONS.get(status, "Unknown").encode())]
    if content_type is not None:
        lines.append(b"Content-Type: " + content_type)
    lines.append(b"Content-Length: %d" % len(body))
    if connection:
        lines.append(b"Connection: " + connection)
    lines.append(b"\r\n")
    return b"\r\n".join(lines) + (b"" if head_only else body)


class BadRequest(Exception):
    def __init__(self, status: int = 400):
        super().__init__(status)
        self.status = status


def dechunk(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """A chunked body starting at ``data[pos]``: (body, end of the message), or None if
    incomplete; BadRequest if malformed."""
    parts = []
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            if len(data) - pos > 4096:
                raise BadRequest()
            return None
        size_text = data[pos:eol].split(b";", 1)[0].strip()
        if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
            raise BadRequest()
        size = int(size_text, 16)
        pos = eol + 2
        if size == 0:
            break
        if len(data) < pos + size + 2:
            return None
        if data[pos + size:pos + size + 2] != b"\r\n":
            raise BadRequest()
        parts.append(data[pos:pos + size])
        pos += size + 2
    while True:  # trailer fields (ignored) up to an empty line
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            if len(data) - pos > MAX_HEAD:
                raise BadRequest(431)
            return None
        if eol == pos:
            return b"".join(parts), eol + 2
        pos = eol + 2


class HttpProtocol(asyncio.Protocol):
    """One connection: keeps the bytes of an incomplete request, answers complete ones."""

    __slots__ = ("buf", "last", "need", "server", "transport")

    def __init__(self, server: Server):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()  # the start of an incomplete request
        self.need = 0  # its whole size once its head was parsed (0: head incomplete)
        self.last = time.time()

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)

    def connection_lost(self, exc) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def eof_received(self) -> bool:
        return False  # the transport closes (after writing what is pending)

    def data_received(self, data: bytes) -> None:
        if self.buf:
            self.buf += data
            if len(self.buf) < self.need:
                return
            data = bytes(self.buf)
            self.buf.clear()
        self.need = 0
        self.last = now = time.time()
        request = self.server.request
        size = len(data)
        pos = 0
        out = None
        close = False
        while pos < size:
            try:
                result = request(data, pos, now)
            except BadRequest as exc:
                answer, close = response(exc.status, connection=b"close"), True
            else:
                if result is None:  # the head is incomplete
                    if size - pos > MAX_HEAD:
                        answer, close = response(431, connection=b"close"), True
                    else:
                        self.buf += data[pos:] if pos else data
                        break
                elif result.__class__ is int:  # the body is incomplete; result: its end
                    if result < 0:  # the client waits for 100 Continue
                        answer, result = R100, -result
                    else:
                        answer = None
                    self.need = result - pos
                    self.buf += data[pos:] if pos else data
                    if answer is None:
                        break
                    pos = size
                else:
                    answer, pos, close = result
            if out is None:
                out = answer
            else:
                out += answer
            if close:
                break
        transport = self.transport
        if transport is not None:
            if out is not None:
                transport.write(out)
            if close:
                transport.close()


