"""Notification bodies, each with its per-topic sequence number (``X-Hub-Sequence``)."""

from __future__ import annotations

from broker_hub.storage.backends import Backend
from broker_hub.storage.records import NewNotification, Notification

_COLUMNS = "id, topic, content_type, body, pinged_at, sequence"


def _notification(row: tuple) -> Notification:
    return Notification(
        id=row[0],
        topic=row[1],
        content_type=row[2],
        body=bytes(row[3]),
        pinged_at=row[4],
        sequence=int(row[5] or 0),
    )


class NotificationQueries:
    """The ``notifications`` table's queries, mixed into :class:`broker_hub.storage.Storage`."""

    backend: Backend

    def add_notification(
        self,
        topic: str,
        content_type: str,
        body: bytes,
        pinged_at: float,
        now: float,
        *,
        key: str | None = None,
    ) -> Notification:
        """Store a notification with the topic's next sequence number, in one transaction.

        With ``key``, at most one notification per (topic, key) is ever stored: the one stored
        before is returned (a poll round repeated after a crash fans the same one out again, and
        the deliverer skips the subscriptions that already had it).
        """
        with self.backend.transaction():
            return self._insert(NewNotification(topic, content_type, body, key), pinged_at, now)

    def add_notifications(
        self, items: list[NewNotification], *, pinged_at: float, now: float
    ) -> list[Notification]:
        """Several notifications (of different topics) in one transaction."""
        if not items:
            return []
        with self.backend.transaction():
            return [self._insert(item, pinged_at, now) for item in items]

    def _insert(self, item: NewNotification, pinged_at: float, now: float) -> Notification:
        if item.key is not None:
            seen = self.backend.execute(
                f"SELECT {_COLUMNS} FROM notifications WHERE topic = ? AND dedupe_key = ?",
                (item.topic, item.key),
            ).fetchone()
            if seen is not None:
                return _notification(seen)
        sequence = self.backend.execute(
            "INSERT INTO topic_sequences (topic, last) VALUES (?, 1) "
            "ON CONFLICT (topic) DO UPDATE SET last = topic_sequences.last + 1 "
            "RETURNING last",
            (item.topic,),
        ).fetchone()[0]
        row = self.backend.execute(
            "INSERT INTO notifications (topic, content_type, body, pinged_at, created_at, "
            f"sequence, dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
            (
                item.topic,
                item.content_type,
                item.body,
                pinged_at if item.pinged_at is None else item.pinged_at,
                now,
                sequence,
                item.key,
            ),
        ).fetchone()
        return _notification(row)

    def notification(self, notification_id: int) -> Notification | None:
        row = self.backend.execute(
            f"SELECT {_COLUMNS} FROM notifications WHERE id = ?", (notification_id,)
        ).fetchone()
        return _notification(row) if row else None

    def notifications_after(self, topic: str, sequence: int, limit: int) -> list[Notification]:
        """The topic's notifications with a sequence number above ``sequence``, oldest first."""
        rows = self.backend.execute(
            f"SELECT {_COLUMNS} FROM notifications WHERE topic = ? AND sequence > ? "
            "ORDER BY sequence LIMIT ?",
            (topic, sequence, limit),
        ).fetchall()
        return [_notification(row) for row in rows]

    def oldest_sequence(self, topic: str) -> int | None:
        """The lowest sequence number still stored for the topic (None: none stored)."""
        row = self.backend.execute(
            "SELECT MIN(sequence) FROM notifications WHERE topic = ?", (topic,)
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def delete_notifications_before(self, created_before: float) -> int:
        cur = self.backend.execute(
            "DELETE FROM notifications WHERE created_at < ?", (created_before,)
        )
        return cur.rowcount or 0
