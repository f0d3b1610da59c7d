"""What a fetch of a topic leaves behind: diff against the last fetch, store what is new once,
fan it out, and only then record the topic's new state."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from broker_hub import feeds
from broker_hub.messages import FetchTopic
from broker_hub.services import Services
from broker_hub.storage import TopicState
from broker_hub.urls import host_label
from workers.fanout import fan_out

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    """A topic's answer: 200 with content, or 304."""

    status: int
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None


def record_fetch(
    services: Services, msg: FetchTopic, claim: int, state: TopicState | None, fetched: Fetched
) -> str:
    """Record a 200 or 304 that covered pings up to ``claim``; returns the fetch outcome
    (changed, unchanged, not_modified, refused)."""
    storage = services.storage
    if fetched.status == 304:
        storage.mark_fetched(msg.topic, claim)
        return "not_modified"
    now = services.clock()
    digest = hashlib.sha256(fetched.body).hexdigest()
    save: dict[str, Any] = dict(
        fetched_seq=claim,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        content_hash=digest,
        content_type=fetched.content_type,
        now=now,
    )
    if state is not None and state.content_hash == digest:
        storage.save_fetch(msg.topic, entries=state.entries, **save)
        return "unchanged"
    previous_entries = json.loads(state.entries) if state and state.entries else None
    try:
        diff = feeds.diff_feed(fetched.body, fetched.content_type, previous_entries)
    except feeds.HostileXML as exc:
        logger.warning("refusing hostile XML from %s: %s", host_label(msg.topic), exc)
        storage.mark_fetched(msg.topic, claim)
        return "refused"
    entries = json.dumps(diff.entries) if diff is not None else None
    if diff is not None and not diff.changed:
        storage.save_fetch(msg.topic, entries=entries, **save)
        return "unchanged"
    body = diff.body if diff is not None else fetched.body
    notification = storage.add_notification(
        msg.topic, fetched.content_type, body, msg.pinged_at, now
    )
    fan_out(storage, services.publisher, notification, now, services.settings.delivery_batch_size)
    # Only now, with every batch confirmed by the broker, is the new state recorded.
    storage.save_fetch(msg.topic, entries=entries, **save)
    logger.debug(
        "notification %d: %d bytes, every batch queued %.1f ms after the ping",
        notification.id,
        len(body),
        (services.clock() - msg.pinged_at) * 1000,
    )
    return "changed"
