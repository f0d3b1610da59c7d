"""The workers' asyncio side: one event loop thread (uvloop where installed), one pooled
HTTP/1.1 client (:mod:`workers.http11`, or aiohttp's with ``HUB_HTTP_CLIENT=aiohttp``).

Every outbound request (delivery, verification, fetch) has ONE total deadline,
``HUB_HTTP_TIMEOUT``, covering connect, response head and body: a peer trickling its head or
body a byte at a time ends there. Concurrency is bounded in all and per host, separately for
requests (``HUB_DELIVERY_CONCURRENCY`` / ``HUB_DELIVERY_PER_HOST``) and fetches
(``HUB_FETCH_CONCURRENCY`` / ``HUB_FETCH_PER_HOST``); a request waiting for a busy host
holds no global slot, so one slow host never holds up the others, and the per-host tables
keep only hosts in flight. Other threads hand work in with :meth:`submit`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
from collections import OrderedDict
from collections.abc import Coroutine, Mapping
from typing import Any

from broker_hub import netguard
from broker_hub.config import Settings
from broker_hub.retry import Attempt, retry_after_seconds
from workers import http11, http_fetch
from workers.http_fetch import FetchError, FetchResult
from workers.http_slots import Slots

logger = logging.getLogger(__name__)

__all__ = ["FetchError", "FetchResult", "HttpEngine"]

USER_AGENT = "broker-hub (WebSub hub)"
REFUSAL_CACHE_SIZE = 4096  # netlocs whose literal-host verdict is remembered (LRU)


class HttpEngine:
    """Runs coroutines on a private event loop; makes bounded outbound requests."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.loop = _new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="http-engine", daemon=True
        )
        self._client = _make_client(settings)
        self._requests = Slots(
            total=settings.delivery_concurrency, per_key=settings.delivery_per_host
        )
        self._fetches = Slots(total=settings.fetch_concurrency, per_key=settings.fetch_per_host)
        self._literal_refusals: OrderedDict[str, str] = OrderedDict()  # netloc -> refusal/""

    def start(self) -> None:
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def _refusal(self, url: str, netloc: str | None = None) -> str:
        """Why an IP-literal or local-name host is forbidden ("" when allowed), cached."""
        if netloc is None:
            netloc = url.partition("//")[2].partition("/")[0].partition("?")[0]
        refusal = self._literal_refusals.get(netloc)
        if refusal is not None:
            self._literal_refusals.move_to_end(netloc)
            return refusal
        try:
            netguard.check_url_host(url, allow_private=self.settings.allow_private_addresses)
            refusal = ""
        except netguard.ForbiddenAddress as exc:
            refusal = f"forbidden address: {exc}"
        self._literal_refusals[netloc] = refusal
        if len(self._literal_refusals) > REFUSAL_CACHE_SIZE:
            self._literal_refusals.popitem(last=False)
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
        netloc = url.partition("//")[2].partition("/")[0].partition("?")[0]
        refusal = self._refusal(url, netloc)
        if refusal:
            return Attempt(None, refusal, forbidden=True), b""
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        async with self._requests.hold(netloc):
            try:
                async with asyncio.timeout(self.settings.http_timeout):  # connect + head + body
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

    async def fetch(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        max_redirects: int | None = None,
    ) -> FetchResult:
        """GET a topic: redirects (301/302/303/307/308, relative Location too) followed up to
        ``max_redirects`` (default ``HUB_FETCH_MAX_REDIRECTS``), every hop's address checked
        before connecting; the body capped at ``max_bytes`` (``HUB_FETCH_MAX_BYTES``), never
        more buffered; no ``Accept-Encoding`` sent and a gzip/deflate body refused; one
        ``HUB_HTTP_TIMEOUT`` deadline for all hops; ``HUB_FETCH_PER_HOST`` in flight per host,
        ``HUB_FETCH_CONCURRENCY`` in all. Any status is returned (304 included): the caller
        decides. Raises :class:`FetchError` (``.permanent``, ``.reason``) when no response."""
        return await http_fetch.fetch(
            self._client,
            self._fetches,
            self._refusal,
            url,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            max_bytes=self.settings.fetch_max_bytes if max_bytes is None else max_bytes,
            max_redirects=(
                self.settings.fetch_max_redirects if max_redirects is None else max_redirects
            ),
            timeout=self.settings.http_timeout,
        )

    def per_host_entries(self) -> int:
        """Hosts in the per-host tables (only those with requests in flight or waiting)."""
        return len(self._requests) + len(self._fetches)

    async def _close(self) -> None:
        closing = self._client.close()
        if inspect.isawaitable(closing):
            await closing

    def stop(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.submit(self._close()).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            logger.warning("HTTP client did not close in %s s", timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


def _make_client(settings: Settings) -> Any:
    """The outbound client ``HUB_HTTP_CLIENT`` names (both have the same ``request``)."""
    if settings.http_client == "aiohttp":
        from workers.http_aiohttp import AiohttpClient

        return AiohttpClient(
            allow_private=settings.allow_private_addresses, connect_timeout=settings.http_timeout
        )
    return http11.Client(
        allow_private=settings.allow_private_addresses, connect_timeout=settings.http_timeout
    )


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (markedly less CPU per request), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
