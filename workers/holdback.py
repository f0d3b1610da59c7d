"""Holding deliveries back without holding a consumer slot: the mirror's circuit breaker
(paused) and the topic's previous notification (waiting), mixed into the deliverer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker_hub import topology
from broker_hub.errors import Unavailable
from broker_hub.messages import DeliverOne
from broker_hub.storage import Subscription
from workers.ordering import RECHECK_SECONDS
from workers.redelivery import Job

if TYPE_CHECKING:
    from broker_hub.messaging import Publisher
    from broker_hub.metrics import Metrics
    from workers.pacing import Pacing


class HoldBack:
    """The held subscriptions wait in the delay queue as DeliverOne messages (the attempt is
    not counted: holding back never parks)."""

    pacing: Pacing
    publisher: Publisher
    metrics: Metrics

    def _hold_back(
        self, job: Job, subs: list[Subscription], pinged_at: float, waiting: set[int]
    ) -> list[Subscription]:
        """The subscriptions to deliver now; those of paused mirrors wait in the delay queue
        for the breaker's pause (the attempt is not counted: pausing never parks), and those
        ``waiting`` (ids, :meth:`DeliveryOrder.behind`) for the topic's previous notification."""
        assert job.notification is not None
        ready, held = self.pacing.split(subs)
        if waiting:  # the topic's previous notification first (workers/ordering.py)
            held += [(s, RECHECK_SECONDS) for s in ready if s.id in waiting]
            ready = [s for s in ready if s.id not in waiting]
        for sub, wait in held:
            try:
                self.publisher.publish_delayed(
                    DeliverOne(
                        job.notification.id,
                        sub.id,
                        pinged_at,
                        job.attempt,
                        "waiting" if sub.id in waiting else "paused",
                    ),
                    topology.DELIVER,
                    wait,
                )
            except Unavailable:
                ready.append(sub)  # cannot hold it back: deliver it now
                continue
            outcome = "waiting" if sub.id in waiting else "paused"
            self.metrics.deliveries.labels(self.pacing.label(sub.mirror), outcome).inc()
        return ready
