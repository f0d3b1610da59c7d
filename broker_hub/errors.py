"""The hub's exception tree."""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class BadRequest(HubError):
    """A request the hub refuses; ``status`` is the HTTP answer, the message names the parameter."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class Forbidden(BadRequest):
    """A request refused by policy (private address, allowlist, limits)."""

    def __init__(self, message: str):
        super().__init__(message, status=403)


class Unavailable(HubError):
    """The hub cannot accept work right now (the broker or the database is unreachable)."""


class TransientError(HubError):
    """An outbound attempt failed in a way worth retrying."""


class PermanentError(HubError):
    """An outbound attempt failed in a way no retry will fix."""
