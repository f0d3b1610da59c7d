"""The deliverer's asyncio side: one event loop thread, one aiohttp session.

Connections are kept alive and pooled per host; concurrency is bounded globally and per host,
and a task waiting for a busy (or slow) host holds no global slot, so one slow mirror never
holds up the others. The kombu consumer thread hands work in with :meth:`submit`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Coroutine, Mapping
from typing import Any
from urllib.parse import urlsplit

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
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="http-engine", daemon=True
        )
        self._session: aiohttp.ClientSession | None = None
        self._global: asyncio.Semaphore | None = None
        self._per_host: dict[str, asyncio.Semaphore] = {}

    def start(self) -> None:
        self._thread.start()
        self.submit(self._open()).result(timeout=10)

    async def _open(self) -> None:
        s = self.settings
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
            headers={"User-Agent": "broker-hub (WebSub hub)"},
            skip_auto_headers=("Content-Type",),
        )
        self._global = asyncio.Semaphore(s.delivery_concurrency)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

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
        assert self._session is not None and self._global is not None
        host = urlsplit(url).netloc.lower()
        host_sem = self._per_host.get(host)
        if host_sem is None:
            host_sem = self._per_host[host] = asyncio.Semaphore(self.settings.delivery_per_host)
        try:
            netguard.check_url_host(url, allow_private=self.settings.allow_private_addresses)
        except netguard.ForbiddenAddress as exc:
            return Attempt(None, f"forbidden address: {exc}", forbidden=True), b""
        timeout = aiohttp.ClientTimeout(total=self.settings.http_timeout)
        async with host_sem, self._global:
            try:
                async with self._session.request(
                    method,
                    URL(url, encoded=url.isascii()),
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                    timeout=timeout,
                ) as response:
                    body = await _read_up_to(response, read_limit) if read_limit else b""
                    if not read_limit or len(body) >= read_limit:
                        await _discard(response)
                    retry_after = retry_after_seconds(
                        response.headers.get("Retry-After"), cap=self.settings.retry_after_cap
                    )
                    return Attempt(response.status, "", retry_after), body
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                forbidden = _is_forbidden(exc)
                return Attempt(None, _describe(exc), forbidden=forbidden), b""

    def stop(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        if self._session is not None:
            with contextlib.suppress(Exception):  # closing on the way out
                self.submit(self._session.close()).result(timeout=timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


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
