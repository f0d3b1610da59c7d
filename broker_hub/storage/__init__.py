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
    SUB_COLUMNS,
    FetchClaim,
    FinishedFetch,
    NewNotification,
    Notification,
    PingRecord,
    ProjectMark,
    SourceState,
    SubscribedTopic,
    Subscription,
    SubscriptionLimits,
    TopicState,
    TopicSummary,
    VerifiedChange,
    subscription_from_row,
)
from broker_hub.storage.sources import SourceQueries
from broker_hub.storage.subscribe import SubscriptionWrites
from broker_hub.storage.topics import TopicQueries

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
    "SubscriptionLimits",
    "TopicRow",
    "TopicState",
    "TopicSummary",
    "VerifiedChange",
]



class Storage(
    TopicQueries, NotificationQueries, SourceQueries, HealthQueries, SubscriptionWrites
):
    """The SQL implementation of :class:`broker_hub.storage.api.Store` (a topic's pings and
    fetches: :class:`TopicQueries`; notifications: :class:`NotificationQueries`; writing
    subscriptions under their limits: :class:`SubscriptionWrites`; sources, mirror health).
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
            f"SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = ?", (subscription_id,)
        ).fetchone()
        return subscription_from_row(row) if row else None

    def find_subscription(self, topic: str, callback: str) -> Subscription | None:
        row = self.backend.execute(
            f"SELECT {SUB_COLUMNS} FROM subscriptions WHERE topic = ? AND callback = ?",
            (topic, callback),
        ).fetchone()
        return subscription_from_row(row) if row else None

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
            f"SELECT {SUB_COLUMNS} FROM subscriptions WHERE topic = ? AND id BETWEEN ? AND ? "
            "AND expires_at > ? AND delivered_upto < ? ORDER BY id",
            (topic, first_id, last_id, now, notification_id),
        ).fetchall()
        return [subscription_from_row(row) for row in rows]

    def mark_delivered(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Record (subscription id, notification id) deliveries; never moves backwards.

        Rows are updated in subscription-id order, one row once (its newest notification):
        two deliverers recording overlapping subscriptions then lock them in the same order and
        cannot deadlock (in any other order PostgreSQL detected deadlocks between deliverers
        under ``bench.scale``, and the loser's batches were delivered again).
        """
        newest: dict[int, int] = {}
        for sid, nid in pairs:
            newest[sid] = max(nid, newest.get(sid, 0))
        rows = [(newest[sid], sid, newest[sid]) for sid in sorted(newest)]
        if rows:
            self.backend.retrying(
                lambda: self.backend.executemany(
                    "UPDATE subscriptions SET delivered_upto = ? "
                    "WHERE id = ? AND delivered_upto < ?",
                    rows,
                )
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

    def subscribed_topics(
        self, topics: Iterable[str], now: float, up_to: int
    ) -> dict[str, SubscribedTopic]:
        """Which of ``topics`` have active subscriptions: the first ``up_to`` of each (fewer
        when it has fewer), their count and the span of their ids.

        Each topic reads at most ``up_to`` index entries: counting every subscription of a
        10,000-subscriber topic took 5.5 ms against 0.5 ms (SQLite, in memory), on the way
        from ping to first delivery; 500 topics of 2 cost 4.2 ms against 2.7 ms."""
        found: dict[str, SubscribedTopic] = {}
        names = sorted(set(topics))
        for start in range(0, len(names), 100):  # SQLite allows 500 parts in a UNION
            chunk = names[start : start + 100]
            capped = " UNION ALL ".join(
                f"SELECT topic, id FROM (SELECT topic, id FROM subscriptions WHERE topic = ? "
                f"AND expires_at > ? ORDER BY id LIMIT ?) AS t{i}"
                for i in range(len(chunk))
            )
            rows = self.backend.execute(
                f"SELECT topic, MIN(id), MAX(id), COUNT(*) FROM ({capped}) AS capped "
                "GROUP BY topic",
                [value for topic in chunk for value in (topic, now, up_to)],
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
