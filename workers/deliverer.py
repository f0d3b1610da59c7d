"""The deliverer role: content distribution, a notification to every subscription of a topic.

The consumer thread reads messages and hands them to the :class:`HttpEngine`; outcomes come
back through a queue and are recorded on the consumer thread by :meth:`Deliverer.tick`, in one
transaction per tick, before the message is acked. A batch message covers up to
``HUB_DELIVERY_BATCH_SIZE`` subscriptions; only failures become messages of their own.
``broker-hub deliverer`` runs the verifier role (:mod:`workers.verifier`) in the same process,
on the same event loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from broker_hub import topology
from broker_hub.messages import DeliverBatch, DeliverOne, Message
from broker_hub.opsview import error_class
from broker_hub.retry import (
    DELIVERED,
    GONE,
    Attempt,
    classify_delivery,
)
from broker_hub.services import Services
from broker_hub.storage import MirrorResult, Notification, Subscription
from workers.distribution import Distribution
from workers.holdback import HoldBack
from workers.http_engine import HttpEngine
from workers.inbound import Inbound
from workers.ordering import RECHECK_SECONDS, DeliveryOrder
from workers.pacing import Pacing
from workers.redelivery import Job, Redelivery
from workers.role import Consume, Periodic, Role, RoleSpec
from workers.slots import Lanes

logger = logging.getLogger(__name__)
LABELS_REFRESH_SECONDS = 60.0

FLUSH_EVERY = 128  # outcomes handed to the consumer thread at once...
FLUSH_SECONDS = 0.02  # ...or after this long, whichever comes first


class Deliverer(Role, Redelivery, HoldBack):
    """Consumes the deliver queue: DeliverBatch and DeliverOne (a retry) messages."""

    name = "deliverer"

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
        self.jobs = 0  # broker messages in flight
        # the previous notification is awaited at most this long after its ping
        self.order = DeliveryOrder(
            self.storage, wait=2 * settings.http_timeout + 5, clock=self.clock
        )
        self._done: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._notifications: OrderedDict[int, Notification] = OrderedDict()
        self._mirror_results: list[MirrorResult] = []  # for /status and mirror health
        # bounded `mirror` labels and the per-mirror circuit breaker
        self.pacing = Pacing(self.storage, self.metrics, labels_max=settings.mirror_labels_max,
                             backoff_base=settings.delivery_backoff_base, clock=self.clock)
        # concurrency per batch message, so that `prefetch` batches fill the connection pool
        self._batch_workers = max(8, settings.delivery_concurrency // settings.prefetch)
        # slots per address, retry shares, the delay for what waits (workers/redelivery.py)
        self._init_redelivery(settings, self._batch_workers)

    def consumes(self) -> list[Consume]:
        return [
            Consume(
                topology.DELIVER,
                self.settings.prefetch,
                self.on_deliver,
                (DeliverBatch, DeliverOne),
            )
        ]

    def in_flight(self) -> int:
        return self.jobs

    def periodic(self) -> list[Periodic]:
        return [Periodic("mirror-labels", LABELS_REFRESH_SECONDS, self.refresh_labels)]

    def refresh_labels(self) -> None:
        self.pacing.refresh()

    # -- distribution -----------------------------------------------------------------------

    def on_deliver(self, msg: Message, inbound: Inbound) -> None:
        if isinstance(msg, DeliverBatch):
            subs = self.storage.due_in_range(
                msg.topic, msg.first_id, msg.last_id, msg.notification_id, self.clock()
            )
            job = Job(inbound, len(subs), self._notification(msg.notification_id))
        else:
            assert isinstance(msg, DeliverOne)
            sub = self.storage.subscription(msg.subscription_id)
            if (
                sub is None
                or sub.expires_at <= self.clock()
                or sub.delivered_upto >= msg.notification_id
            ):
                self.metrics.deliveries.labels(self.pacing.label(_mirror(sub)), "dropped").inc()
                subs = []
            elif self._retry_is_full(sub, msg.notification_id):
                if inbound.later(msg, self._defer):  # not an attempt: it waits, holding nothing
                    self.metrics.deliveries.labels(self.pacing.label(sub.mirror), "deferred").inc()
                return
            else:
                subs = [sub]
            job = Job(inbound, len(subs), self._notification(msg.notification_id), msg.attempt)
            if subs:
                job.retry = (subs[0].id, msg.notification_id)
        if job.notification is None and subs:
            if inbound.park_message(msg, "notification no longer stored"):
                self.metrics.parked.labels("unexpected").inc()
            return
        waiting = self.order.behind(job.notification, subs) if subs and job.notification else set()
        if isinstance(msg, DeliverBatch) and subs and len(waiting) == len(subs):
            # the whole batch waits for the topic's previous notification: one message again,
            # looking less often the longer it waits (0.25 s, 0.5 s, 1 s, then every 2 s)
            waits = int((inbound.raw.headers or {}).get("x-hub-waits", 0) or 0)
            delay = min(RECHECK_SECONDS * 2**waits, 2.0)
            inbound.later(msg, delay, **{"x-hub-waits": waits + 1})
            return
        if subs:
            subs = self._hold_back(job, subs, msg.pinged_at, waiting)
            job.remaining = len(subs)
        if not subs:
            inbound.ack()
            return
        assert job.notification is not None
        self.jobs += 1
        if job.retry is not None:
            self._retry_started(job, subs[0])
        logger.debug(
            "notification %d: %d deliveries start %.1f ms after the ping",
            job.notification.id,
            len(subs),
            (time.time() - msg.pinged_at) * 1000,
        )
        self.engine.submit(self._deliver_task(job, subs, msg.pinged_at))

    async def _deliver_task(self, job: Job, subs: list[Subscription], pinged_at: float) -> None:
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

        lanes = Lanes(subs, self.slots, self._per_batch)

        async def worker() -> None:
            while lanes:
                sub = lanes.take()
                if sub is None:
                    # Hosts whose callbacks hang (their slots full) wait in the delay queue as
                    # retries of their own, so that this message is not held for them; a host
                    # merely busy in this batch gets its next slot here.
                    spilled = lanes.spill(self.slots.full)
                    if spilled:
                        self._done.put(("spill", job, spilled, pinged_at))
                    else:
                        await self.slots.wait_for_release(self._defer)
                    continue
                try:
                    attempt = await distribution.deliver(self.engine, sub)
                except Exception as exc:  # noqa: BLE001 - recorded as a failed attempt
                    attempt = Attempt(None, exc.__class__.__name__)
                finally:
                    lanes.done(sub)
                if attempt.status is not None and 200 <= attempt.status < 300:
                    self.pacing.latency(sub.mirror).observe(max(0.0, time.time() - pinged_at))
                results.append((sub, attempt))
                if len(results) >= FLUSH_EVERY or loop.time() - flushed > FLUSH_SECONDS:
                    flush()

        # A few workers per batch rather than a task per delivery: the first requests go out
        # at once instead of after every task's first step, and a slow mirror holds one worker.
        await asyncio.gather(*(worker() for _ in range(min(len(subs), self._batch_workers))))
        if results:
            flush()

    def _record_delivery(
        self,
        job: Job,
        sub: Subscription,
        attempt: Attempt,
        pinged_at: float,
        delivered: list[tuple[int, int]],
    ) -> None:
        notification = job.notification
        assert notification is not None
        outcome = classify_delivery(attempt)
        label = self.pacing.label(sub.mirror)
        if outcome == DELIVERED:
            delivered.append((sub.id, notification.id))
            self._mirror_results.append(MirrorResult(sub.mirror, True, attempt.status))
            self.pacing.record(sub.mirror, True)
        elif outcome == GONE:
            self.storage.remove_by_id(sub.id)
        else:
            failure = error_class(attempt.status, attempt.error)
            self._mirror_results.append(MirrorResult(sub.mirror, False, attempt.status, failure))
            self.pacing.record(sub.mirror, False)
            self.metrics.delivery_failures.labels(label, failure).inc()
            outcome = self._retry_delivery(job, sub, attempt, pinged_at)
        self.pacing.outcomes[label, outcome] += 1
        job.remaining -= 1

    # -- the consumer thread's side ---------------------------------------------------------

    def tick(self, max_items: int = 20000) -> None:
        """Record finished work in one transaction, then ack what is complete."""
        delivered: list[tuple[int, int]] = []
        finished: list[Job] = []
        for _ in range(max_items):
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                break
            kind, job, chunk, pinged_at = item
            if kind == "spill":
                self._spill(job, chunk, pinged_at)
            else:
                for sub, attempt in chunk:
                    self._record_delivery(job, sub, attempt, pinged_at, delivered)
            if job.remaining == 0:
                finished.append(job)
        self.storage.mark_delivered(delivered)
        self.pacing.count_outcomes()
        if self._mirror_results:
            results, self._mirror_results = self._mirror_results, []
            self.storage.record_mirror_results(results, self.clock())
        for job in finished:
            self._retry_ended(job)
            if job.unrecorded:
                job.inbound.requeue()
            else:
                job.inbound.ack()
            self.jobs -= 1

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


def _mirror(sub: Subscription | None) -> str:
    return sub.mirror if sub is not None else "unknown"


SPEC = RoleSpec(
    name="deliverer",
    help="the deliverer: distribution to subscribers (runs the verifier too)",
    build=lambda context: Deliverer(context.services, engine=context.engine()),
    metrics_port=9102,
    with_roles=("verifier",),
    tick_interval=0.01,
)
