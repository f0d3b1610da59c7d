"""Catch-up for any topic: ``GET <hub>catchup?hub.topic=<url>&hub.callback=<url>&since=<n>``.

Every notification has a sequence number within its topic (``X-Hub-Sequence``: 1, 2, 3, ...).
A subscriber that missed some (downtime, a gap in the sequence) asks for those the hub still
holds after ``since``, oldest first, paged. A generic topic's content may not be public, so the
subscriber proves it holds the subscription: ``Authorization: Bearer <hex HMAC-SHA256 of the
topic URL, keyed with the subscription's hub.secret>`` (a subscription without a secret cannot
catch up). PyPI topics are public: their catch-up is ``GET <topic>?since=<serial>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from flask import Blueprint, Response, request

from web.state import web_state

blueprint = Blueprint("catchup", __name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _text(body: str, status: int) -> Response:
    return Response(body + "\n", status=status, mimetype="text/plain")


def catchup_token(secret: str, topic: str) -> str:
    """The bearer token a subscriber with ``secret`` sends to read ``topic``'s notifications."""
    return hmac.new(secret.encode("utf-8"), topic.encode("utf-8"), hashlib.sha256).hexdigest()


@blueprint.route("/catchup", methods=["GET"])
def catchup() -> Response:
    services = web_state().services
    topic = request.args.get("hub.topic", "")
    callback = request.args.get("hub.callback", "")
    if not topic or not callback:
        return _text("400 Bad Request: hub.topic and hub.callback are required", 400)
    raw_since, raw_limit = request.args.get("since", "0"), request.args.get("limit", "")
    if not raw_since.isdigit() or len(raw_since) > 18 or (raw_limit and not raw_limit.isdigit()):
        return _text("400 Bad Request: since and limit must be non-negative integers", 400)
    since, limit = int(raw_since), min(int(raw_limit or DEFAULT_LIMIT) or 1, MAX_LIMIT)
    sub = services.storage.find_subscription(topic, callback)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if (
        sub is None
        or not sub.secret
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(token.strip(), catchup_token(sub.secret, topic))
    ):
        return _text(
            "403 Forbidden: catch-up needs an active subscription with a hub.secret and "
            "Authorization: Bearer <hex HMAC-SHA256(secret, topic)>",
            403,
        )
    oldest = services.storage.oldest_sequence(topic)
    if oldest is not None and since < oldest - 1:
        return _text(
            f"410 Gone: the hub keeps this topic's notifications from sequence {oldest} on "
            f"(HUB_NOTIFICATION_RETENTION); since={since} is older. Fetch the topic afresh.",
            410,
        )
    rows = services.storage.notifications_after(topic, since, limit)
    more = len(rows) == limit
    body = {
        "topic": topic,
        "since": since,
        "until": rows[-1].sequence if rows else since,
        "notifications": [
            {
                "sequence": n.sequence,
                "content_type": n.content_type,
                "body_base64": base64.b64encode(n.body).decode("ascii"),
            }
            for n in rows
        ],
        "more": more,
    }
    return Response(json.dumps(body), mimetype="application/json")
