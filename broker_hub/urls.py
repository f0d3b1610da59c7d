"""Syntactic URL checks and the callback query merge used by verification."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from broker_hub.errors import BadRequest


def validate_url(name: str, value: str, *, max_length: int) -> str:
    """Return ``value`` if it is an absolute http(s) URL without fragment; else raise BadRequest."""
    if not value:
        raise BadRequest(f"{name} is empty")
    if len(value) > max_length:
        raise BadRequest(f"{name} is longer than {max_length} characters", status=414)
    if any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in value):
        raise BadRequest(f"{name} contains whitespace or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise BadRequest(f"{name} is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BadRequest(f"{name} must be an http or https URL")
    if not parts.hostname:
        raise BadRequest(f"{name} has no host")
    if "#" in value:
        raise BadRequest(f"{name} must not contain a fragment")
    if port == 0:
        raise BadRequest(f"{name} has an invalid port")
    return value


def host_label(url: str) -> str:
    """The ``host[:port]`` of a URL: the only part of a callback that metrics and logs show."""
    parts = urlsplit(url)
    host = parts.hostname or "unknown"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def with_query(url: str, params: dict[str, str]) -> str:
    """Append ``params`` to ``url``, keeping the callback's own query string as it is."""
    extra = urlencode(params)
    if "?" not in url:
        return f"{url}?{extra}"
    if url.endswith(("?", "&")):
        return f"{url}{extra}"
    return f"{url}&{extra}"


def display_url(url: str) -> str:
    """``url`` as pages, log lines and metrics may show it: no userinfo (the fetcher sends it
    as Basic credentials), no query string (a callback's may carry a token), no fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else f"{netloc}{parts.path}"
