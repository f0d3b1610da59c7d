"""``POST /pypi``: PyPI's XML-RPC methods, its rate-limit headers, and the faults tests inject."""

from __future__ import annotations

import time
import xmlrpc.client
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .model import Index

MAX_PER_CALL = 50_000
GARBAGE_MODES = ("malformed_xml", "html_200", "serial_backwards", "invalid_name", "huge", "entity")
RSS_GARBAGE_MODES = ("rss_html", "rss_entity", "rss_malformed")
RATE_LIMIT_TEXT = (
    "HTTPTooManyRequests: The action could not be performed because there were too many "
    "requests by the client. Limit may reset in {reset} seconds."
)
OUTAGE_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>503 Backend is unhealthy</title></head><body>"
    b"<h1>Error 503 Backend is unhealthy</h1><p>Backend is unhealthy</p><h3>Guru Mediation:"
    b"</h3><p>Details: cache-fake 1733230000 1234567890</p><hr><p>Varnish cache server</p>"
    b"</body></html>\n"
)
HTML_200_PAGE = b"<!DOCTYPE html><html><body><h1>Maintenance</h1><p>Back soon.</p></body></html>"
RSS_GARBAGE = {
    "rss_html": HTML_200_PAGE,
    "rss_entity": b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">]><rss '
                  b'version="2.0"><channel><title>&a;</title></channel></rss>',
    "rss_malformed": b'<?xml version="1.0"?><rss version="2.0"><channel><item><title>x',
}

Answer = tuple[int, dict[str, str], bytes | Iterator[bytes]]


@dataclass
class Faults:
    """What the next XML-RPC calls should go wrong with (set through ``/_control/``)."""

    faults: deque[tuple[int, str]] = field(default_factory=deque)
    garbage: deque[tuple[str, int]] = field(default_factory=deque)
    outage: bool = False
    rss_outage: bool = False
    rss_garbage: deque[str] = field(default_factory=deque)
    limit: int = 1000
    window: float = 60.0
    window_start: float = 0.0
    used: int = 0
    calls: int = 0
    methods: dict[str, int] = field(default_factory=dict)
    user_agents: deque[str] = field(default_factory=lambda: deque(maxlen=20))


def _xml(value: Any) -> bytes:
    return xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True).encode()


def _fault(code: int, text: str) -> bytes:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, text), methodresponse=True).encode()


def _huge(size: int) -> Iterator[bytes]:
    head, _, tail = _xml([["huge", None, 0, "PLACEHOLDER", 1]]).partition(b"PLACEHOLDER")
    yield head
    chunk = b"x" * 65536
    for _ in range(size // len(chunk)):
        yield chunk
    yield tail


def handle(index: Index, faults: Faults, body: bytes, user_agent: str) -> Answer:
    """Answer one XML-RPC request (the caller holds ``index.lock``)."""
    faults.calls += 1
    faults.user_agents.append(user_agent)
    now = time.time()
    if now - faults.window_start >= faults.window:
        faults.window_start, faults.used = now, 0
    faults.used += 1
    reset = max(1, int(faults.window_start + faults.window - now))
    headers = {
        "Content-Type": "text/xml",
        "RateLimit-Limit": str(faults.limit),
        "RateLimit-Remaining": str(max(0, faults.limit - faults.used)),
        "RateLimit-Reset": str(reset),
    }
    if faults.outage:
        return 503, {"Content-Type": "text/html; charset=utf-8", "Retry-After": "5"}, OUTAGE_PAGE
    try:
        params, method = xmlrpc.client.loads(body)
    except Exception as exc:  # noqa: BLE001 - any unparsable request is the client's fault
        return 200, headers, _fault(-32700, f"parse error, not well formed: {exc}")
    faults.methods[method or ""] = faults.methods.get(method or "", 0) + 1
    if faults.used > faults.limit:
        return 429, {**headers, "Retry-After": str(reset)}, _fault(
            -32500, RATE_LIMIT_TEXT.format(reset=reset))
    if faults.faults:
        code, text = faults.faults.popleft()
        return 200, headers, _fault(code, text.format(reset=reset))
    if faults.garbage:
        mode, size = faults.garbage.popleft()
        answer = _garbage(index, mode, size, params)
        if answer is not None:
            return 200, {**headers, **answer[0]}, answer[1]
    try:
        return 200, headers, _xml(_call(index, method, params))
    except (TypeError, ValueError) as exc:
        return 200, headers, _fault(-32500, f"TypeError: {exc}")


def _call(index: Index, method: str, params: tuple[Any, ...]) -> Any:
    if method == "changelog_last_serial" and not params:
        return index.serial
    if method == "changelog_since_serial" and len(params) == 1 and isinstance(params[0], int):
        return index.since(params[0], MAX_PER_CALL)
    if method == "list_packages_with_serial" and not params:
        return {p.name: p.last_serial for p in index.projects.values()}
    if method == "changelog_last_serial" or method == "changelog_since_serial":
        raise TypeError(f"{method}() got unexpected arguments {params!r}")
    raise ValueError(f"method {method!r} not found") from None


def _garbage(
    index: Index, mode: str, size: int, params: tuple[Any, ...]
) -> tuple[dict[str, str], bytes | Iterator[bytes]] | None:
    if mode == "malformed_xml":
        return {}, b"<?xml version='1.0'?><methodResponse><params><param><value><array><data>"
    if mode == "html_200":
        return {"Content-Type": "text/html; charset=utf-8"}, HTML_200_PAGE
    if mode == "entity":
        return {}, (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">'
                    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><methodResponse><params>'
                    b"<param><value><string>&b;</string></value></param></params>"
                    b"</methodResponse>")
    if mode == "huge":
        length = len(_xml([["huge", None, 0, "", 1]])) + size // 65536 * 65536
        head = {"Content-Length": str(length)}
        return head, _huge(size)
    since = params[0] if params and isinstance(params[0], int) else index.serial
    now = int(time.time())
    if mode == "serial_backwards":
        if not params:
            return {}, _xml(max(0, index.serial - 10))
        return {}, _xml([["backwards", "1.0", now, "new release", max(0, since - 5)],
                         *index.since(since, MAX_PER_CALL)])
    if mode == "invalid_name":  # the first entry's name replaced by one PEP 508 forbids
        entries = [list(e) for e in index.since(since, MAX_PER_CALL)]
        if not entries:
            entries = [["x", "1.0", now, "new release", since + 1]]
        entries[0][0] = "not a/valid name!"
        return {}, _xml(entries)
    return None
