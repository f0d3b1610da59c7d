"""Content distribution: POST a notification to one subscription, with Link and signature."""

from __future__ import annotations

from broker_hub.retry import Attempt
from broker_hub.signing import signature_header
from broker_hub.storage import Notification, Subscription
from workers.http_engine import HttpEngine

DELIVERY_ID_HEADER = "X-Hub-Delivery-Id"


def delivery_headers(
    notification: Notification, subscription: Subscription, *, hub_url: str, algorithm: str
) -> dict[str, str]:
    """The headers of one delivery; the signature only when the subscription has a secret."""
    headers = {
        "Content-Type": notification.content_type,
        "Link": f'<{hub_url}>; rel="hub", <{notification.topic}>; rel="self"',
        DELIVERY_ID_HEADER: f"{notification.id}.{subscription.id}",
    }
    if subscription.secret:
        headers["X-Hub-Signature"] = signature_header(
            subscription.secret, notification.body, algorithm
        )
    return headers


async def deliver(
    engine: HttpEngine,
    notification: Notification,
    subscription: Subscription,
    *,
    hub_url: str,
    algorithm: str,
) -> Attempt:
    headers = delivery_headers(notification, subscription, hub_url=hub_url, algorithm=algorithm)
    attempt, _ = await engine.request(
        "POST", subscription.callback, headers=headers, data=notification.body
    )
    return attempt
