"""The agent's durable state: one small SQLite file (subscriptions, inbox, queue, cursors).

Every write is one transaction, committed before the callback answers the hub, so a kill -9 at
any moment loses nothing that was acknowledged.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    topic TEXT PRIMARY KEY, token TEXT UNIQUE NOT NULL, secret TEXT NOT NULL,
    wanted TEXT NOT NULL, requested_at REAL, verified_at REAL, expires_at REAL);
CREATE TABLE IF NOT EXISTS deliveries (delivery_id TEXT PRIMARY KEY, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, sequence INTEGER,
    received_at REAL NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (
    topic TEXT PRIMARY KEY, until_serial INTEGER, sequence INTEGER, catchup_since INTEGER);
CREATE TABLE IF NOT EXISTS pending (
    normalized TEXT PRIMARY KEY, project TEXT NOT NULL, serial INTEGER, filename TEXT,
    new_project INTEGER NOT NULL DEFAULT 0, first_seen REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL DEFAULT 0, error TEXT);
CREATE TABLE IF NOT EXISTS failed (
    normalized TEXT PRIMARY KEY, project TEXT NOT NULL, serial INTEGER, error TEXT,
    failed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


@dataclass(frozen=True)
class Subscription:
    topic: str
    token: str
    secret: str
    wanted: str  # "subscribe" or "unsubscribe"
    requested_at: float | None
    verified_at: float | None
    expires_at: float | None


@dataclass(frozen=True)
class Change:
    """A project to sync: its newest notified serial and file, and when it was first pushed.

    ``filename`` is the newest file added (checked on the mirror after the sync); ``""`` when the
    newest entry removed something (nothing to check), None when the entries name no file.
    """

    normalized: str
    project: str
    serial: int | None
    filename: str | None
    new_project: bool
    first_seen: float
    attempts: int = 0


class State:
    """The SQLite file, shared by the callback threads and the agent's loops (one lock)."""

    def __init__(self, path: str):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- subscriptions ---------------------------------------------------------------------

    def want_topics(self, topics: Iterable[str]) -> None:
        """Subscribe to exactly ``topics`` (new ones get a token and a secret); drop the others."""
        wanted = set(topics)
        with self._tx() as db:
            for topic in wanted:
                db.execute(
                    "INSERT INTO subscriptions (topic, token, secret, wanted) VALUES (?, ?, ?, "
                    "'subscribe') ON CONFLICT (topic) DO UPDATE SET wanted = 'subscribe'",
                    (topic, secrets.token_urlsafe(18), secrets.token_urlsafe(32)),
                )
            for (topic,) in db.execute("SELECT topic FROM subscriptions").fetchall():
                if topic not in wanted:
                    db.execute("UPDATE subscriptions SET wanted = 'unsubscribe', requested_at = "
                               "NULL WHERE topic = ?", (topic,))

    def subscriptions(self) -> list[Subscription]:
        with self._lock:
            rows = self._db.execute(
                "SELECT topic, token, secret, wanted, requested_at, verified_at, expires_at "
                "FROM subscriptions ORDER BY topic").fetchall()
        return [Subscription(*row) for row in rows]

    def by_token(self, token: str) -> Subscription | None:
        return next((s for s in self.subscriptions() if s.token == token), None)

    def requested(self, topic: str, now: float) -> None:
        with self._tx() as db:
            db.execute("UPDATE subscriptions SET requested_at = ? WHERE topic = ?", (now, topic))

    def verified(self, topic: str, mode: str, lease_seconds: int | None, now: float) -> None:
        """The hub verified our request: record the lease, or forget an ended subscription."""
        with self._tx() as db:
            if mode == "unsubscribe":
                db.execute("DELETE FROM subscriptions WHERE topic = ? AND wanted = 'unsubscribe'",
                           (topic,))
                db.execute("DELETE FROM cursors WHERE topic = ?", (topic,))
                return
            expires = now + lease_seconds if lease_seconds else None
            db.execute("UPDATE subscriptions SET verified_at = ?, expires_at = ? WHERE topic = ?",
                       (now, expires, topic))

    # --- the inbox: what the callback accepted, before it is read --------------------------

    def accept(self, delivery_id: str | None, topic: str, sequence: int | None, body: bytes,
               now: float) -> bool:
        """Queue a push durably; False (nothing stored) for a delivery id already seen."""
        with self._tx() as db:
            if delivery_id is not None:
                seen = db.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?)",
                                  (delivery_id, now)).rowcount
                if not seen:
                    return False
            db.execute("INSERT INTO inbox (topic, sequence, received_at, body) VALUES (?,?,?,?)",
                       (topic, sequence, now, body))
        return True

    def inbox(self, limit: int = 100) -> list[tuple[int, str, int | None, float, bytes]]:
        with self._lock:
            return self._db.execute("SELECT id, topic, sequence, received_at, body FROM inbox "
                                    "ORDER BY id LIMIT ?", (limit,)).fetchall()

    def read_inbox_row(self, row_id: int, topic: str, changes: list[Change], *,
                       until: int | None, sequence: int | None, gap_since: int | None) -> None:
        """One pushed notification read: its changes queued, the cursor moved, the row gone."""
        with self._tx() as db:
            _enqueue(db, changes)
            db.execute("INSERT OR IGNORE INTO cursors (topic) VALUES (?)", (topic,))
            db.execute("UPDATE cursors SET until_serial = max(coalesce(until_serial, ?), ?), "
                       "sequence = max(coalesce(sequence, ?), ?) WHERE topic = ?",
                       (until, until, sequence, sequence, topic))
            if gap_since is not None:
                db.execute("UPDATE cursors SET catchup_since = min(coalesce(catchup_since, ?), ?) "
                           "WHERE topic = ?", (gap_since, gap_since, topic))
            db.execute("DELETE FROM inbox WHERE id = ?", (row_id,))

    def drop_inbox_row(self, row_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM inbox WHERE id = ?", (row_id,))

    def prune_deliveries(self, before: float) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM deliveries WHERE received_at < ?", (before,))

    # --- cursors and catch-up ------------------------------------------------------------

    def cursor(self, topic: str) -> tuple[int | None, int | None]:
        with self._lock:
            row = self._db.execute("SELECT until_serial, sequence FROM cursors WHERE topic = ?",
                                   (topic,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def catch_up_all(self) -> None:
        """After a restart: read what every topic got since its last serial."""
        with self._tx() as db:
            db.execute("UPDATE cursors SET catchup_since = until_serial "
                       "WHERE until_serial IS NOT NULL AND catchup_since IS NULL")

    def catchups(self) -> list[tuple[str, int]]:
        with self._lock:
            return self._db.execute("SELECT topic, catchup_since FROM cursors "
                                    "WHERE catchup_since IS NOT NULL").fetchall()

    def caught_up(self, topic: str, changes: list[Change], until: int | None, done: bool) -> None:
        """A catch-up page read: its changes queued; the catch-up moves on or ends."""
        with self._tx() as db:
            _enqueue(db, changes)
            if until is not None:
                db.execute("UPDATE cursors SET until_serial = max(coalesce(until_serial, ?), ?) "
                           "WHERE topic = ?", (until, until, topic))
            if done:
                db.execute("UPDATE cursors SET catchup_since = NULL WHERE topic = ?", (topic,))
            elif until is not None:
                db.execute("UPDATE cursors SET catchup_since = ? WHERE topic = ?", (until, topic))

    def need_full_sync(self, topic: str) -> None:
        """The hub no longer holds what we missed: a full sync, and start the chain afresh."""
        with self._tx() as db:
            db.execute("DELETE FROM cursors WHERE topic = ?", (topic,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('full_sync', ?)", (topic,))

    # --- the sync queue --------------------------------------------------------------------

    def due(self, now: float, limit: int = 200) -> list[Change]:
        with self._lock:
            rows = self._db.execute(
                "SELECT normalized, project, serial, filename, new_project, first_seen, attempts "
                "FROM pending WHERE next_attempt <= ? ORDER BY first_seen LIMIT ?",
                (now, limit)).fetchall()
        return [Change(n, p, s if s is not None and s >= 0 else None, f, bool(new), fs, a)
                for n, p, s, f, new, fs, a in rows]

    def next_due(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT min(max(next_attempt, first_seen)) FROM pending"
                                   ).fetchone()
        return row[0]

    def synced(self, change: Change) -> None:
        """Done, unless a newer serial for the project arrived while syncing."""
        with self._tx() as db:
            db.execute("DELETE FROM pending WHERE normalized = ? AND coalesce(serial, -1) <= ?",
                       (change.normalized, change.serial if change.serial is not None else -1))
            db.execute("UPDATE pending SET attempts = 0, next_attempt = 0 WHERE normalized = ?",
                       (change.normalized,))

    def retry_later(self, change: Change, error: str, at: float, max_attempts: int) -> bool:
        """Count a failed attempt; past ``max_attempts`` the change moves to ``failed`` (True)."""
        with self._tx() as db:
            if change.attempts + 1 >= max_attempts:
                db.execute("INSERT OR REPLACE INTO failed VALUES (?, ?, ?, ?, ?)",
                           (change.normalized, change.project, change.serial, error, at))
                db.execute("DELETE FROM pending WHERE normalized = ?", (change.normalized,))
                return True
            db.execute("UPDATE pending SET attempts = attempts + 1, next_attempt = ?, error = ? "
                       "WHERE normalized = ?", (at, error, change.normalized))
        return False

    def enqueue(self, changes: list[Change]) -> None:
        with self._tx() as db:
            _enqueue(db, changes)

    # --- meta and status -------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: str | None) -> None:
        with self._tx() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def count(self, table: str) -> int:
        assert table in ("inbox", "pending", "failed", "deliveries", "subscriptions")
        with self._lock:
            return self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _enqueue(db: sqlite3.Connection, changes: list[Change]) -> None:
    for c in changes:
        db.execute(
            "INSERT INTO pending (normalized, project, serial, filename, new_project, first_seen) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (normalized) DO UPDATE SET "
            "project = excluded.project, new_project = max(new_project, excluded.new_project), "
            "filename = CASE WHEN coalesce(excluded.serial, -1) < coalesce(serial, -1) "
            "  THEN filename "
            "  WHEN excluded.filename IS NULL THEN filename "
            "  WHEN excluded.filename = '' THEN NULL ELSE excluded.filename END, "
            "serial = max(coalesce(serial, -1), coalesce(excluded.serial, -1)), "
            "first_seen = min(first_seen, excluded.first_seen), attempts = 0, next_attempt = 0",
            (c.normalized, c.project, c.serial, c.filename if c.filename else None,
             int(c.new_project), c.first_seen),
        )
        db.execute("DELETE FROM failed WHERE normalized = ?", (c.normalized,))
