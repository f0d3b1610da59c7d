"""``broker-hub parked list|replay|purge [--mirror M] [--topic T] [--older-than AGE]``:
what gave up, and bringing it back. Filters select by the parked message's mirror (callback
host[:port]), topic URL and age; messages that do not match stay parked, untouched."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from broker_hub import topology
from broker_hub.config import Settings
from broker_hub.messages import (
    DeliverOne,
    FetchTopic,
    MessageError,
    Parked,
    VerifyIntent,
    as_record,
    from_body,
)
from broker_hub.messaging import Messaging

EXIT_OK = 0
EXIT_UNAVAILABLE = 3

_TARGET = {DeliverOne: topology.DELIVER, FetchTopic: topology.FETCH, VerifyIntent: topology.VERIFY}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h``, ``1d`` -> seconds."""
    match = _AGE.match(text.lower())
    if not match:
        raise ValueError(f"not an age: {text!r} (seconds, or a number with s, m, h or d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class Filter:
    mirror: str | None = None
    topic: str | None = None
    older_than: float | None = None

    @property
    def empty(self) -> bool:
        return self.mirror is None and self.topic is None and self.older_than is None

    def matches(self, parked: Parked | None, now: float) -> bool:
        if self.empty:
            return True
        if parked is None:  # unreadable: only an unfiltered command touches it
            return False
        if self.mirror is not None and parked.mirror != self.mirror:
            return False
        if self.topic is not None and self.topic not in (parked.topic, _no_userinfo(parked.topic)):
            return False
        return self.older_than is None or now - parked.parked_at > self.older_than


def parked_command(
    settings: Settings,
    action: str,
    limit: int,
    *,
    mirror: str | None = None,
    topic: str | None = None,
    older_than: float | None = None,
) -> int:
    selected = Filter(mirror, topic, older_than)
    messaging = Messaging(settings.broker_url, namespace=settings.namespace,
                          queue_type=settings.queue_type,
                          delivery_limit=settings.queue_delivery_limit)
    queue = messaging.queue(topology.PARKED)
    now = time.time()
    try:
        with messaging.connection() as conn:
            channel = conn.channel()
            bound = queue(channel)
            bound.declare()
            if action == "purge" and selected.empty:
                print(f"purged {bound.purge() or 0} parked messages")
                return EXIT_OK
            done = kept = 0
            for _ in range(limit):
                raw = bound.get(no_ack=False, accept=["json"])
                if raw is None:
                    break
                parked = _read(raw.body, raw.headers or {})
                if not selected.matches(parked, now):
                    continue  # left unacked: back on the queue when the channel closes
                if action == "list":
                    print(_describe(raw.body, parked))
                    done += 1
                    continue
                if action == "purge" or _replay(messaging, parked):
                    raw.ack()
                    done += 1
                else:
                    kept += 1
            if action == "replay":
                print(f"replayed {done}, kept {kept} that cannot be replayed")
            elif action == "purge":
                print(f"purged {done} parked messages")
    except OSError as exc:
        print(f"broker-hub: broker unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return EXIT_OK


def _read(body: bytes | str, headers: dict) -> Parked | None:
    """The parked record; a message the broker dead-lettered itself (a quorum queue's
    delivery limit) is shown and replayed like one the hub parked."""
    try:
        message = from_body(body)
    except MessageError:
        return None
    if isinstance(message, Parked):
        return message
    deaths = headers.get("x-death") or [{}]
    death = deaths[0] if isinstance(deaths[0], dict) else {}
    when: Any = death.get("time")
    return Parked(
        reason=f"dead-lettered by the broker: {death.get('reason', 'unknown')}",
        original=as_record(message),
        parked_at=float(when.timestamp()) if hasattr(when, "timestamp") else 0.0,
        topic=getattr(message, "topic", "") or "",
        attempts=int(death.get("count", 0) or 0),
    )


def _describe(body: bytes | str, parked: Parked | None) -> str:
    if parked is None:
        return json.dumps({"unreadable": str(body)[:200]})
    record = dataclasses.asdict(parked)
    record["topic"] = _no_userinfo(parked.topic)
    if isinstance(record["original"].get("topic"), str):
        record["original"]["topic"] = _no_userinfo(record["original"]["topic"])
    return json.dumps(record, sort_keys=True)


def _no_userinfo(url: str) -> str:
    """The URL without ``user:password@`` (it is sent as Basic credentials; never print it)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _replay(messaging: Messaging, parked: Parked | None) -> bool:
    """Publish the original message again with a fresh attempt count."""
    if parked is None or "raw" in parked.original:
        return False
    try:
        original = from_body({**parked.original, "v": 1})
    except MessageError:
        return False
    target = _TARGET.get(type(original))
    if target is None:
        return False
    again = dataclasses.replace(original, attempt=1)  # type: ignore[arg-type]
    messaging.publisher.publish(again, target)
    return True
