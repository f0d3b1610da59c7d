"""Why a call to the index failed: a small tree the poller maps to backoff, fallback or alarm."""

from __future__ import annotations

from broker_hub.errors import HubError


class PyPIError(HubError):
    """Base of every failure to read the index (XML-RPC journal or RSS)."""


class RateLimited(PyPIError):
    """The index asks us to slow down: wait ``retry_after`` seconds before the next call."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JournalFault(PyPIError):
    """The XML-RPC answer was a Fault (other than rate limiting)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"XML-RPC fault {code}: {text[:300]}")
        self.code = code
        self.text = text


class JournalUnavailable(PyPIError):
    """The index did not answer usefully: 5xx, HTML error page, connection error, timeout.

    ``status`` is the HTTP status when there was one.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class IndexForbidden(JournalUnavailable):
    """The index URL resolves to an address the SSRF policy forbids (a configuration error)."""


class MalformedAnswer(PyPIError):
    """An answer that is not what PyPI sends: not XML-RPC, wrong shape, serials out of order,
    larger than the cap."""


class HostileAnswer(MalformedAnswer):
    """The answer declares a DTD or entities (billion laughs, external entities): refused."""
