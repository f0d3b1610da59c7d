"""aiohttp's client behind the interface of :class:`workers.http11.Client`
(``HUB_HTTP_CLIENT=aiohttp``), so the benchmark can check again why the hub owns its client.

The same rules hold: every resolved address is checked against the SSRF policy before
connecting (a resolver that returns only allowed addresses; IP literals, which aiohttp does
not resolve, are checked up front), no redirects, no cookies, no decompression and no
``Accept-Encoding``, the body kept up to a limit, the rest discarded or refused.
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from broker_hub import netguard
from workers.http11 import IDLE_SECONDS, Response
from workers.http11_wire import MAX_DISCARD_BYTES, BodyTooLarge, HTTPError


class GuardedResolver(AbstractResolver):
    """Resolves with the event loop and keeps only the addresses the SSRF policy allows."""

    def __init__(self, *, allow_private: bool):
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await netguard.resolve_allowed(host, port, allow_private=self.allow_private)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


def _forbidden_cause(exc: BaseException) -> netguard.ForbiddenAddress | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, netguard.ForbiddenAddress):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__ or seen.__context__
    return None


class AiohttpClient:
    """One ``aiohttp.ClientSession`` (made on first use, on the running loop)."""

    def __init__(self, *, allow_private: bool, connect_timeout: float):
        self.allow_private = allow_private
        self.connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(allow_private=self.allow_private),
            limit=0,  # HttpEngine bounds concurrency
            limit_per_host=0,
            use_dns_cache=False,  # every connection's addresses checked afresh
            keepalive_timeout=IDLE_SECONDS,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "Accept", "User-Agent"),
            timeout=aiohttp.ClientTimeout(total=None, connect=self.connect_timeout),
        )

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
        netguard.check_url_host(url, allow_private=self.allow_private)  # literals skip DNS
        if self._session is None:
            self._session = self._open()
        try:
            async with self._session.request(
                method, url, headers=headers, data=body, allow_redirects=False
            ) as resp:
                if max_body is not None:
                    data = await _read_capped(resp, max_body)
                else:
                    data = await _read_limited(resp, read_limit)
                joined: dict[str, str] = {}
                for name, value in resp.headers.items():
                    key = name.lower()
                    joined[key] = f"{joined[key]}, {value}" if key in joined else value
                return Response(resp.status, joined, data)
        except aiohttp.ClientError as exc:
            forbidden = _forbidden_cause(exc)
            if forbidden is not None:
                raise forbidden from None
            raise HTTPError(f"{exc.__class__.__name__}: {exc}") from None

    def close(self) -> Any:
        """A coroutine closing the session (HttpEngine awaits it)."""
        session, self._session = self._session, None
        return session.close() if session is not None else _nothing()


async def _nothing() -> None:
    return None


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    if resp.content_length is not None and resp.content_length > cap:
        resp.close()
        raise BodyTooLarge(f"Content-Length {resp.content_length} over {cap}")
    data = bytearray()
    async for chunk in resp.content.iter_any():
        data += chunk
        if len(data) > cap:
            resp.close()
            raise BodyTooLarge(f"body over {cap} bytes")
    return bytes(data)


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    data = bytearray()
    while len(data) < limit:
        chunk = await resp.content.read(limit - len(data))
        if not chunk:
            return bytes(data)
        data += chunk
    discarded = 0
    while chunk := await resp.content.read(65536):
        discarded += len(chunk)
        if discarded > MAX_DISCARD_BYTES:
            resp.close()  # not worth draining: the connection is closed
            break
    return bytes(data)
