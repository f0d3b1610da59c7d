"""Content distribution: POST a notification to its subscriptions, with Link and signature."""

from __future__ import annotations

from broker_hub.retry import Attempt
from broker_hub.signing import signature_header
from broker_hub.storage import Notification, Subscription
from workers.http_engine import HttpEngine

DELIVERY_ID_HEADER = "X-Hub-Delivery-Id"
SEQUENCE_HEADER = "X-Hub-Sequence"  # the notification's number within its topic: 1, 2, 3, ...


class Distribution:
    """One notification on its way out: the headers every delivery shares, computed once."""

    def __init__(self, notification: Notification, *, hub_url: str, algorithm: str):
        self.notification = notification
        self.algorithm = algorithm
        self.common = {
            "Content-Type": notification.content_type,
            "Link": f'<{hub_url}>; rel="hub", <{notification.topic}>; rel="self"',
        }
        if notification.sequence:
            self.common[SEQUENCE_HEADER] = str(notification.sequence)

    def headers(self, subscription: Subscription) -> dict[str, str]:
        """The headers of one delivery; the signature only when the subscription has a secret."""
        headers = dict(self.common)
        headers[DELIVERY_ID_HEADER] = f"{self.notification.id}.{subscription.id}"
        if subscription.secret:
            headers["X-Hub-Signature"] = signature_header(
                subscription.secret, self.notification.body, self.algorithm
            )
        return headers

    async def deliver(self, engine: HttpEngine, subscription: Subscription) -> Attempt:
        attempt, _ = await engine.request(
            "POST",
            subscription.callback,
            headers=self.headers(subscription),
            data=self.notification.body,
        )
        return attempt
