"""The storage interface every part of the hub programs against.

:class:`broker_hub.storage.Storage` implements it in SQL, on SQLite (the default) or PostgreSQL
(several machines), chosen by ``HUB_DATABASE_URL``; the dialects differ only in the backend
(:mod:`broker_hub.storage.backends`). Rows come back as the frozen records of
:mod:`broker_hub.storage.records`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from broker_hub.storage.records import (
    FetchClaim,
    Notification,
    PingRecord,
    Subscription,
    SubscriptionLimits,
    TopicState,
    TopicSummary,
    VerifiedChange,
)


class Store(Protocol):
    """Subscriptions, topics (pings, the fetch lease, fetch state) and notifications."""

    # -- the database itself
    def create_schema(self) -> None: ...
    def check(self) -> None:
        """Raise when the database does not answer."""

    def close(self) -> None: ...

    # -- subscriptions
    def activate(
        self,
        topic: str,
        callback: str,
        secret: str | None,
        lease_seconds: int,
        now: float,
        *,
        limits: SubscriptionLimits = ...,
        address: str | None = None,
    ) -> Subscription | None:
        """None: a new subscription refused by ``limits`` (checked in the same write)."""

    def apply_verified(
        self, changes: list[VerifiedChange], now: float, *, limits: SubscriptionLimits = ...
    ) -> list[VerifiedChange]:
        """Apply in one transaction; returns the subscribes ``limits`` refused."""

    def remove(self, topic: str, callback: str) -> bool: ...
    def remove_by_id(self, subscription_id: int) -> bool: ...
    def subscription(self, subscription_id: int) -> Subscription | None: ...
    def find_subscription(self, topic: str, callback: str) -> Subscription | None: ...
    def id_ranges(self, topic: str, now: float, batch_size: int) -> Iterator[tuple[int, int]]: ...
    def due_in_range(
        self, topic: str, first_id: int, last_id: int, notification_id: int, now: float
    ) -> list[Subscription]: ...
    def mark_delivered(self, pairs: Iterable[tuple[int, int]]) -> None: ...
    def purge_expired(self, now: float) -> int: ...
    def count_subscriptions(self, now: float) -> dict[str, int]: ...
    def count_for_topic(self, topic: str, now: float) -> int: ...
    def count_for_host(self, callback_host: str, now: float) -> int: ...
    def count_for_address(self, address: str, now: float) -> int: ...
    def has_subscribers(self, topic: str, now: float) -> bool: ...

    # -- notifications
    def add_notification(
        self,
        topic: str,
        content_type: str,
        body: bytes,
        pinged_at: float,
        now: float,
        *,
        key: str | None = None,
    ) -> Notification | None:
        """Store with the topic's next sequence number; None when ``key`` was seen already."""

    def notifications_after(self, topic: str, sequence: int, limit: int) -> list[Notification]: ...
    def oldest_sequence(self, topic: str) -> int | None: ...
    def notification(self, notification_id: int) -> Notification | None: ...
    def delete_notifications_before(self, created_before: float) -> int: ...

    # -- topics: pings, the fetch lease, fetch state
    def record_ping(self, topic: str, now: float = 0.0) -> PingRecord: ...
    def unqueue(self, topic: str, seq: int) -> None: ...
    def claim_fetch(
        self, topic: str, now: float, lease: float, *, force: bool = False
    ) -> FetchClaim: ...
    def release_fetch(self, topic: str, until: float) -> None: ...
    def stale_queued(self, queued_before: float) -> list[tuple[str, int, float]]: ...
    def touch_queued(self, topic: str, now: float) -> None: ...
    def topic_state(self, topic: str) -> TopicState | None: ...
    def save_fetch(
        self,
        topic: str,
        *,
        fetched_seq: int,
        etag: str | None,
        last_modified: str | None,
        content_hash: str | None,
        content_type: str | None,
        entries: str | None,
        now: float,
    ) -> None: ...
    def mark_fetched(self, topic: str, fetched_seq: int) -> None: ...
    def topics_summary(self, limit: int = 50) -> list[TopicSummary]: ...
