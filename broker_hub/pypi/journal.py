"""``JournalClient``: PyPI's XML-RPC changelog, read and checked.

Every answer is checked before it is returned: entries strictly ascending and all above the
requested serial, each parsed into a ``Change`` or set aside in ``Page.bad`` with a reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import requests

from broker_hub.pypi.changes import BadEntry, Change, parse_entry
from broker_hub.pypi.errors import JournalFault, JournalUnavailable, MalformedAnswer, RateLimited
from broker_hub.pypi.transport import Answer, IndexHTTP
from broker_hub.pypi.wire import decode_response, encode_call

PAGE_LIMIT = 50_000  # PyPI's most entries per changelog_since_serial answer
DEFAULT_RETRY_AFTER = 60.0
_RATE_TEXT = re.compile(r"too ?many ?requests|rate.?limit", re.IGNORECASE)
_RESET_IN = re.compile(r"reset in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


@dataclass(frozen=True)
class RateLimit:
    """The ``RateLimit-*`` headers of the last answer (None when absent)."""

    limit: int | None
    remaining: int | None
    reset: float | None

    @classmethod
    def from_headers(cls, headers: Any) -> RateLimit:
        limit = _header_number(headers, "RateLimit-Limit")
        remaining = _header_number(headers, "RateLimit-Remaining")
        return cls(None if limit is None else int(limit),
                   None if remaining is None else int(remaining),
                   _header_number(headers, "RateLimit-Reset"))


@dataclass(frozen=True)
class Page:
    """One ``changelog_since_serial`` answer.

    ``last_serial_seen`` is the highest serial in the answer, bad entries included (the
    requested serial when the answer is empty): the serial to ask from next, once the good
    changes and the bad entries are dealt with. ``more`` is true when the answer was a full
    page (ask again at once).
    """

    changes: list[Change]
    bad: list[tuple[Any, str]] = field(default_factory=list)
    last_serial_seen: int = 0
    more: bool = False


def _header_number(headers: Any, name: str) -> float | None:
    try:
        value = float(headers.get(name, ""))
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


class JournalClient:
    """``JournalClient("https://pypi.org", user_agent="broker-hub/1 (ops@example.org)")``."""

    def __init__(
        self,
        index_url: str,
        *,
        user_agent: str,
        timeout: float = 60.0,
        max_bytes: int = 64 * 1024 * 1024,
        allow_private: bool = False,
        session: requests.Session | None = None,
    ) -> None:
        self.endpoint = index_url.rstrip("/") + "/pypi"
        self.http = IndexHTTP(user_agent=user_agent, timeout=timeout, max_bytes=max_bytes,
                              allow_private=allow_private, session=session)
        self.rate_limit: RateLimit | None = None

    def last_serial(self) -> int:
        """``changelog_last_serial()``: the newest serial of the index."""
        value = self._call("changelog_last_serial")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MalformedAnswer(f"changelog_last_serial answered {value!r:.60}, not a serial")
        return value

    def since(self, serial: int) -> Page:
        """``changelog_since_serial(serial)``, checked (see the module docstring)."""
        if isinstance(serial, bool) or not isinstance(serial, int) or serial < 0:
            raise ValueError(f"serial must be a non-negative integer, not {serial!r}")
        value = self._call("changelog_since_serial", serial)
        if not isinstance(value, list):
            raise MalformedAnswer(f"changelog_since_serial answered a {type(value).__name__}, "
                                  "not a list")
        changes: list[Change] = []
        bad: list[tuple[Any, str]] = []
        previous = serial
        for raw in value:
            entry_serial = raw[4] if isinstance(raw, list) and len(raw) == 5 else None
            if isinstance(entry_serial, int) and not isinstance(entry_serial, bool):
                if entry_serial <= serial:
                    raise MalformedAnswer(f"serial went backwards: asked for entries after "
                                          f"{serial}, got {entry_serial}")
                if entry_serial <= previous:
                    raise MalformedAnswer(f"entries out of order: {entry_serial} after {previous}")
                previous = entry_serial
            try:
                changes.append(parse_entry(raw))
            except BadEntry as exc:
                bad.append((raw, str(exc)))
        return Page(changes, bad, previous, more=len(value) >= PAGE_LIMIT)

    def close(self) -> None:
        self.http.close()

    # --- one call --------------------------------------------------------------------------

    def _call(self, method: str, *params: Any) -> Any:
        answer = self.http.request("POST", self.endpoint, data=encode_call(method, *params),
                                   headers={"Content-Type": "text/xml"})
        self.rate_limit = RateLimit.from_headers(answer.headers)
        if answer.status == 429:
            raise RateLimited(f"{method}: HTTP 429 from the index", self._retry_after(answer))
        if answer.status != 200:
            raise JournalUnavailable(f"{method}: HTTP {answer.status} from the index",
                                     answer.status)
        media = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
        head = answer.body[:512].lstrip().lower()
        if media == "text/html" or head.startswith((b"<!doctype html", b"<html")):
            raise JournalUnavailable(f"{method}: the index answered an HTML page, not XML-RPC",
                                     answer.status)
        try:
            return decode_response(answer.body)
        except JournalFault as fault:
            if _RATE_TEXT.search(fault.text):
                raise RateLimited(f"{method}: {fault.text[:200]}",
                                  self._retry_after(answer, fault.text)) from None
            raise

    def _retry_after(self, answer: Answer, text: str = "") -> float:
        for candidate in (
            _header_number(answer.headers, "Retry-After"),
            float(m.group(1)) if (m := _RESET_IN.search(text)) else None,
            _header_number(answer.headers, "RateLimit-Reset"),
        ):
            if candidate is not None:
                return max(1.0, min(candidate, 3600.0))
        return DEFAULT_RETRY_AFTER
