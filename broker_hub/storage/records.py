"""Rows as frozen dataclasses and named tuples (the ones built per delivery)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Subscription(NamedTuple):
    """A subscription row. A named tuple rather than a frozen dataclass: the deliverer builds
    one per subscription of every batch, and a frozen dataclass of ten fields took 2.2 µs to
    build against 0.2 µs (``timeit`` on this 2-core machine), ~10 % of a delivery's CPU."""

    id: int
    topic: str
    callback: str
    secret: str | None
    lease_seconds: int
    expires_at: float
    delivered_upto: int = 0
    mirror: str = ""  # the callback's host[:port]: the metrics label
    address: str = ""  # the address the callback reached when verified (ratelimit.address_key)
    created_at: float = 0.0  # when it was first verified (a renewal keeps it)

    def __repr__(self) -> str:  # the secret never reaches a log
        return (
            f"Subscription(id={self.id}, topic={self.topic!r}, callback={self.callback!r}, "
            f"expires_at={self.expires_at}, delivered_upto={self.delivered_upto})"
        )


# The columns of a subscription row, in the order of :class:`Subscription`'s fields.
SUB_COLUMNS = (
    "id, topic, callback, secret, lease_seconds, expires_at, delivered_upto, callback_host, "
    "COALESCE(callback_address, ''), COALESCE(created_at, 0.0)"
)
subscription_from_row = Subscription._make


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
    created_at: float = 0.0


@dataclass(frozen=True)
class NewNotification:
    """A notification to store: ``key`` (optional) makes storing it idempotent per topic."""

    topic: str
    content_type: str
    body: bytes
    key: str | None = None
    pinged_at: float | None = None  # None: the time given to add_notifications


@dataclass(frozen=True)
class FinishedFetch:
    """A fetch to record: the pings it covered, the lease it held, the state it leaves
    (``content_hash`` None: keep the stored content state, only the pings are covered)."""

    topic: str
    fetched_seq: int
    lease_until: float
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    content_type: str | None = None
    entries: str | None = None


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


@dataclass(frozen=True)
class SourceState:
    """A source index the hub watches (PyPI): where its journal has been read to."""

    name: str
    last_serial: int | None  # None: never polled (the first poll starts at the newest serial)
    retained_from: int | None  # entries with a serial above this are all kept (catch-up)
    caught_up_at: float | None  # the last time a poll found nothing newer
    failing_since: float | None  # the journal has failed since then (None: it works)
    last_error: str | None
    rss_state: str | None  # the RSS fallback's memory (JSON)


@dataclass(frozen=True)
class ProjectMark:
    """A project of a source: its newest serial, and the ``until`` its topic was last told."""

    last_serial: int
    notified_until: int | None


@dataclass(frozen=True)
class SubscribedTopic:
    """A topic with active subscriptions: ``count`` of them (counted up to a cap) have ids
    spanning [first_id, last_id]."""

    topic: str
    first_id: int
    last_id: int
    count: int
