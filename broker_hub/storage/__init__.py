"""Storage: subscriptions, topic fetch state and notification bodies, behind one small class.

SQLite by default; PostgreSQL when several machines share it. Same SQL, chosen by URL.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from broker_hub.storage.backends import Backend, backend_for
from broker_hub.storage.health import HealthQueries, MirrorHealth, MirrorResult, TopicRow
from broker_hub.storage.migrations import migrate
from broker_hub.storage.notifications import NotificationQueries
from broker_hub.storage.records import (
    FetchClaim,
    FinishedFetch,
    NewNotification,
    Notification,
    PingRecord,
    ProjectMark,
    SourceState,
    SubscribedTopic,
    Subscription,
    TopicState,
    TopicSummary,
    VerifiedChange,
)
from broker_hub.storage.sources import SourceQueries
from broker_hub.storage.topics import TopicQueries
from broker_hub.urls import host_label

__all__ = [
    "FetchClaim",
    "FinishedFetch",
    "MirrorHealth",
    "MirrorResult",
    "NewNotification",
    "Notification",
    "PingRecord",
    "ProjectMark",
    "SourceState",
    "Storage",
    "SubscribedTopic",
    "Subscription",
    "TopicRow",
    "TopicState",
    "TopicSummary",
    "VerifiedChange",
]

_SUB_COLUMNS = (
    "id, topic, callback, secret, lease_seconds, expires_at, delivered_upto, callback_host"
)


def _subscription(row: tuple) -> Subscription:
    return Subscription(
        id=row[0],
        topic=row[1],
        callback=row[2],
        secret=row[3],
        lease_seconds=row[4],
        expires_at=row[5],
        delivered_upto=row[6],
        mirror=row[7],
    )


class Storage(TopicQueries, NotificationQueries, SourceQueries, HealthQueries):
    """The SQL implementation of :class:`broker_hub.storage.api.Store` (a topic's pings and
    fetches: :class:`TopicQueries`; notifications: :class:`NotificationQueries`).
    Thread-safe: each thread gets its own connection."""

    def __init__(self, backend: Backend):
        self.backend = backend

    @classmethod
    def from_url(cls, url: str) -> Storage:
        return cls(backend_for(url))

    def create_schema(self) -> None:
        """Bring the schema up to date (:mod:`broker_hub.storage.migrations`): a database
        made by an older version keeps working."""
        self.migrate()

    def migrate(self) -> list[int]:
        """Apply the missing migration steps; return their versions."""
        return migrate(self.backend, time.time())

    def check(self) -> None:
        """Raise when the database does not answer."""
        self.backend.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self.backend.close()

    # -- subscriptions ----------------------------------------------------------------------

    def activate(
        self, topic: str, callback: str, secret: str | None, lease_seconds: int, now: float
    ) -> Subscription:
        """Create the subscription, or replace its secret and lease (a verified re-subscribe)."""
        row = self.backend.execute(
            "INSERT INTO subscriptions (topic, callback, callback_host, secret, lease_seconds, "
            "expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (topic, callback) DO UPDATE SET secret = excluded.secret, "
            "lease_seconds = excluded.lease_seconds, expires_at = excluded.expires_at "
            f"RETURNING {_SUB_COLUMNS}",
            (
                topic,
                callback,
                host_label(callback),
                secret,
                lease_seconds,
                now + lease_seconds,
                now,
            ),
        ).fetchone()
        return _subscription(row)

    def apply_verified(self, changes: list[VerifiedChange], now: float) -> None:
        """Apply verified intents in one transaction."""
        with self.backend.transaction():
            for change in changes:
                if change.mode == "subscribe":
                    self.activate(
                        change.topic, change.callback, change.secret, change.lease_seconds, now
                    )
                else:
                    self.remove(change.topic, change.callback)

    def remove(self, topic: str, callback: str) -> bool:
        cur = self.backend.execute(
            "DELETE FROM subscriptions WHERE topic = ? AND callback = ?", (topic, callback)
        )
        return bool(cur.rowcount)

    def remove_by_id(self, subscription_id: int) -> bool:
        cur = self.backend.execute("DELETE FROM subscriptions WHERE id = ?", (subscription_id,))
        return bool(cur.rowcount)

    def subscription(self, subscription_id: int) -> Subscription | None:
        row = self.backend.execute(
            f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE id = ?", (subscription_id,)
        ).fetchone()
        return _subscription(row) if row else None

    def find_subscription(self, topic: str, callback: str) -> Subscription | None:
        row = self.backend.execute(
            f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE topic = ? AND callback = ?",
            (topic, callback),
        ).fetchone()
        return _subscription(row) if row else None

    def id_ranges(self, topic: str, now: float, batch_size: int) -> Iterator[tuple[int, int]]:
        """The topic's active subscription ids cut into ranges of ``batch_size`` subscriptions,
        one page at a time, so the first batch can go out before the last range is known."""
        after = 0
        while True:
            ids = self.backend.execute(
                "SELECT id FROM subscriptions WHERE topic = ? AND expires_at > ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (topic, now, after, batch_size),
            ).fetchall()
            if not ids:
                return
            yield ids[0][0], ids[-1][0]
            after = ids[-1][0]

    def due_in_range(
        self, topic: str, first_id: int, last_id: int, notification_id: int, now: float
    ) -> list[Subscription]:
        """Active subscriptions in the id range that have not yet had this notification."""
        rows = self.backend.execute(
            f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE topic = ? AND id BETWEEN ? AND ? "
            "AND expires_at > ? AND delivered_upto < ? ORDER BY id",
            (topic, first_id, last_id, now, notification_id),
        ).fetchall()
        return [_subscription(row) for row in rows]

    def mark_delivered(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Record (subscription id, notification id) deliveries; never moves backwards."""
        rows = [(nid, sid, nid) for sid, nid in pairs]
        if rows:
            with self.backend.transaction():
                self.backend.executemany(
                    "UPDATE subscriptions SET delivered_upto = ? "
                    "WHERE id = ? AND delivered_upto < ?",
                    rows,
                )

    def purge_expired(self, now: float) -> int:
        cur = self.backend.execute("DELETE FROM subscriptions WHERE expires_at <= ?", (now,))
        return cur.rowcount or 0

    def count_subscriptions(self, now: float) -> dict[str, int]:
        row = self.backend.execute(
            "SELECT COALESCE(SUM(CASE WHEN expires_at > ? THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN expires_at <= ? THEN 1 ELSE 0 END), 0) FROM subscriptions",
            (now, now),
        ).fetchone()
        return {"active": int(row[0]), "expired": int(row[1])}

    def count_for_topic(self, topic: str, now: float) -> int:
        row = self.backend.execute(
            "SELECT COUNT(*) FROM subscriptions WHERE topic = ? AND expires_at > ?", (topic, now)
        ).fetchone()
        return int(row[0])

    def count_for_host(self, callback_host: str, now: float) -> int:
        row = self.backend.execute(
            "SELECT COUNT(*) FROM subscriptions WHERE callback_host = ? AND expires_at > ?",
            (callback_host, now),
        ).fetchone()
        return int(row[0])

    def has_subscribers(self, topic: str, now: float) -> bool:
        row = self.backend.execute(
            "SELECT 1 FROM subscriptions WHERE topic = ? AND expires_at > ? LIMIT 1", (topic, now)
        ).fetchone()
        return row is not None

    def subscribed_topics(self, topics: Iterable[str], now: float) -> dict[str, SubscribedTopic]:
        """Which of ``topics`` have active subscriptions, with the span of their ids."""
        found: dict[str, SubscribedTopic] = {}
        names = sorted(set(topics))
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            rows = self.backend.execute(
                "SELECT topic, MIN(id), MAX(id), COUNT(*) FROM subscriptions "
                f"WHERE topic IN ({', '.join('?' * len(chunk))}) AND expires_at > ? "
                "GROUP BY topic",
                (*chunk, now),
            ).fetchall()
            for topic, first, last, count in rows:
                found[topic] = SubscribedTopic(topic, int(first), int(last), int(count))
        return found

    def topics_summary(self, limit: int = 50) -> list[TopicSummary]:
        """Topics with their active subscriptions and last fetch time, for the status page."""
        rows = self.backend.execute(
            "SELECT t.url, (SELECT COUNT(*) FROM subscriptions s WHERE s.topic = t.url), "
            "t.fetched_at FROM topics t ORDER BY t.fetched_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [TopicSummary(url=r[0], subscriptions=int(r[1]), fetched_at=r[2]) for r in rows]
