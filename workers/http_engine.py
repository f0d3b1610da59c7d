"""The deliverer's asyncio side: one event loop thread (uvloop where installed), one pooled
HTTP/1.1 client (:mod:`workers.http11`).

Connections are kept alive and pooled per origin; concurrency is bounded in all and per host,
and a request waiting for a busy (or slow) host holds no global slot, so one slow mirror never
holds up the others. The kombu consumer thread hands work in with :meth:`submit`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine, Mapping
from typing import Any

from broker_hub import netguard
from broker_hub.config import Settings
from broker_hub.retry import Attempt, retry_after_seconds
from workers import http11

logger = logging.getLogger(__name__)

USER_AGENT = "broker-hub (WebSub hub)"


class HttpEngine:
    """Runs coroutines on a private event loop; makes bounded outbound requests."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.loop = _new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="http-engine", daemon=True
        )
        self._client = http11.Client(
            allow_private=settings.allow_private_addresses, connect_timeout=settings.http_timeout
        )
        self._global: asyncio.Semaphore | None = None
        self._per_host: dict[str, asyncio.Semaphore] = {}
        self._literal_refusals: dict[str, str] = {}  # netloc -> "" (allowed) or the refusal

    def start(self) -> None:
        self._thread.start()
        self.submit(self._open()).result(timeout=10)

    async def _open(self) -> None:
        self._global = asyncio.Semaphore(self.settings.delivery_concurrency)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def _refusal(self, netloc: str, url: str) -> str:
        """Why an IP-literal or local-name host is forbidden ("" when allowed), once per host."""
        refusal = self._literal_refusals.get(netloc)
        if refusal is None:
            try:
                netguard.check_url_host(url, allow_private=self.settings.allow_private_addresses)
                refusal = ""
            except netguard.ForbiddenAddress as exc:
                refusal = f"forbidden address: {exc}"
            if len(self._literal_refusals) > 100_000:
                self._literal_refusals.clear()
            self._literal_refusals[netloc] = refusal
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
        assert self._global is not None
        netloc = url.partition("//")[2].partition("/")[0].partition("?")[0]
        refusal = self._refusal(netloc, url)
        if refusal:
            return Attempt(None, refusal, forbidden=True), b""
        host_sem = self._per_host.get(netloc)
        if host_sem is None:
            host_sem = self._per_host[netloc] = asyncio.Semaphore(self.settings.delivery_per_host)
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        async with host_sem, self._global:
            try:
                async with asyncio.timeout(self.settings.http_timeout):
                    response = await self._client.request(
                        method, url, all_headers, data, read_limit
                    )
            except netguard.ForbiddenAddress as exc:
                return Attempt(None, f"forbidden address: {exc}", forbidden=True), b""
            except TimeoutError:
                return Attempt(None, "timeout"), b""
            except (http11.HTTPError, OSError, ValueError, UnicodeError) as exc:
                return Attempt(None, exc.__class__.__name__), b""
        retry_after = None
        if response.status in (429, 503):
            retry_after = retry_after_seconds(
                response.headers.get("retry-after"), cap=self.settings.retry_after_cap
            )
        return Attempt(response.status, "", retry_after), response.body

    def stop(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self._client.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (markedly less CPU per request), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
