"""Verification of intent: GET the callback with a fresh challenge; success is 2xx + the echo."""

from __future__ import annotations

import secrets

from broker_hub.messages import VerifyIntent
from broker_hub.retry import Attempt
from broker_hub.urls import with_query
from workers.http_engine import HttpEngine

CHALLENGE_BYTES = 32


async def verify(
    engine: HttpEngine, intent: VerifyIntent, lease_seconds: int | None
) -> tuple[bool, Attempt]:
    """Ask the subscriber to confirm ``intent``; returns (confirmed, attempt)."""
    challenge = secrets.token_urlsafe(CHALLENGE_BYTES)
    params = {"hub.mode": intent.mode, "hub.topic": intent.topic, "hub.challenge": challenge}
    if intent.mode == "subscribe" and lease_seconds is not None:
        params["hub.lease_seconds"] = str(lease_seconds)
    attempt, body = await engine.request(
        "GET", with_query(intent.callback, params), read_limit=len(challenge) + 1
    )
    ok = attempt.status is not None and 200 <= attempt.status < 300
    return ok and body == challenge.encode("ascii"), attempt


async def deny(engine: HttpEngine, intent: VerifyIntent) -> Attempt:
    """Tell the subscriber its subscription was refused (``hub.mode=denied``)."""
    params = {"hub.mode": "denied", "hub.topic": intent.topic}
    if intent.reason:
        params["hub.reason"] = intent.reason
    attempt, _ = await engine.request("GET", with_query(intent.callback, params))
    return attempt
