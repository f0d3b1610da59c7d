"""The deliverer's retries and isolation: what waits in the delay queue instead of a slot.

Isolation (issue 15): one address never holds more than its slots, in all or in a batch's
workers (:mod:`workers.slots`, counting slow work only); slow retries (one message each,
holding a prefetch slot for the whole attempt) never take more than half the prefetch, nor one
address half of that; deliveries a batch cannot start for a saturated address go to the delay
queue as retries of their own. What waits, waits in the delay queue, holding nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker_hub import topology
from broker_hub.config import Settings
from broker_hub.errors import Unavailable
from broker_hub.messages import DeliverOne, Parked, as_record
from broker_hub.metrics import Metrics
from broker_hub.retry import Attempt, backoff_delay
from broker_hub.storage import Notification, Subscription
from workers.inbound import Inbound
from workers.slots import AddressSlots, address_of


@dataclass(eq=False)
class Job:
    """One broker message in flight: acked once all its deliveries are recorded."""

    inbound: Inbound
    remaining: int
    notification: Notification | None = None
    attempt: int = 1
    unrecorded: bool = False  # a retry could not be published: requeue instead of ack
    retry: tuple[int, int] | None = None  # a DeliverOne's (subscription, notification) ids


class Redelivery:
    """Retries, spills and slots of :class:`workers.deliverer.Deliverer` (a mixin)."""

    settings: Settings
    publisher: Any
    pacing: Any  # workers.pacing.Pacing: bounded mirror labels
    metrics: Metrics
    clock: Callable[[], float]
    _retrying: dict[tuple[int, int], tuple[str, int, int]]

    def _init_redelivery(self, settings: Settings, batch_workers: int) -> None:
        slow = min(1.0, settings.http_timeout / 4)
        self.slots = AddressSlots(
            settings.delivery_slots_per_address, slow_after=slow, remember=settings.http_timeout
        )
        self._per_batch = max(1, min(settings.delivery_slots_per_address, batch_workers // 2))
        retry_cap = max(1, settings.prefetch // 2)
        self._retry_slots = AddressSlots(retry_cap, slow_after=slow)  # one key: "all"
        self._retry_address = AddressSlots(max(1, retry_cap // 2), slow_after=slow)
        # in flight: (sub, notification) -> (address, token in all, token for the address)
        self._retrying = {}
        self._defer = max(0.5, settings.http_timeout / 2)

    def _retry_started(self, job: Job, sub: Subscription) -> None:
        assert job.retry is not None
        key = address_of(sub)
        self._retrying[job.retry] = (
            key, self._retry_slots.try_acquire("all"), self._retry_address.try_acquire(key)
        )

    def _retry_ended(self, job: Job) -> None:
        if job.retry is not None:
            key, whole, mine = self._retrying.pop(job.retry)
            self._retry_slots.release("all", whole)
            self._retry_address.release(key, mine)

    def _spill(self, job: Job, subs: list[Subscription], pinged_at: float) -> None:
        """Deliveries a batch could not start (their address is saturated): each becomes a
        DeliverOne in the delay queue, same attempt, so the batch message can be acked."""
        assert job.notification is not None
        for sub in subs:
            try:
                self.publisher.publish_delayed(
                    DeliverOne(job.notification.id, sub.id, pinged_at, job.attempt, "deferred"),
                    topology.DELIVER,
                    self._defer,
                )
            except Unavailable:
                job.unrecorded = True
            self.metrics.deliveries.labels(self.pacing.label(sub.mirror), "deferred").inc()
            job.remaining -= 1

    def _retry_is_full(self, sub: Subscription, notification_id: int) -> bool:
        """A retry must wait: it is in flight already, or slow retries (in all, or to its
        address) hold their share of the prefetch, or its address holds all its slots."""
        if (sub.id, notification_id) in self._retrying or self._retry_slots.full("all"):
            return True
        key = address_of(sub)
        return self._retry_address.full(key) or self.slots.full(key)

    def _retry_delivery(
        self, job: Job, sub: Subscription, attempt: Attempt, pinged_at: float
    ) -> str:
        notification = job.notification
        assert notification is not None
        error = attempt.error or f"HTTP {attempt.status}"
        try:
            if job.attempt >= self.settings.delivery_max_attempts:
                self.publisher.publish(
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
            self.publisher.publish_delayed(
                DeliverOne(notification.id, sub.id, pinged_at, job.attempt + 1, error),
                topology.DELIVER,
                delay,
            )
        except Unavailable:
            job.unrecorded = True
        return "refused" if attempt.forbidden else "failed"

