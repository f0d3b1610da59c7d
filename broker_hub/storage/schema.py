"""The tables, written once for both dialects (``{pk}``, ``{blob}``, ``{real}`` per dialect)."""

from __future__ import annotations

TABLES = [
    """CREATE TABLE IF NOT EXISTS topics (
        url TEXT PRIMARY KEY,
        ping_seq BIGINT NOT NULL DEFAULT 0,
        fetched_seq BIGINT NOT NULL DEFAULT 0,
        queued_seq BIGINT NOT NULL DEFAULT 0,
        claimed_seq BIGINT NOT NULL DEFAULT 0,
        queued_at {real},
        etag TEXT,
        last_modified TEXT,
        content_hash TEXT,
        content_type TEXT,
        entries TEXT,
        fetched_at {real}
    )""",
    """CREATE TABLE IF NOT EXISTS subscriptions (
        id {pk},
        topic TEXT NOT NULL,
        callback TEXT NOT NULL,
        callback_host TEXT NOT NULL,
        secret TEXT,
        lease_seconds BIGINT NOT NULL,
        expires_at {real} NOT NULL,
        created_at {real} NOT NULL,
        delivered_upto BIGINT NOT NULL DEFAULT 0,
        UNIQUE (topic, callback)
    )""",
    "CREATE INDEX IF NOT EXISTS subscriptions_topic_id ON subscriptions (topic, id)",
    "CREATE INDEX IF NOT EXISTS subscriptions_expires ON subscriptions (expires_at)",
    "CREATE INDEX IF NOT EXISTS subscriptions_host ON subscriptions (callback_host)",
    """CREATE TABLE IF NOT EXISTS notifications (
        id {pk},
        topic TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body {blob} NOT NULL,
        pinged_at {real} NOT NULL,
        created_at {real} NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS notifications_created ON notifications (created_at)",
]

DIALECTS = {
    "sqlite": {"pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB", "real": "REAL"},
    "postgresql": {"pk": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA", "real": "DOUBLE PRECISION"},
}


def statements(dialect: str) -> list[str]:
    return [table.format(**DIALECTS[dialect]) for table in TABLES]
