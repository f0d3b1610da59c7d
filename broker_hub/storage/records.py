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
    address: str = ""  # the address the callback reached when verified (ratelimit.address_key)


class PingRecord(NamedTuple):
    seq: int  # the ping's sequence number for its topic
    queue: bool  # True: publish a fetch message; False: a queued, unclaimed one covers it


class FetchClaim(NamedTuple):
    """What :meth:`Storage.claim_fetch` decided."""

    seq: int | None  # the pings this fetch covers (None: the topic has no row)
    until: float  # the fetch lease this fetcher holds until then (0.0: none)
    busy: bool = False  # another fetcher holds the lease, until ``until``: fetch later


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
    sequence: int = 0  # per topic: 1, 2, 3, ... (X-Hub-Sequence)


@dataclass(frozen=True)
class VerifiedChange:
    """A verified intent to apply: subscribe (create or renew) or unsubscribe."""

    mode: str
    topic: str
    callback: str
    secret: str | None = field(default=None, repr=False)
    lease_seconds: int = 0


@dataclass(frozen=True)
class TopicSummary:
    """A topic as the status page shows it."""

    url: str
    subscriptions: int
    fetched_at: float | None


class SubscriptionLimits(NamedTuple):
    """HUB_MAX_SUBSCRIPTIONS_PER_TOPIC / _PER_HOST, enforced where a subscription is written."""

    per_topic: int = 0  # 0: unlimited
    per_address: int = 0  # active subscriptions whose callbacks reach one address; 0: unlimited

    @property
    def enabled(self) -> bool:
        return self.per_topic > 0 or self.per_address > 0
