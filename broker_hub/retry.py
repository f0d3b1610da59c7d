"""Retry policy in one place: backoff with jitter, Retry-After, and which outcomes retry."""

from __future__ import annotations

import email.utils
import random
import time
from typing import NamedTuple

DELIVERED = "delivered"
GONE = "gone"
RETRY = "retry"


class Attempt(NamedTuple):
    """The result of one outbound HTTP attempt (a named tuple: one is built per delivery)."""

    status: int | None  # None: no HTTP answer (connection error, timeout, refused address)
    error: str = ""
    retry_after: float | None = None
    forbidden: bool = False  # the policy refused the address: no retry can help


def classify_delivery(attempt: Attempt) -> str:
    """Any 2xx delivers; 410 ends the subscription; everything else (3xx too) is retried."""
    if attempt.status is not None and 200 <= attempt.status < 300:
        return DELIVERED
    if attempt.status == 410:
        return GONE
    return RETRY


def verification_retryable(attempt: Attempt) -> bool:
    """Verification is retried only on connection errors, timeouts and 5xx."""
    if attempt.forbidden:
        return False
    return attempt.status is None or attempt.status >= 500


def backoff_delay(
    attempt: int, base: float, *, cap: float = 6 * 3600.0, rng: random.Random | None = None
) -> float:
    """Delay before attempt ``attempt + 1``: base * 2^(attempt-1), +-20 % jitter, at most cap."""
    uniform = rng.uniform if rng is not None else random.uniform
    exponent = min(max(0, attempt - 1), 64)  # 2^64 * any sane base is far past any cap
    return min(cap, base * 2.0**exponent * uniform(0.8, 1.2))


def retry_after_seconds(
    header: str | None, *, cap: float, now: float | None = None
) -> float | None:
    """Parse a Retry-After header (seconds or an HTTP date), capped; None when absent or bad."""
    if not header:
        return None
    header = header.strip()
    if header.isascii() and header.isdigit():
        return min(cap, float(header))
    try:
        when = email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None
    return min(cap, max(0.0, when - (now if now is not None else time.time())))
