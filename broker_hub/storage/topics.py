"""A topic's pings and fetches: counting and coalescing pings, the fetch lease, fetch state."""

from __future__ import annotations

from broker_hub.storage.backends import Backend
from broker_hub.storage.records import FetchClaim, FinishedFetch, PingRecord, TopicState

_TOPIC_COLUMNS = (
    "url, ping_seq, fetched_seq, etag, last_modified, content_hash, content_type, entries"
)


class TopicQueries:
    """The ``topics`` table's queries, mixed into :class:`broker_hub.storage.Storage`."""

    backend: Backend

    def record_ping(self, topic: str, now: float = 0.0) -> PingRecord:
        """Count a ping for ``topic``, atomically deciding whether it needs a fetch message.

        It does not when a message queued earlier has not been claimed by a fetcher yet:
        that fetch will read the current ``ping_seq`` when it starts, so it covers this ping.
        """
        row = self.backend.execute(
            "INSERT INTO topics (url, ping_seq, queued_seq, queued_at) VALUES (?, 1, 1, ?) "
            "ON CONFLICT (url) DO UPDATE SET ping_seq = topics.ping_seq + 1, "
            "queued_seq = CASE WHEN topics.queued_seq > topics.claimed_seq "
            "THEN topics.queued_seq ELSE topics.ping_seq + 1 END, "
            "queued_at = CASE WHEN topics.queued_seq > topics.claimed_seq "
            "THEN topics.queued_at ELSE excluded.queued_at END "
            "RETURNING ping_seq, queued_seq",
            (topic, now),
        ).fetchone()
        seq = int(row[0])
        return PingRecord(seq, int(row[1]) == seq)

    def unqueue(self, topic: str, seq: int) -> None:
        """The fetch message for ping ``seq`` could not be published: let the next ping queue."""
        self.backend.execute(
            "UPDATE topics SET queued_seq = claimed_seq WHERE url = ? AND queued_seq = ?",
            (topic, seq),
        )

    def claim_fetch(
        self, topic: str, now: float, lease: float, *, force: bool = False
    ) -> FetchClaim:
        """A fetch starts: it covers every ping counted so far, and holds the topic's fetch
        lease for ``lease`` seconds, so that no other fetcher diffs the same change at the
        same time (which would notify it twice). Busy while another fetcher holds the lease,
        unless ``force`` (a redelivered message: its fetcher most likely died holding it)."""
        until = now + lease
        row = self.backend.execute(
            "UPDATE topics SET claimed_seq = ping_seq, fetch_until = ? "
            "WHERE url = ? AND (fetch_until <= ? OR ?) RETURNING claimed_seq",
            (until, topic, now, force),
        ).fetchone()
        if row is not None:
            return FetchClaim(int(row[0]), until)
        held = self.backend.execute(
            "SELECT fetch_until FROM topics WHERE url = ?", (topic,)
        ).fetchone()
        if held is None:
            return FetchClaim(None, 0.0)
        return FetchClaim(None, float(held[0]), busy=True)

    def release_fetch(self, topic: str, until: float) -> None:
        """The fetch that took the lease ending at ``until`` is over (a lease that expired and
        went to another fetcher stays theirs)."""
        self.backend.execute(
            "UPDATE topics SET fetch_until = 0 WHERE url = ? AND fetch_until = ?", (topic, until)
        )

    def stale_queued(self, queued_before: float) -> list[tuple[str, int, float]]:
        """(topic, seq, queued_at) of fetches queued long ago and still not claimed: a web
        process died between counting a ping and publishing its message."""
        rows = self.backend.execute(
            "SELECT url, queued_seq, queued_at FROM topics "
            "WHERE queued_seq > claimed_seq AND queued_at < ?",
            (queued_before,),
        ).fetchall()
        return [(r[0], int(r[1]), float(r[2])) for r in rows]

    def touch_queued(self, topic: str, now: float) -> None:
        self.backend.execute("UPDATE topics SET queued_at = ? WHERE url = ?", (now, topic))

    def topic_state(self, topic: str) -> TopicState | None:
        row = self.backend.execute(
            f"SELECT {_TOPIC_COLUMNS} FROM topics WHERE url = ?", (topic,)
        ).fetchone()
        if row is None:
            return None
        return TopicState(
            url=row[0],
            ping_seq=row[1],
            fetched_seq=row[2],
            etag=row[3],
            last_modified=row[4],
            content_hash=row[5],
            content_type=row[6],
            entries=row[7],
        )

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
    ) -> None:
        """Record the outcome of a fetch that covered pings up to ``fetched_seq``."""
        self.backend.execute(
            "UPDATE topics SET "
            "fetched_seq = CASE WHEN fetched_seq > ? THEN fetched_seq ELSE ? END, "
            "etag = ?, last_modified = ?, content_hash = ?, content_type = ?, entries = ?, "
            "fetched_at = ? WHERE url = ?",
            (
                fetched_seq,
                fetched_seq,
                etag,
                last_modified,
                content_hash,
                content_type,
                entries,
                now,
                topic,
            ),
        )

    def finish_fetches(self, done: list[FinishedFetch], now: float) -> None:
        """Record several fetches and release their leases, in one transaction."""
        if not done:
            return
        with self.backend.transaction():
            for f in done:
                if f.content_hash is None:
                    self.mark_fetched(f.topic, f.fetched_seq)
                else:
                    self.save_fetch(
                        f.topic, fetched_seq=f.fetched_seq, etag=f.etag,
                        last_modified=f.last_modified, content_hash=f.content_hash,
                        content_type=f.content_type, entries=f.entries, now=now,
                    )  # fmt: skip
                if f.lease_until:
                    self.release_fetch(f.topic, f.lease_until)

    def mark_fetched(self, topic: str, fetched_seq: int) -> None:
        """Record that pings up to ``fetched_seq`` are covered, keeping the content state."""
        self.backend.execute(
            "UPDATE topics SET fetched_seq = ? WHERE url = ? AND fetched_seq < ?",
            (fetched_seq, topic, fetched_seq),
        )
