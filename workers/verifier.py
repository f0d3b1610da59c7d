"""The verifier role: verification of intent, and denials.

Verify messages are handed to the :class:`HttpEngine`; the outcomes come back through a queue
and :meth:`Verifier.tick` applies the confirmed ones in one transaction per tick, on the
consumer thread, before their messages are acked. ``broker-hub deliverer`` runs this role
beside distribution; ``broker-hub verifier`` runs it alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import queue
import secrets
from collections.abc import Callable

from broker_hub import topology
from broker_hub.leases import clamp_lease
from broker_hub.messages import VerifyIntent
from broker_hub.ratelimit import Pacer, host_key
from broker_hub.retry import Attempt, backoff_delay, verification_retryable
from broker_hub.services import Services
from broker_hub.storage import VerifiedChange
from broker_hub.urls import host_label, with_query
from workers.http_engine import HttpEngine
from workers.inbound import Inbound
from workers.role import Consume, Role, RoleSpec

logger = logging.getLogger(__name__)

CHALLENGE_BYTES = 32
Outcome = tuple[VerifyIntent, Inbound, int | None, bool, Attempt]


class Verifier(Role):
    """Consumes the verify queue."""

    name = "verifier"

    def __init__(
        self,
        services: Services,
        *,
        engine: HttpEngine,
        clock: Callable[[], float] | None = None,
    ):
        self.settings = settings = services.settings
        self.storage = services.storage
        self.publisher = services.publisher
        self.metrics = services.metrics
        self.engine = engine
        self.clock = clock or services.clock
        self.pending = 0  # messages taken, not settled yet
        self.pacer = Pacer(settings.verify_rate_per_host)
        self._done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._incoming: list[tuple[VerifyIntent, Inbound]] = []

    def consumes(self) -> list[Consume]:
        return [
            Consume(topology.VERIFY, self.settings.verify_prefetch, self.on_verify, (VerifyIntent,))
        ]

    def in_flight(self) -> int:
        return self.pending

    def on_verify(self, msg: VerifyIntent, inbound: Inbound) -> None:
        # the message's own body is its pacing ticket (a delayed copy comes back byte for byte)
        wait = (
            self.pacer.delay(host_key(msg.callback), inbound.raw.body) if self.pacer.enabled else 0
        )
        if wait > 0:  # HUB_VERIFY_RATE_PER_HOST: come back later, never dropped
            if inbound.later(msg, wait):
                self.metrics.verifications.labels(msg.mode, "deferred").inc()
            return
        self.pending += 1
        denial = self._denial_reason(msg) if msg.mode == "subscribe" else ""
        if denial:
            msg = dataclasses.replace(msg, mode="denied", reason=denial)
        self._incoming.append((msg, inbound))

    def _submit(self) -> None:
        """Hand the intents read since the last tick to the event loop in one go."""
        if self._incoming:
            batch, self._incoming = self._incoming, []
            self.engine.submit(self._verify_all(batch))

    async def _verify_all(self, batch: list[tuple[VerifyIntent, Inbound]]) -> None:
        await asyncio.gather(*(self._verify_task(msg, inbound) for msg, inbound in batch))

    def _denial_reason(self, msg: VerifyIntent) -> str:
        s, now = self.settings, self.clock()
        if not (s.max_subscriptions_per_topic or s.max_subscriptions_per_host):
            return ""
        if self.storage.find_subscription(msg.topic, msg.callback) is not None:
            return ""
        if s.max_subscriptions_per_topic and (
            self.storage.count_for_topic(msg.topic, now) >= s.max_subscriptions_per_topic
        ):
            return "the topic has reached its subscription limit"
        if s.max_subscriptions_per_host and (
            self.storage.count_for_host(host_label(msg.callback), now)
            >= s.max_subscriptions_per_host
        ):
            return "the callback host has reached its subscription limit"
        return ""

    async def _verify_task(self, msg: VerifyIntent, inbound: Inbound) -> None:
        lease = clamp_lease(msg.lease_seconds, self.settings) if msg.mode == "subscribe" else None
        try:
            if msg.mode == "denied":
                attempt, ok = await deny(self.engine, msg), False
            else:
                ok, attempt = await verify(self.engine, msg, lease)
        except Exception as exc:  # noqa: BLE001 - recorded as a failed attempt
            ok, attempt = False, Attempt(None, exc.__class__.__name__)
        self._done.put((msg, inbound, lease, ok, attempt))

    def tick(self, max_items: int = 5000) -> None:
        """Submit what arrived; apply the confirmed intents in one transaction; then retries,
        metrics and acks."""
        self._submit()
        items: list[Outcome] = []
        for _ in range(max_items):
            try:
                items.append(self._done.get_nowait())
            except queue.Empty:
                break
        if not items:
            return
        confirmed = [
            VerifiedChange(
                mode=msg.mode,
                topic=msg.topic,
                callback=msg.callback,
                secret=msg.secret,
                lease_seconds=lease or 0,
            )
            for msg, _, lease, ok, _ in items
            if ok and msg.mode != "denied"
        ]
        if confirmed:
            self.storage.apply_verified(confirmed, self.clock())
        for msg, inbound, _, ok, attempt in items:
            self._after(msg, inbound, ok, attempt)
            self.pending -= 1

    def _after(self, msg: VerifyIntent, inbound: Inbound, ok: bool, attempt: Attempt) -> None:
        if msg.mode == "denied":
            self.metrics.verifications.labels("subscribe", "denied").inc()
        elif ok:
            self.metrics.verifications.labels(msg.mode, "verified").inc()
        elif verification_retryable(attempt) and msg.attempt < self.settings.verify_max_attempts:
            delay = backoff_delay(msg.attempt, self.settings.verify_backoff_base)
            # queued, or (broker gone) this one goes back to the broker for redelivery
            if inbound.later(dataclasses.replace(msg, attempt=msg.attempt + 1), delay):
                self.metrics.verifications.labels(msg.mode, "retried").inc()
            return
        else:
            self.metrics.verifications.labels(msg.mode, "failed").inc()
        inbound.ack()


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


SPEC = RoleSpec(
    name="verifier",
    help="verification of intent only (broker-hub deliverer runs it too)",
    build=lambda context: Verifier(context.services, engine=context.engine()),
    metrics_port=9103,
)
