"""What operators look at: mirror health, backlog ages, fetch lag, the topics shown on /status.

The ``mirror_health`` table (one row per mirror host[:port], written by the deliverer through
:meth:`HealthQueries.record_mirror_results`) holds the last outcome of each mirror: no URL,
no response body, only a status code and an error class.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from broker_hub.storage.backends import Backend


@dataclass(frozen=True)
class MirrorHealth:
    mirror: str
    subscriptions: int
    consecutive_failures: int
    last_status: int | None
    last_error_class: str | None
    last_failure_at: float | None
    last_success_at: float | None


@dataclass(frozen=True)
class TopicRow:
    url: str
    subscriptions: int
    fetched_at: float | None
    pending_pings: int  # pings whose fetch has not finished


class MirrorResult(NamedTuple):
    """One delivery outcome, as the deliverer reports it (a named tuple: one per delivery)."""

    mirror: str
    ok: bool
    status: int | None = None
    error_class: str | None = None


class HealthQueries:
    """Operator-facing queries, mixed into :class:`broker_hub.storage.Storage`."""

    backend: Backend

    def record_mirror_results(self, results: Iterable[MirrorResult], now: float) -> None:
        """Fold delivery outcomes into ``mirror_health``, in order, in one transaction.

        Folded per mirror first (its last success, then the failures after it): at most two
        statements per mirror, in mirror order. One upsert per delivery into the same row was
        most of a deliverer's CPU per delivery, and serialized several deliverers on that row.
        """
        folded: dict[str, tuple[MirrorResult | None, list[MirrorResult]]] = {}
        for r in results:
            last_ok, failures = folded.get(r.mirror, (None, []))
            folded[r.mirror] = (r, []) if r.ok else (last_ok, [*failures, r])
        if not folded:
            return

        def write() -> None:
            for mirror in sorted(folded):
                last_ok, failures = folded[mirror]
                if last_ok is not None:
                    self.backend.execute(
                        "INSERT INTO mirror_health (mirror, consecutive_failures, last_status, "
                        "last_success_at, updated_at) VALUES (?, 0, ?, ?, ?) "
                        "ON CONFLICT (mirror) DO UPDATE SET consecutive_failures = 0, "
                        "last_status = excluded.last_status, "
                        "last_success_at = excluded.last_success_at, "
                        "updated_at = excluded.updated_at",
                        (mirror, last_ok.status, now, now),
                    )
                if failures:
                    last = failures[-1]
                    self.backend.execute(
                        "INSERT INTO mirror_health (mirror, consecutive_failures, last_status, "
                        "last_error_class, last_failure_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (mirror) DO UPDATE SET consecutive_failures = "
                        "mirror_health.consecutive_failures + excluded.consecutive_failures, "
                        "last_status = excluded.last_status, "
                        "last_error_class = excluded.last_error_class, "
                        "last_failure_at = excluded.last_failure_at, "
                        "updated_at = excluded.updated_at",
                        (mirror, len(failures), last.status, last.error_class, now, now),
                    )

        self.backend.retrying(write)

    def mirrors_health(self, now: float, limit: int) -> list[MirrorHealth]:
        """Mirrors with active subscriptions, failing ones first, then by subscriptions;
        at most ``limit`` (the bounded set metrics label and /status lists)."""
        rows = self.backend.execute(
            "SELECT s.callback_host, COUNT(*), COALESCE(MAX(h.consecutive_failures), 0), "
            "MAX(h.last_status), MAX(h.last_error_class), MAX(h.last_failure_at), "
            "MAX(h.last_success_at) FROM subscriptions s "
            "LEFT JOIN mirror_health h ON h.mirror = s.callback_host "
            "WHERE s.expires_at > ? GROUP BY s.callback_host "
            "ORDER BY COALESCE(MAX(h.consecutive_failures), 0) > 0 DESC, COUNT(*) DESC, "
            "s.callback_host LIMIT ?",
            (now, limit),
        ).fetchall()
        return [MirrorHealth(r[0], int(r[1]), int(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    def recent_failures(self, now: float, limit: int = 20) -> list[MirrorHealth]:
        """The last failure of each mirror that still has subscriptions, newest first."""
        rows = self.backend.execute(
            "SELECT h.mirror, (SELECT COUNT(*) FROM subscriptions s WHERE "
            "s.callback_host = h.mirror AND s.expires_at > ?), h.consecutive_failures, "
            "h.last_status, h.last_error_class, h.last_failure_at, h.last_success_at "
            "FROM mirror_health h WHERE h.last_failure_at IS NOT NULL AND EXISTS "
            "(SELECT 1 FROM subscriptions s WHERE s.callback_host = h.mirror "
            "AND s.expires_at > ?) ORDER BY h.last_failure_at DESC LIMIT ?",
            (now, now, limit),
        ).fetchall()
        return [MirrorHealth(r[0], int(r[1]), int(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    def purge_mirror_health(self) -> int:
        """Forget mirrors that no longer have any subscription."""
        cur = self.backend.execute(
            "DELETE FROM mirror_health WHERE NOT EXISTS "
            "(SELECT 1 FROM subscriptions s WHERE s.callback_host = mirror_health.mirror)"
        )
        return cur.rowcount or 0

    def backlog_oldest(self, now: float) -> dict[str, float]:
        """mirror -> creation time of its oldest notification not yet delivered to one of
        its active subscriptions (a notification older than the subscription does not count)."""
        rows = self.backend.execute(
            "SELECT s.callback_host, MIN(n.created_at) FROM subscriptions s "
            "JOIN notifications n ON n.topic = s.topic AND n.id > s.delivered_upto "
            "AND n.created_at >= s.created_at WHERE s.expires_at > ? GROUP BY s.callback_host",
            (now,),
        ).fetchall()
        return {r[0]: float(r[1]) for r in rows}

    def fetch_pending_since(self) -> float | None:
        """When the oldest ping still waiting for its fetch was queued (None: none waits)."""
        row = self.backend.execute(
            "SELECT MIN(queued_at) FROM topics WHERE ping_seq > fetched_seq "
            "AND queued_at IS NOT NULL"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def topics_status(self, now: float, limit: int = 50) -> list[TopicRow]:
        """Topics with an active subscription (others are not shown anywhere), latest first."""
        rows = self.backend.execute(
            "SELECT t.url, COUNT(s.id), t.fetched_at, t.ping_seq - t.fetched_seq "
            "FROM topics t JOIN subscriptions s ON s.topic = t.url AND s.expires_at > ? "
            "GROUP BY t.url, t.fetched_at, t.ping_seq, t.fetched_seq "
            "ORDER BY t.fetched_at DESC LIMIT ?",
            (now, limit),
        ).fetchall()
        return [TopicRow(r[0], int(r[1]), r[2], max(0, int(r[3]))) for r in rows]

    def count_active_topics(self, now: float) -> int:
        row = self.backend.execute(
            "SELECT COUNT(DISTINCT topic) FROM subscriptions WHERE expires_at > ?", (now,)
        ).fetchone()
        return int(row[0])
