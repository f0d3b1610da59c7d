"""The deliverer's asyncio side: one event loop thread, one aiohttp session.

Connections are kept alive and pooled per host; concurrency is bounded in all and per host,
so one slow mirror never holds up the others. The kombu consumer thread hands work in with
:meth:`submit`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Coroutine, Mapping
from typing import Any

import aiohttp
from yarl import URL

from broker_hub import netguard
from broker_hub.config import Settings
from broker_hub.retry import Attempt, retry_after_seconds

logger = logging.getLogger(__name__)


class HttpEngine:
    """Runs coroutines on a private event loop; makes bounded outbound requests."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.loop = _new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="http-engine", daemon=True
        )
        self._session: aiohttp.ClientSession | None = None
        # Waiting for a pooled connection is not counted: only connecting and reading are.
        t = settings.http_timeout
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=t, sock_read=t)
        self._literal_ok: dict[str, str] = {}  # netloc -> "" (allowed) or the refusal

    def start(self) -> None:
        self._thread.start()
        self.submit(self._open()).result(timeout=10)

    async def _open(self) -> None:
        s = self.settings
        # The connector bounds concurrency in all and per mirror host; it queues waiters per
        # host, so requests for a slow (or busy) mirror never take the others' connections.
        connector = aiohttp.TCPConnector(
            limit=s.delivery_concurrency,
            limit_per_host=s.delivery_per_host,
            resolver=netguard.GuardedResolver(allow_private=s.allow_private_addresses),
            keepalive_timeout=60,
            ttl_dns_cache=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": "broker-hub (WebSub hub)"},
            skip_auto_headers=("Content-Type",),
        )

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def _refusal(self, url: str) -> str:
        """Why an IP-literal host is forbidden ("" when allowed); aiohttp skips the resolver
        for literals, so they are checked here, once per host."""
        netloc = url.partition("//")[2].partition("/")[0]
        refusal = self._literal_ok.get(netloc)
        if refusal is None:
            try:
                netguard.check_url_host(url, allow_private=self.settings.allow_private_addresses)
                refusal = ""
            except netguard.ForbiddenAddress as exc:
                refusal = f"forbidden address: {exc}"
            if len(self._literal_ok) > 100_000:
                self._literal_ok.clear()
            self._literal_ok[netloc] = refusal
        return refusal

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        read_limit: int = 0,
    ) -> tuple[Attempt, bytes]:
        """One request, no redirects followed: the attempt and up to ``read_limit`` body bytes."""
        assert self._session is not None
        refusal = self._refusal(url)
        if refusal:
            return Attempt(None, refusal, forbidden=True), b""
        try:
            async with self._session.request(
                method,
                URL(url, encoded=url.isascii()),
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                body = await _read_up_to(response, read_limit) if read_limit else b""
                if not read_limit or len(body) >= read_limit:
                    await _discard(response)
                retry_after = None
                if response.status in (429, 503):
                    retry_after = retry_after_seconds(
                        response.headers.get("Retry-After"), cap=self.settings.retry_after_cap
                    )
                return Attempt(response.status, "", retry_after), body
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return Attempt(None, _describe(exc), forbidden=_is_forbidden(exc)), b""

    def stop(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        if self._session is not None:
            with contextlib.suppress(Exception):  # closing on the way out
                self.submit(self._session.close()).result(timeout=timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (markedly less CPU per request), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _read_up_to(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read until ``limit`` bytes or the end of the body, whichever comes first.

    ``content.read(n)`` alone returns whatever has arrived, so a body split across packets
    would look shorter (or, for a challenge followed by more, equal) to what was sent.
    """
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _discard(response: aiohttp.ClientResponse, limit: int = 65536) -> None:
    """Read and drop a small body so the connection goes back to the pool; close on big ones."""
    try:
        data = await response.content.read(limit)
        if data and not response.content.at_eof():
            response.close()
    except (aiohttp.ClientError, TimeoutError):
        response.close()


def _is_forbidden(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, netguard.ForbiddenAddress):
            return True
        inner = getattr(seen, "os_error", None)
        if isinstance(inner, netguard.ForbiddenAddress):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    return exc.__class__.__name__
