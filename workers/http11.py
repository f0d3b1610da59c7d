"""A small asyncio HTTP/1.1 client for the hub's outbound requests.

What a hub's outbound requests need and nothing more: keep-alive connections pooled per
origin (idle ones swept and capped: :mod:`workers.http11_pool`), no redirects, no cookies, no
decompression, the response body read up to a limit and the rest discarded (or, for fetches,
refused past a hard cap). Names are resolved here and every address is checked against the
SSRF policy before connecting to that very address, so DNS rebinding cannot get through.
Responses are parsed strictly by llhttp (:mod:`workers.http11_wire`).

Measured CPU per request (``python -m bench.http_parsers``, medians, shared 2-core machine):
the client process spends 22.5 µs per keep-alive POST with this client against 23.0 µs with
the hand-written lenient parser it replaced and 60.6 µs through aiohttp's ``ClientSession``;
parsing alone costs 5.4 µs per delivery response (hand-written 3.7, h11 33.8, bare httptools
2.3). h11 would have more than doubled the cost of a delivery; see docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import re
import ssl
from typing import NamedTuple
from urllib.parse import quote, unquote

from broker_hub import netguard
from workers.http11_pool import IdlePool
from workers.http11_wire import (
    MAX_DISCARD_BYTES,
    BodyTooLarge,
    Connection,
    HTTPError,
    StaleConnection,
)

__all__ = ["BodyTooLarge", "Client", "HTTPError", "Origin", "Response", "split_url"]

IDLE_SECONDS = 30.0  # keep-alive connections unused for longer are closed (by a sweeper)
MAX_IDLE = 256  # idle keep-alive connections kept in all; the oldest is closed first
_SAFE = "/?&=%:@!$'()*+,;[]~-._"
_TARGET_START = re.compile(r"[/?#]")


class Origin(NamedTuple):  # the idle pool's key: hashed per request
    scheme: str
    host: str
    port: int
    host_header: str
    authorization: str | None


class Response(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes  # at most the requested limit


def split_url(url: str) -> tuple[Origin, str]:
    """(origin, request target) of an absolute http(s) URL, the target kept as written."""
    start = url.find("://") + 3
    found = _TARGET_START.search(url, start) if start >= 3 else None
    cut = found.start() if found is not None else len(url)
    prefix, target = url[:cut], url[cut:].partition("#")[0]
    if not target.startswith("/"):
        target = "/" + target
    if not target.isascii():
        target = quote(target, safe=_SAFE)
    return _origin(prefix), target


@functools.lru_cache(maxsize=4096)
def _origin(prefix: str) -> Origin:
    """The origin of ``scheme://[userinfo@]host[:port]``, cached: parsing one took ~2.5 µs of
    a delivery's CPU, and a mirror's callbacks share a handful of origins."""
    scheme, _, netloc = prefix.partition("://")
    scheme = scheme.lower()
    userinfo, _, hostport = netloc.rpartition("@")
    authorization = None
    if userinfo:
        raw = unquote(userinfo).encode("utf-8")
        authorization = "Basic " + base64.b64encode(raw).decode("ascii")
    if hostport.startswith("["):
        host, _, port_text = hostport[1:].partition("]")
        port_text = port_text.lstrip(":")
    else:
        host, _, port_text = hostport.partition(":")
    port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    host = host.lower()
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if default else f"{shown}:{port}"
    return Origin(scheme, host, port, host_header, authorization)


class Client:
    """Pooled keep-alive connections per origin; one request at a time per connection."""

    def __init__(
        self,
        *,
        allow_private: bool,
        connect_timeout: float,
        idle_seconds: float = IDLE_SECONDS,
        max_idle: int = MAX_IDLE,
    ):
        self.allow_private = allow_private
        self.connect_timeout = connect_timeout
        self._idle = IdlePool(idle_seconds=idle_seconds, max_idle=max_idle)
        self._busy: set[Connection] = set()
        self._tls = ssl.create_default_context()

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        read_limit: int,
        *,
        max_body: int | None = None,
    ) -> Response:
        """One exchange. The body is kept up to ``read_limit`` bytes and the rest discarded;
        with ``max_body``, a body (declared or streamed) over it raises BodyTooLarge instead."""
        if method.upper() == "HEAD":
            raise ValueError("HEAD is not supported (the parser would wait for the body)")
        origin, target = split_url(url)
        head = self._head(method, origin, target, headers, body)
        if max_body is not None:
            limit, cap, strict = max_body, max_body, True
        else:
            limit, cap, strict = read_limit, max(read_limit, MAX_DISCARD_BYTES), False
        for attempt in (1, 2):
            # the one retry after a dropped keep-alive connection goes to a new connection
            conn = self._idle.take(origin) if attempt == 1 else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect(origin)
            self._busy.add(conn)
            try:
                conn.begin(limit, cap, strict)
                if body and len(body) < 65536:
                    await conn.write(head + body)
                else:
                    await conn.write(head)
                    if body:
                        await conn.write(body)
                reading = await conn.response()
            except StaleConnection:
                conn.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle connection: once more on a new one
                raise HTTPError("connection closed before the response") from None
            except BaseException:
                conn.close()
                raise
            finally:
                self._busy.discard(conn)
            if reading.reusable and not conn.dirty and not conn.closed:
                self._idle.put(origin, conn)
            else:
                conn.close()
            body = bytes(reading.body) if reading.body else b""
            return Response(reading.status, reading.headers, body)
        raise AssertionError("unreachable")

    @staticmethod
    def _head(
        method: str, origin: Origin, target: str, headers: dict[str, str], body: bytes | None
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {origin.host_header}"]
        if origin.authorization:
            lines.append(f"Authorization: {origin.authorization}")
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        text = "\r\n".join(lines) + "\r\n\r\n"
        try:
            return text.encode("latin-1")  # header values as received, byte for byte
        except UnicodeEncodeError:
            return text.encode("utf-8")

    async def _connect(self, origin: Origin) -> Connection:
        loop = asyncio.get_running_loop()
        addresses = await netguard.resolve_allowed(
            origin.host, origin.port, allow_private=self.allow_private
        )
        error: Exception = HTTPError(f"{origin.host} has no address")
        for address in addresses:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    _, conn = await loop.create_connection(
                        Connection,
                        host=address,
                        port=origin.port,
                        ssl=self._tls if origin.scheme == "https" else None,
                        server_hostname=origin.host if origin.scheme == "https" else None,
                    )
                return conn
            except (OSError, TimeoutError) as exc:
                error = exc
        raise error

    def idle_count(self) -> int:
        """Idle keep-alive connections held (all origins)."""
        return len(self._idle)

    def write_buffered(self) -> int:
        """Request bytes waiting in the transports' write buffers (back-pressure bounds it)."""
        return sum(conn.write_buffered() for conn in self._busy)

    def close(self) -> None:
        self._idle.close()
        for conn in list(self._busy):
            conn.close()
