"""The janitor role: periodic clean-up, run beside the fetcher.

Purges expired subscriptions and notifications past retention, and queues again the fetches
whose message a dying web process never published. Every step is idempotent, so several
fetcher processes may each run it.
"""

from __future__ import annotations

import logging

from broker_hub import topology
from broker_hub.messages import FetchTopic
from broker_hub.services import Services
from broker_hub.urls import host_label
from workers.role import Periodic, Role, RoleSpec

logger = logging.getLogger(__name__)

INTERVAL = 60.0
STALE_QUEUED_SECONDS = 120.0  # a queued fetch not started by then is queued again


class Janitor(Role):
    name = "janitor"

    def __init__(self, services: Services, *, interval: float = INTERVAL):
        self.services = services
        self.interval = interval

    def periodic(self) -> list[Periodic]:
        return [Periodic("janitor", self.interval, self.run_once)]

    def run_once(self) -> None:
        s = self.services
        now = s.clock()
        for topic, seq, queued_at in s.storage.stale_queued(now - STALE_QUEUED_SECONDS):
            logger.warning("re-queueing a fetch of %s left unqueued", host_label(topic))
            s.publisher.publish(FetchTopic(topic, seq, queued_at), topology.FETCH)
            s.storage.touch_queued(topic, now)
        purged = s.storage.purge_expired(now)
        old = s.storage.delete_notifications_before(now - s.settings.notification_retention)
        if purged or old:
            logger.info("purged %d expired subscriptions, %d old notifications", purged, old)
        s.storage.purge_mirror_health()  # mirrors without subscriptions leave /status


SPEC = RoleSpec(
    name="janitor",
    help="periodic clean-up only (expired subscriptions, old notifications, lost fetches)",
    build=lambda context: Janitor(context.services),
    metrics_port=9105,
)
