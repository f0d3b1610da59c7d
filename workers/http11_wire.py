"""HTTP/1.1 on the wire for :mod:`workers.http11`: a connection's byte buffer, and reading a
response (status line, headers, a body by Content-Length, chunks or until EOF) from it."""

from __future__ import annotations

import asyncio

MAX_HEAD_BYTES = 64 * 1024  # status line + headers
MAX_DISCARD_BYTES = 1024 * 1024  # a larger body is not drained: the connection is closed


class HTTPError(Exception):
    """The peer broke the protocol, or the connection failed."""


class StaleConnection(HTTPError):
    """A reused keep-alive connection was closed before any response byte: safe to retry."""


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: a byte buffer the reader awaits."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _more(self) -> None:
        if self.closed:
            raise HTTPError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter
        self._waiter = None

    async def read_until(self, separator: bytes, limit: int) -> bytes:
        start = 0
        while True:
            found = self.buffer.find(separator, start)
            if found >= 0:
                end = found + len(separator)
                if end > limit:
                    raise HTTPError("response head too large")
                data = bytes(self.buffer[:end])
                del self.buffer[:end]
                return data
            if len(self.buffer) > limit:
                raise HTTPError("response head too large")
            start = max(0, len(self.buffer) - len(separator) + 1)
            await self._more()

    async def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            await self._more()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def read_to_eof(self, limit: int) -> bytes:
        while not self.closed and len(self.buffer) <= limit:
            await self._more()
        data = bytes(self.buffer[:limit])
        self.buffer.clear()
        return data

    def usable(self, now: float, idle_limit: float) -> bool:
        return (
            not self.closed
            and not self.buffer
            and self.transport is not None
            and not self.transport.is_closing()
            and now - self.idle_since < idle_limit
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def parse_head(raw: bytes) -> tuple[int, str, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise HTTPError("not an HTTP/1.x response")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HTTPError("malformed header line")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return int(code), version, headers


async def read_body(
    conn: Connection, status: int, headers: dict[str, str], limit: int
) -> tuple[bytes, bool]:
    """The body (up to ``limit`` bytes kept) and whether the connection can be reused."""
    if status in (204, 304):
        return b"", True
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await read_chunked(conn, limit)
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise HTTPError("bad Content-Length")
        size = int(length)
        if size > max(limit, MAX_DISCARD_BYTES):
            data = await conn.read_exactly(min(limit, size)) if limit else b""
            return data, False  # not worth draining: close the connection
        data = await conn.read_exactly(size)
        return data[:limit], True
    return await conn.read_to_eof(limit), False


async def read_chunked(conn: Connection, limit: int) -> tuple[bytes, bool]:
    kept = bytearray()
    total = 0
    while True:
        line = await conn.read_until(b"\r\n", 1024)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HTTPError("bad chunk size") from None
        if size == 0:
            while (await conn.read_until(b"\r\n", MAX_HEAD_BYTES)) != b"\r\n":
                pass  # trailers
            return bytes(kept), True
        total += size
        if total > max(limit, MAX_DISCARD_BYTES):
            return bytes(kept), False
        chunk = await conn.read_exactly(size + 2)
        if len(kept) < limit:
            kept += chunk[: min(size, limit - len(kept))]
