"""``broker-hub parked list|replay|purge``: what gave up, and bringing it back."""

from __future__ import annotations

import dataclasses
import json
import sys

from broker_hub import topology
from broker_hub.config import Settings
from broker_hub.messages import (
    DeliverOne,
    FetchTopic,
    MessageError,
    Parked,
    VerifyIntent,
    from_body,
)
from broker_hub.messaging import Messaging

EXIT_OK = 0
EXIT_UNAVAILABLE = 3

_TARGET = {DeliverOne: topology.DELIVER, FetchTopic: topology.FETCH, VerifyIntent: topology.VERIFY}


def parked_command(settings: Settings, action: str, limit: int) -> int:
    messaging = Messaging(settings.broker_url, namespace=settings.namespace)
    queue = topology.queue(settings.namespace, topology.PARKED)
    try:
        with messaging.connection() as conn:
            channel = conn.channel()
            bound = queue(channel)
            bound.declare()
            if action == "purge":
                print(f"purged {bound.purge() or 0} parked messages")
                return EXIT_OK
            replayed = kept = 0
            for _ in range(limit):
                raw = bound.get(no_ack=False, accept=["json"])
                if raw is None:
                    break
                if action == "list":
                    print(_describe(raw.body))
                    continue  # left unacked: back on the queue when the channel closes
                if _replay(messaging, raw.body):
                    raw.ack()
                    replayed += 1
                else:
                    kept += 1
            if action == "replay":
                print(f"replayed {replayed}, kept {kept} that cannot be replayed")
    except OSError as exc:
        print(f"broker-hub: broker unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return EXIT_OK


def _describe(body: bytes | str) -> str:
    try:
        parked = from_body(body)
    except MessageError:
        return json.dumps({"unreadable": str(body)[:200]})
    return json.dumps(dataclasses.asdict(parked), sort_keys=True)


def _replay(messaging: Messaging, body: bytes | str) -> bool:
    """Publish the original message again with a fresh attempt count."""
    try:
        parked = from_body(body)
        if not isinstance(parked, Parked) or "raw" in parked.original:
            return False
        original = from_body({**parked.original, "v": 1})
    except MessageError:
        return False
    target = _TARGET.get(type(original))
    if target is None:
        return False
    again = dataclasses.replace(original, attempt=1)  # type: ignore[arg-type]
    messaging.publisher.publish(again, target)
    return True
