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
from broker_hub.ratelimit import Pacer, address_key
from broker_hub.retry import Attempt, backoff_delay, verification_retryable
from broker_hub.services import Services
from broker_hub.storage import SubscriptionLimits, VerifiedChange
from broker_hub.urls import with_query
from workers.http_engine import HttpEngine
from workers.inbound import Inbound
from workers.role import Consume, Role, RoleSpec
from workers.slots import AddressSlots

logger = logging.getLogger(__name__)

CHALLENGE_BYTES = 32
Outcome = tuple[VerifyIntent, Inbound, int | None, bool, Attempt, tuple[str, int]]


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
        self._incoming: list[tuple[VerifyIntent, Inbound, tuple[str, int]]] = []
        # Isolation (issue 15): verifications in flight per callback address; the rest wait
        # in the delay queue (holding no prefetch slot), so hanging callbacks of one party
        # cannot hold every slot of HUB_VERIFY_PREFETCH.
        self.slots = AddressSlots(
            max(1, min(settings.verify_slots_per_address, settings.verify_prefetch // 2)),
            slow_after=min(1.0, settings.http_timeout / 4),
            remember=settings.http_timeout,
        )
        self._defer = max(0.5, settings.http_timeout / 2)
        self.limits = SubscriptionLimits(
            settings.max_subscriptions_per_topic, settings.max_subscriptions_per_host
        )

    def consumes(self) -> list[Consume]:
        return [
            Consume(topology.VERIFY, self.settings.verify_prefetch, self.on_verify, (VerifyIntent,))
        ]

    def in_flight(self) -> int:
        return self.pending

    def on_verify(self, msg: VerifyIntent, inbound: Inbound) -> None:
        # keyed by the address the callback reaches, whatever its spelling; a name not in the
        # cache yet is looked up in the background (the consumer thread never waits for DNS)
        key = address_key(msg.callback, wait=0.05)
        if self.slots.full(key):
            if inbound.later(msg, self._defer):  # not an attempt: it waits, holding nothing
                self.metrics.verifications.labels(msg.mode, "deferred").inc()
            return
        # the message's own body is its pacing ticket (a delayed copy comes back byte for byte)
        wait = self.pacer.delay(key, inbound.raw.body) if self.pacer.enabled else 0
        if wait > 0:  # HUB_VERIFY_RATE_PER_HOST: come back later, never dropped
            if inbound.later(msg, wait):
                self.metrics.verifications.labels(msg.mode, "deferred").inc()
            return
        self.pending += 1
        token = self.slots.try_acquire(key)  # not full just now, and only this thread takes
        denial = self._denial_reason(msg, key) if msg.mode == "subscribe" else ""
        if denial:
            msg = dataclasses.replace(msg, mode="denied", reason=denial)
        self._incoming.append((msg, inbound, (key, token)))

    def _submit(self) -> None:
        """Hand the intents read since the last tick to the event loop in one go."""
        if self._incoming:
            batch, self._incoming = self._incoming, []
            self.engine.submit(self._verify_all(batch))

    async def _verify_all(self, batch: list[tuple[VerifyIntent, Inbound, tuple[str, int]]]) -> None:
        await asyncio.gather(*(self._verify_task(*item) for item in batch))

    def _denial_reason(self, msg: VerifyIntent, key: str) -> str:
        """An early answer for an intent over a limit (the limits are enforced again, atomically,
        when the verified subscription is written: :meth:`tick`)."""
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
            self.storage.count_for_address(key, now) >= s.max_subscriptions_per_host
        ):
            return "the callback host has reached its subscription limit"
        return ""

    async def _verify_task(
        self, msg: VerifyIntent, inbound: Inbound, slot: tuple[str, int]
    ) -> None:
        lease = clamp_lease(msg.lease_seconds, self.settings) if msg.mode == "subscribe" else None
        try:
            if msg.mode == "denied":
                attempt, ok = await deny(self.engine, msg), False
            else:
                ok, attempt = await verify(self.engine, msg, lease)
        except Exception as exc:  # noqa: BLE001 - recorded as a failed attempt
            ok, attempt = False, Attempt(None, exc.__class__.__name__)
        self._done.put((msg, inbound, lease, ok, attempt, slot))

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
            for msg, _, lease, ok, _, _ in items
            if ok and msg.mode != "denied"
        ]
        refused: set[tuple[str, str]] = set()
        if confirmed:
            over = self.storage.apply_verified(confirmed, self.clock(), limits=self.limits)
            refused = {(change.topic, change.callback) for change in over}
        for msg, inbound, _, ok, attempt, slot in items:
            self.slots.release(*slot)
            if msg.mode == "subscribe" and (msg.topic, msg.callback) in refused:
                self._deny_late(msg, inbound)
            else:
                self._after(msg, inbound, ok, attempt)
            self.pending -= 1

    def _deny_late(self, msg: VerifyIntent, inbound: Inbound) -> None:
        """A verified subscribe that the limits refused when it was written (another one got
        the last place first): tell the subscriber, as for an early denial."""
        reason = "the topic or the callback's address has reached its subscription limit"
        self.engine.submit(deny(self.engine, dataclasses.replace(msg, reason=reason)))
        self.metrics.verifications.labels("subscribe", "denied").inc()
        inbound.ack()

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
    tick_interval=0.01,
)
