"""Rows as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True)
class Subscription:
    id: int
    topic: str
    callback: str
    secret: str | None = field(repr=False)
    lease_seconds: int
    expires_at: float
    delivered_upto: int = 0
    mirror: str = ""  # the callback's host[:port]: the metrics label


class PingRecord(NamedTuple):
    seq: int  # the ping's sequence number for its topic
    queue: bool  # True: publish a fetch message; False: a queued, unclaimed one covers it


@dataclass(frozen=True)
class TopicState:
    url: str
    ping_seq: int
    fetched_seq: int
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    content_type: str | None
    entries: str | None  # JSON map of entry key -> hash, for feeds


@dataclass(frozen=True)
class Notification:
    id: int
    topic: str
    content_type: str
    body: bytes
    pinged_at: float
