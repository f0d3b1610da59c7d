"""The deliverer: verification of intent and content distribution.

The kombu consumer thread reads messages and hands them to the :class:`HttpEngine`; outcomes
come back through a queue and are recorded on the consumer thread by :meth:`Deliverer.tick`,
in one transaction per tick, before the message is acked. A batch message covers up to
``HUB_DELIVERY_BATCH_SIZE`` subscriptions; only failures become messages of their own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import queue
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kombu.message import Message as KombuMessage

from broker_hub import topology
from broker_hub.bus import Messaging
from broker_hub.config import Settings
from broker_hub.errors import Unavailable
from broker_hub.leases import clamp_lease
from broker_hub.messages import (
    DeliverBatch,
    DeliverOne,
    Message,
    Parked,
    VerifyIntent,
    as_record,
    to_body,
)
from broker_hub.metrics import Metrics
from broker_hub.ratelimit import Pacer, host_key
from broker_hub.retry import (
    DELIVERED,
    GONE,
    Attempt,
    backoff_delay,
    classify_delivery,
    verification_retryable,
)
from broker_hub.storage import Notification, Storage, Subscription
from broker_hub.urls import host_label
from workers.distribution import Distribution
from workers.http_engine import HttpEngine
from workers.verification import deny, verify

logger = logging.getLogger(__name__)

FLUSH_EVERY = 128  # outcomes handed to the consumer thread at once...
FLUSH_SECONDS = 0.02  # ...or after this long, whichever comes first


@dataclass(eq=False)
class _Job:
    """One broker message in flight: acked once all its deliveries are recorded."""

    raw: KombuMessage
    remaining: int
    notification: Notification | None = None
    attempt: int = 1
    unrecorded: bool = False  # a retry could not be published: requeue instead of ack


class Deliverer:
    """Handles VerifyIntent, DeliverBatch and DeliverOne messages."""

    def __init__(
        self,
        *,
        settings: Settings,
        storage: Storage,
        messaging: Messaging,
        metrics: Metrics,
        engine: HttpEngine,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.storage = storage
        self.messaging = messaging
        self.metrics = metrics
        self.engine = engine
        self.clock = clock
        self.in_flight = 0
        self.verify_pacer = Pacer(settings.verify_rate_per_host)
        self._done: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._notifications: OrderedDict[int, Notification] = OrderedDict()
        self._latency_children: dict[str, Any] = {}
        # concurrency per batch message, so that `prefetch` batches fill the connection pool
        self._batch_workers = max(8, settings.delivery_concurrency // settings.prefetch)

    # -- verification -----------------------------------------------------------------------

    def on_verify(self, msg: Message, raw: KombuMessage) -> None:
        if not isinstance(msg, VerifyIntent):
            self._park(
                raw, Parked("the verify queue got another type", as_record(msg), self.clock())
            )
            return
        wait = self.verify_pacer.delay(host_key(msg.callback), to_body(msg))
        if wait > 0:  # HUB_VERIFY_RATE_PER_HOST: come back later, never dropped
            try:
                self.messaging.bus().publish_delayed(msg, topology.VERIFY, wait)
            except Unavailable:
                _settle(raw, ack=False)
                return
            self.metrics.verifications.labels(msg.mode, "deferred").inc()
            _settle(raw, ack=True)
            return
        self.in_flight += 1
        denial = self._denial_reason(msg) if msg.mode == "subscribe" else ""
        if denial:
            msg = dataclasses.replace(msg, mode="denied", reason=denial)
        self.engine.submit(self._verify_task(msg, raw))

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

    async def _verify_task(self, msg: VerifyIntent, raw: KombuMessage) -> None:
        lease = clamp_lease(msg.lease_seconds, self.settings) if msg.mode == "subscribe" else None
        try:
            if msg.mode == "denied":
                attempt, ok = await deny(self.engine, msg), False
            else:
                ok, attempt = await verify(self.engine, msg, lease)
        except Exception as exc:  # noqa: BLE001 - recorded as a failed attempt
            ok, attempt = False, Attempt(None, exc.__class__.__name__)
        self._done.put(("verify", msg, raw, lease, ok, attempt))

    def _record_verifications(
        self, items: list[tuple[VerifyIntent, KombuMessage, int | None, bool, Attempt]]
    ) -> None:
        """Apply the confirmed ones in one transaction; then retries, metrics and acks."""
        confirmed = [
            (msg.mode, msg.topic, msg.callback, msg.secret, lease or 0)
            for msg, _, lease, ok, _ in items
            if ok and msg.mode != "denied"
        ]
        if confirmed:
            self.storage.apply_verified(confirmed, self.clock())
        for msg, raw, _, ok, attempt in items:
            self._after_verification(msg, raw, ok, attempt)

    def _after_verification(
        self, msg: VerifyIntent, raw: KombuMessage, ok: bool, attempt: Attempt
    ) -> None:
        if msg.mode == "denied":
            self.metrics.verifications.labels("subscribe", "denied").inc()
        elif ok:
            self.metrics.verifications.labels(msg.mode, "verified").inc()
        elif verification_retryable(attempt) and msg.attempt < self.settings.delivery_max_attempts:
            delay = backoff_delay(msg.attempt, self.settings.delivery_backoff_base)
            self.messaging.bus().publish_delayed(
                dataclasses.replace(msg, attempt=msg.attempt + 1), topology.VERIFY, delay
            )
            self.metrics.verifications.labels(msg.mode, "retried").inc()
        else:
            self.metrics.verifications.labels(msg.mode, "failed").inc()
        _settle(raw, ack=True)
        self.in_flight -= 1

    # -- distribution -----------------------------------------------------------------------

    def on_deliver(self, msg: Message, raw: KombuMessage) -> None:
        if isinstance(msg, DeliverBatch):
            subs = self.storage.due_in_range(
                msg.topic, msg.first_id, msg.last_id, msg.notification_id, self.clock()
            )
            job = _Job(raw, len(subs), self._notification(msg.notification_id))
        elif isinstance(msg, DeliverOne):
            sub = self.storage.subscription(msg.subscription_id)
            due = sub is not None and sub.expires_at > self.clock()
            if not due or sub.delivered_upto >= msg.notification_id:
                self.metrics.deliveries.labels(_mirror(sub), "dropped").inc()
                subs = []
            else:
                subs = [sub]
            job = _Job(raw, len(subs), self._notification(msg.notification_id), msg.attempt)
        else:
            self._park(
                raw, Parked("the deliver queue got another type", as_record(msg), self.clock())
            )
            return
        if job.notification is None and subs:
            self._park(raw, Parked("notification no longer stored", as_record(msg), self.clock()))
            return
        if not subs:
            _settle(raw, ack=True)
            return
        self.in_flight += 1
        logger.debug(
            "notification %d: %d deliveries start %.1f ms after the ping",
            job.notification.id,
            len(subs),
            (time.time() - msg.pinged_at) * 1000,
        )
        self.engine.submit(self._deliver_task(job, subs, msg.pinged_at))

    async def _deliver_task(self, job: _Job, subs: list[Subscription], pinged_at: float) -> None:
        """Deliver to every subscription at once (the engine bounds concurrency); hand the
        outcomes to the consumer thread in chunks, so progress is recorded as it happens."""
        assert job.notification is not None
        distribution = Distribution(
            job.notification,
            hub_url=self.settings.public_url,
            algorithm=self.settings.signature_algorithm,
        )
        results: list[tuple[Subscription, Attempt]] = []
        loop = asyncio.get_running_loop()
        flushed = loop.time()

        def flush() -> None:
            nonlocal flushed
            self._done.put(("deliveries", job, results[:], pinged_at))
            results.clear()
            flushed = loop.time()

        pending = iter(subs)

        async def worker() -> None:
            for sub in pending:
                try:
                    attempt = await distribution.deliver(self.engine, sub)
                except Exception as exc:  # noqa: BLE001 - recorded as a failed attempt
                    attempt = Attempt(None, exc.__class__.__name__)
                if attempt.status is not None and 200 <= attempt.status < 300:
                    self._latency(sub.mirror).observe(max(0.0, time.time() - pinged_at))
                results.append((sub, attempt))
                if len(results) >= FLUSH_EVERY or loop.time() - flushed > FLUSH_SECONDS:
                    flush()

        # A few workers per batch rather than a task per delivery: the first requests go out
        # at once instead of after every task's first step, and a slow mirror holds one worker.
        await asyncio.gather(*(worker() for _ in range(min(len(subs), self._batch_workers))))
        if results:
            flush()

    def _latency(self, mirror: str) -> Any:
        child = self._latency_children.get(mirror)
        if child is None:
            child = self._latency_children[mirror] = self.metrics.delivery_latency.labels(mirror)
        return child

    def _record_delivery(
        self,
        job: _Job,
        sub: Subscription,
        attempt: Attempt,
        pinged_at: float,
        delivered: list[tuple[int, int]],
    ) -> None:
        notification = job.notification
        assert notification is not None
        outcome = classify_delivery(attempt)
        if outcome == DELIVERED:
            delivered.append((sub.id, notification.id))
        elif outcome == GONE:
            self.storage.remove_by_id(sub.id)
        else:
            outcome = self._retry_delivery(job, sub, attempt, pinged_at)
        self.metrics.deliveries.labels(sub.mirror, outcome).inc()
        job.remaining -= 1

    def _retry_delivery(
        self, job: _Job, sub: Subscription, attempt: Attempt, pinged_at: float
    ) -> str:
        notification = job.notification
        assert notification is not None
        error = attempt.error or f"HTTP {attempt.status}"
        try:
            if job.attempt >= self.settings.delivery_max_attempts:
                self.messaging.bus().publish(
                    Parked(
                        reason=f"delivery failed: {error}",
                        original=as_record(
                            DeliverOne(notification.id, sub.id, pinged_at, job.attempt, error)
                        ),
                        parked_at=self.clock(),
                        mirror=sub.mirror,
                        topic=notification.topic,
                        attempts=job.attempt,
                    ),
                    topology.PARKED,
                )
                self.metrics.parked.labels("delivery").inc()
                return "parked"
            delay = backoff_delay(job.attempt, self.settings.delivery_backoff_base)
            if attempt.status in (429, 503) and attempt.retry_after is not None:
                delay = max(delay, attempt.retry_after)
            self.messaging.bus().publish_delayed(
                DeliverOne(notification.id, sub.id, pinged_at, job.attempt + 1, error),
                topology.DELIVER,
                delay,
            )
        except Unavailable:
            job.unrecorded = True
        return "refused" if attempt.forbidden else "failed"

    # -- the consumer thread's side ---------------------------------------------------------

    def tick(self, max_items: int = 20000) -> None:
        """Record finished work in one transaction, then ack what is complete."""
        delivered: list[tuple[int, int]] = []
        finished: list[_Job] = []
        verifications = []
        for _ in range(max_items):
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                break
            if item[0] == "verify":
                verifications.append(item[1:])
                continue
            _, job, chunk, pinged_at = item
            for sub, attempt in chunk:
                self._record_delivery(job, sub, attempt, pinged_at, delivered)
            if job.remaining == 0:
                finished.append(job)
        if verifications:
            self._record_verifications(verifications)
        self.storage.mark_delivered(delivered)
        for job in finished:
            _settle(job.raw, ack=not job.unrecorded)
            self.in_flight -= 1

    def drain(self, timeout: float) -> None:
        """Wait (bounded) for in-flight work to finish and record it."""
        deadline = time.monotonic() + timeout
        while self.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
            self.tick()
        if self.in_flight:
            logger.warning(
                "stopping with %d messages in flight; the broker will redeliver them",
                self.in_flight,
            )

    def _notification(self, notification_id: int) -> Notification | None:
        cached = self._notifications.get(notification_id)
        if cached is None:
            cached = self.storage.notification(notification_id)
            if cached is None:
                return None
            self._notifications[notification_id] = cached
            while len(self._notifications) > 32:
                self._notifications.popitem(last=False)
        else:
            self._notifications.move_to_end(notification_id)
        return cached

    def _park(self, raw: KombuMessage, parked: Parked) -> None:
        try:
            self.messaging.bus().publish(parked, topology.PARKED)
        except Unavailable:
            _settle(raw, ack=False)
            return
        self.metrics.parked.labels("unexpected").inc()
        _settle(raw, ack=True)


def _settle(raw: KombuMessage, *, ack: bool) -> None:
    """Ack (or requeue) a message; a channel lost meanwhile means the broker redelivers it."""
    try:
        if ack:
            raw.ack()
        else:
            raw.reject(requeue=True)
    except Exception as exc:  # noqa: BLE001 - the broker will redeliver: at-least-once
        logger.info(
            "could not settle a message (%s); it will be redelivered", exc.__class__.__name__
        )


def _mirror(sub: Subscription | None) -> str:
    return sub.mirror if sub is not None else "unknown"
