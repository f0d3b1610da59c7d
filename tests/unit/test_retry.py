"""Unit tests for broker_hub.retry: backoff, Retry-After and outcome classification."""

from __future__ import annotations

import email.utils
import itertools
import random

import pytest

from broker_hub.retry import (
    DELIVERED,
    GONE,
    RETRY,
    Attempt,
    backoff_delay,
    classify_delivery,
    retry_after_seconds,
    verification_retryable,
)

# --- backoff_delay -------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 8])
def test_backoff_jitter_bounds(attempt: int) -> None:
    rng = random.Random(1234)
    nominal = 10.0 * 2 ** (attempt - 1)
    delays = [backoff_delay(attempt, 10.0, cap=1e9, rng=rng) for _ in range(500)]
    assert all(0.8 * nominal <= d <= 1.2 * nominal for d in delays)
    # Jitter really varies: both halves of the band are used.
    assert min(delays) < 0.9 * nominal
    assert max(delays) > 1.1 * nominal


def test_backoff_grows_exponentially() -> None:
    # With the same random draw, each attempt doubles the delay.
    values = [backoff_delay(a, 3.0, cap=1e9, rng=random.Random(7)) for a in range(1, 7)]
    for earlier, later in itertools.pairwise(values):
        assert later == pytest.approx(2 * earlier)
    draw = random.Random(7).uniform(0.8, 1.2)
    assert values[0] == pytest.approx(3.0 * draw)


def test_backoff_attempt_zero_or_negative_uses_base() -> None:
    draw = random.Random(5).uniform(0.8, 1.2)
    assert backoff_delay(0, 4.0, rng=random.Random(5)) == pytest.approx(4.0 * draw)
    assert backoff_delay(-3, 4.0, rng=random.Random(5)) == pytest.approx(4.0 * draw)


def test_backoff_is_deterministic_with_seeded_rng() -> None:
    a = [backoff_delay(3, 2.0, rng=random.Random(99)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert backoff_delay(3, 2.0, rng=random.Random(99)) != backoff_delay(
        3, 2.0, rng=random.Random(100)
    )


def test_backoff_cap_limits_growth() -> None:
    rng = random.Random(42)
    delays = [backoff_delay(30, 30.0, cap=600.0, rng=rng) for _ in range(200)]
    # Capped: nowhere near 30 * 2**29; within the jitter band of the cap at most.
    assert all(0.8 * 600.0 <= d <= 1.2 * 600.0 for d in delays)


def test_backoff_huge_attempt_number_is_capped_not_overflowing() -> None:
    # HUB_DELIVERY_MAX_ATTEMPTS is unbounded; a large attempt must still give the capped delay.
    delay = backoff_delay(5000, 30.0, cap=3600.0, rng=random.Random(1))
    assert 0.8 * 3600.0 <= delay <= 1.2 * 3600.0


# --- retry_after_seconds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [("0", 0.0), ("5", 5.0), (" 120 ", 120.0), ("3600", 3600.0)],
)
def test_retry_after_seconds(header: str, expected: float) -> None:
    assert retry_after_seconds(header, cap=3600.0) == expected


def test_retry_after_seconds_capped() -> None:
    assert retry_after_seconds("999999", cap=300.0) == 300.0


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 90, usegmt=True)
    assert retry_after_seconds(header, cap=3600.0, now=now) == pytest.approx(90.0)


def test_retry_after_http_date_capped_and_past() -> None:
    now = 1_700_000_000.0
    future = email.utils.formatdate(now + 86400, usegmt=True)
    assert retry_after_seconds(future, cap=600.0, now=now) == 600.0
    past = email.utils.formatdate(now - 500, usegmt=True)
    assert retry_after_seconds(past, cap=600.0, now=now) == 0.0


@pytest.mark.parametrize(
    "header", [None, "", "   ", "soon", "-5", "1.5", "Mon, 99 Foo 2024", "12abc", "²"]
)
def test_retry_after_garbage_is_none(header: str | None) -> None:
    assert retry_after_seconds(header, cap=3600.0) is None


# --- classify_delivery / verification_retryable --------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, DELIVERED),
        (201, DELIVERED),
        (202, DELIVERED),
        (204, DELIVERED),
        (299, DELIVERED),
        (410, GONE),
        (300, RETRY),
        (301, RETRY),
        (302, RETRY),
        (304, RETRY),
        (400, RETRY),
        (403, RETRY),
        (404, RETRY),
        (429, RETRY),
        (500, RETRY),
        (503, RETRY),
        (100, RETRY),
        (None, RETRY),
    ],
)
def test_classify_delivery(status: int | None, expected: str) -> None:
    assert classify_delivery(Attempt(status=status)) == expected


def test_classify_delivery_connection_error() -> None:
    assert classify_delivery(Attempt(status=None, error="connection refused")) == RETRY


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (Attempt(status=None, error="timeout"), True),
        (Attempt(status=500), True),
        (Attempt(status=502), True),
        (Attempt(status=599), True),
        (Attempt(status=200), False),
        (Attempt(status=302), False),
        (Attempt(status=400), False),
        (Attempt(status=404), False),
        (Attempt(status=429), False),
        (Attempt(status=None, forbidden=True), False),
        (Attempt(status=503, forbidden=True), False),
    ],
)
def test_verification_retryable(attempt: Attempt, expected: bool) -> None:
    assert verification_retryable(attempt) is expected
