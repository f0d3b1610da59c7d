"""Topic fetches on the HTTP engine: GET, redirects followed (each hop's address checked),
the body capped, identity bodies only, one total deadline; see :meth:`HttpEngine.fetch`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from broker_hub import netguard
from workers import http11
from workers.http_slots import Slots

REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class FetchResult:
    """The final response: status as answered (304 passes through), the body (identity,
    at most ``max_bytes``), lower-case headers, the URL after redirects."""

    status: int
    body: bytes
    headers: dict[str, str]
    final_url: str
    redirects: int = 0


class FetchError(Exception):
    """A fetch that got no usable response. ``permanent``: retrying the same URL is pointless
    (forbidden address, too many redirects, body over the cap, a compressed body);
    otherwise (timeout, connection or protocol error) a retry may succeed."""

    def __init__(self, reason: str, *, permanent: bool):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def origin_key(url: str) -> str:
    """The per-host slot key: host and port, whatever the userinfo or path."""
    origin, _ = http11.split_url(url)
    return f"{origin.host}:{origin.port}"


async def fetch(
    client: http11.Client,
    slots: Slots,
    refusal: Callable[[str], str],
    url: str,
    *,
    headers: Mapping[str, str],
    max_bytes: int,
    max_redirects: int,
    timeout: float,
) -> FetchResult:
    """GET ``url`` (see :meth:`workers.http_engine.HttpEngine.fetch`)."""
    sent = {k: v for k, v in headers.items() if k.lower() != "accept-encoding"}
    loop = asyncio.get_running_loop()
    deadline: float | None = None  # starts once the first hop holds its slots
    for hop in range(max_redirects + 1):
        _check_target(url, refusal)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if deadline is not None:
                    await stack.enter_async_context(asyncio.timeout_at(deadline))
                await stack.enter_async_context(slots.hold(origin_key(url)))
                if deadline is None:
                    deadline = loop.time() + timeout
                    await stack.enter_async_context(asyncio.timeout_at(deadline))
                response = await client.request("GET", url, sent, None, 0, max_body=max_bytes)
        except TimeoutError:
            raise FetchError("timeout", permanent=False) from None
        except netguard.ForbiddenAddress as exc:
            raise FetchError(f"forbidden address: {exc}", permanent=True) from None
        except http11.BodyTooLarge as exc:
            reason = f"body larger than {max_bytes} bytes ({exc})"
            raise FetchError(reason, permanent=True) from None
        except (http11.HTTPError, OSError, ValueError, UnicodeError) as exc:
            raise FetchError(f"{exc.__class__.__name__}: {exc}", permanent=False) from None
        location = response.headers.get("location")
        if response.status in REDIRECTS and location:
            url = urljoin(url, location.strip())
            continue
        coding = response.headers.get("content-encoding", "identity").strip().lower()
        if 200 <= response.status < 300 and coding not in ("", "identity"):
            raise FetchError(f"Content-Encoding {coding} refused (identity only)", permanent=True)
        return FetchResult(response.status, response.body, response.headers, url, hop)
    raise FetchError(f"too many redirects (more than {max_redirects})", permanent=True)


def _check_target(url: str, refusal: Callable[[str], str]) -> None:
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
    except ValueError as exc:
        raise FetchError(f"unusable URL: {exc}", permanent=True) from None
    if scheme not in ("http", "https") or not host:
        raise FetchError(f"not an http(s) URL (scheme {scheme[:20]!r})", permanent=True)
    why = refusal(url)
    if why:
        raise FetchError(why, permanent=True)
