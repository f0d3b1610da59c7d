"""A small, cheap HTTP/1.1 load client for the orchestrator's bulk POSTs (subscribes, pings).

aiohttp's ClientSession costs the orchestrator a lot of CPU per request, CPU taken from the
hub being measured on a small machine. This client sends pre-encoded requests over a pool of
at most ``concurrency`` persistent connections to one host:port:

- each connection carries one request at a time (no pipelining) and is re-used while the
  server keeps it open; a connection the server closed while idle is dropped before re-use,
  and a request that fails on a re-used connection before any response byte (the server
  closed it at the same moment) is sent once more on a new connection;
- a response is read in full: status line, headers, body by ``Content-Length``, chunked, or
  until the server closes; ``1xx`` interim responses are skipped; ``Connection: close`` (or an
  HTTP/1.0 answer without keep-alive) closes the connection after the response;
- every request has a timeout (``TimeoutError``); connection failures raise ``OSError``,
  protocol errors :class:`ClientError`.

Only what the benchmark needs: ``form_post(body)`` sends a ``POST`` of an
``application/x-www-form-urlencoded`` body (see :func:`form`) to the client's URL and returns
the status code. No TLS, no redirects, no proxies, no cookies.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlencode, urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class ClientError(Exception):
    """The server broke HTTP/1.1, or closed the connection before a whole response."""


class StaleConnection(ClientError):
    """A re-used connection closed before any byte of the response: safe to send again."""


def form(fields: dict[str, str]) -> bytes:
    """An ``application/x-www-form-urlencoded`` body (as aiohttp encodes a dict)."""
    return urlencode(fields).encode()


def _dechunk_end(buf: bytearray, pos: int) -> int | None:
    """The end of a chunked body starting at ``buf[pos]`` (the body itself is not kept)."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
            raise ClientError(f"bad chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        pos = eol + 2
        if size == 0:
            break
        pos += size + 2
        if pos > len(buf):
            return None
    while True:  # trailers up to an empty line
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        if eol == pos:
            return eol + 2
        pos = eol + 2


class _Connection(asyncio.Protocol):
    """One TCP connection and the response it waits for."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.eof = False
        self.reused = False
        self.got_bytes = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():  # nothing asked: a broken server
            self.close()
            return
        self.got_bytes = True
        self.buf += data
        self._try_complete()

    def eof_received(self) -> bool:
        self.eof = True
        if self.waiter is not None and not self.waiter.done():
            self._try_complete()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.eof = True
            self._try_complete()
            if not waiter.done():
                cls = StaleConnection if self.reused and not self.got_bytes else ClientError
                waiter.set_exception(cls(f"connection closed before a whole response ({exc})"))

    # -- response parsing ------------------------------------------------------------------
    def _try_complete(self) -> None:
        try:
            result = self._parse()
        except ClientError as exc:
            self.waiter.set_exception(exc)  # type: ignore[union-attr]
            self.close()
            return
        if result is None:
            return
        status, keep = result
        if self.buf or not keep:  # stray bytes after the response, or the server closes
            self.close()
        self.waiter.set_result(status)  # type: ignore[union-attr]

    def _parse(self) -> tuple[int, bool] | None:
        """(status, keep-alive) once a whole final response is in the buffer, else None."""
        buf = self.buf
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buf) > MAX_HEAD:
                    raise ClientError("response head too large")
                return None
            line_end = buf.find(b"\r\n")
            parts = bytes(buf[:line_end]).split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise ClientError(f"not an HTTP/1.x response: {bytes(buf[:40])!r}")
            status = int(parts[1])
            if 100 <= status < 200:  # interim (100 Continue): the final response follows
                del buf[:head_end + 4]
                continue
            break
        low = bytes(buf[line_end:head_end + 2]).lower()
        i = low.find(b"\r\nconnection:")
        conn = low[i + 13:low.find(b"\r\n", i + 13)] if i >= 0 else b""
        keep = (b"close" not in conn) if parts[0] == b"HTTP/1.1" else (b"keep-alive" in conn)
        start = head_end + 4
        if status in (204, 304):
            end = start
        elif b"\r\ntransfer-encoding:" in low:
            end = _dechunk_end(buf, start)
            if end is None:
                return None
        else:
            i = low.find(b"\r\ncontent-length:")
            if i < 0:  # the body runs until the server closes
                if not self.eof:
                    if len(buf) - start > MAX_BODY:
                        raise ClientError("response body too large")
                    return None
                end, keep = len(buf), False
            else:
                value = low[i + 17:low.find(b"\r\n", i + 17)].strip()
                if not value.isdigit():
                    raise ClientError(f"bad Content-Length {value[:20]!r}")
                end = start + int(value)
                if end > len(buf):
                    if self.eof:
                        raise ClientError("connection closed inside the body")
                    return None
        del buf[:end]
        return status, keep

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def on_timeout(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(TimeoutError("no whole response in time"))
        self.close()


class LoadClient:
    """A pool of up to ``concurrency`` keep-alive connections to the host:port of ``url``."""

    def __init__(self, url: str, concurrency: int, timeout: float = 30.0):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self._form_head = (
            f"POST {target} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: bench-loadclient\r\n"
            "Accept: */*\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        ).encode()
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._slots = asyncio.Semaphore(concurrency)

    def form_request(self, body: bytes) -> bytes:
        """The whole request for a form POST of ``body`` (build them before timing)."""
        return self._form_head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    async def form_post(self, body: bytes) -> int:
        return await self.send(self.form_request(body))

    async def send(self, request: bytes) -> int:
        """Send one whole pre-encoded request; the response's status code."""
        async with self._slots:
            try:
                return await self._send_once(request)
            except StaleConnection:
                return await self._send_once(request, fresh=True)

    async def _send_once(self, request: bytes, fresh: bool = False) -> int:
        conn = None
        while self._idle and not fresh:
            candidate = self._idle.pop()
            if not candidate.closed and candidate.transport is not None \
                    and not candidate.transport.is_closing():
                conn = candidate
                conn.reused = True
                break
            self._all.discard(candidate)
        loop = asyncio.get_running_loop()
        if conn is None:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, self.host, self.port), self.timeout)
            self._all.add(conn)
        conn.got_bytes = False
        waiter = conn.waiter = loop.create_future()
        timer = loop.call_later(self.timeout, conn.on_timeout)
        try:
            conn.transport.write(request)  # type: ignore[union-attr]
            status = await waiter
        except BaseException:  # failed, timed out or cancelled: the connection is done
            conn.close()
            self._all.discard(conn)
            raise
        finally:
            timer.cancel()
            conn.waiter = None
        if conn.closed:
            self._all.discard(conn)
        else:
            self._idle.append(conn)
        return status

    async def close(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports close

    async def __aenter__(self) -> LoadClient:
        return self

    async def __aexit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            await self.close()
