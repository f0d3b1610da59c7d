"""The deliverer's distribution side: content to every subscription of a topic.

The kombu consumer thread reads messages and hands them to the :class:`HttpEngine`; outcomes
come back through a queue and are recorded on the consumer thread by :meth:`Deliverer.tick`,
in one transaction per tick, before the message is acked (verification of intent, the other
half of the deliverer process, is :mod:`workers.verifier`). A batch message covers up to
``HUB_DELIVERY_BATCH_SIZE`` subscriptions; only failures become messages of their own.
"""

from __future__ import annotations

import asyncio
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
from broker_hub.messages import (
    DeliverBatch,
    DeliverOne,
    Message,
    Parked,
    as_record,
)
from broker_hub.metrics import Metrics
from broker_hub.opsview import error_class
from broker_hub.retry import (
    DELIVERED,
    GONE,
    Attempt,
    backoff_delay,
    classify_delivery,
)
from broker_hub.storage import MirrorResult, Notification, Storage, Subscription
from workers.consumer import park, settle
from workers.distribution import Distribution
from workers.http_engine import HttpEngine

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
        self._done: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._notifications: OrderedDict[int, Notification] = OrderedDict()
        self._latency_children: dict[str, Any] = {}
        self._mirror_results: list[MirrorResult] = []  # for /status and mirror health
        # concurrency per batch message, so that `prefetch` batches fill the connection pool
        self._batch_workers = max(8, settings.delivery_concurrency // settings.prefetch)

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
            settle(raw, ack=True)
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
            self._mirror_results.append(MirrorResult(sub.mirror, True, attempt.status))
        elif outcome == GONE:
            self.storage.remove_by_id(sub.id)
        else:
            failure = error_class(attempt.status, attempt.error)
            self._mirror_results.append(MirrorResult(sub.mirror, False, attempt.status, failure))
            self.metrics.delivery_failures.labels(sub.mirror, failure).inc()
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
        for _ in range(max_items):
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                break
            _, job, chunk, pinged_at = item
            for sub, attempt in chunk:
                self._record_delivery(job, sub, attempt, pinged_at, delivered)
            if job.remaining == 0:
                finished.append(job)
        self.storage.mark_delivered(delivered)
        if self._mirror_results:
            results, self._mirror_results = self._mirror_results, []
            self.storage.record_mirror_results(results, self.clock())
        for job in finished:
            settle(job.raw, ack=not job.unrecorded)
            self.in_flight -= 1

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
        if park(self.messaging, raw, parked):
            self.metrics.parked.labels("unexpected").inc()


def _mirror(sub: Subscription | None) -> str:
    return sub.mirror if sub is not None else "unknown"
