"""Each subscription gets a topic's notifications in order, even with several deliverers.

A topic's notification N+1 may reach a deliverer while another is still delivering N (both
published moments apart), and ``delivered_upto`` only moves forward: had N+1 gone first, the
deliverer with N would have skipped that subscription as done, and a diffed feed carries only
its own new entries, so N's would be lost. ``bench.scale`` showed it with 4 deliverers: 469 of
2,000 subscriptions got notifications out of order. So a subscription that has had an earlier
notification of the topic but not N yet waits (in the delay queue, holding no consumer slot)
until N is recorded, for at most ``wait`` seconds after N's ping: a mirror that keeps failing
N does not hold N+1 back for longer than that (N's retry is dropped once N+1 reached it, as
before). A subscription verified after that notification was stored (so it was not fanned
out to it) never waits for it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from broker_hub.storage import Notification, Subscription
from broker_hub.storage.api import Store

RECHECK_SECONDS = 0.25  # a held-back delivery looks again after this long
_CACHE = 256


class DeliveryOrder:
    def __init__(self, storage: Store, *, wait: float, clock: Callable[[], float]):
        self.storage = storage
        self.wait = wait
        self.clock = clock
        self._previous: OrderedDict[int, Notification | None] = OrderedDict()

    def behind(self, notification: Notification, subs: list[Subscription]) -> set[int]:
        """Ids of the subscriptions that must wait for the topic's previous notification."""
        previous = self.previous(notification)
        if previous is None or self.clock() - previous.pinged_at > self.wait:
            return set()
        return {
            s.id
            for s in subs
            if s.delivered_upto < previous.id and s.created_at <= previous.created_at
        }

    def previous(self, notification: Notification) -> Notification | None:
        if notification.sequence <= 1:
            return None
        if notification.id in self._previous:
            self._previous.move_to_end(notification.id)
            return self._previous[notification.id]
        found = self.storage.notification_at(notification.topic, notification.sequence - 1)
        self._previous[notification.id] = found
        while len(self._previous) > _CACHE:
            self._previous.popitem(last=False)
        return found
