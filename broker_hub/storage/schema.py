"""The tables, written once for both dialects (``{pk}``, ``{blob}``, ``{real}`` per dialect)."""

from __future__ import annotations

TABLES = [
    """CREATE TABLE IF NOT EXISTS topics (
        url TEXT PRIMARY KEY,
        ping_seq BIGINT NOT NULL DEFAULT 0,
        fetched_seq BIGINT NOT NULL DEFAULT 0,
        queued_seq BIGINT NOT NULL DEFAULT 0,
        claimed_seq BIGINT NOT NULL DEFAULT 0,
        fetch_until {real} NOT NULL DEFAULT 0,
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
    """CREATE TABLE IF NOT EXISTS sources (
        name TEXT PRIMARY KEY,
        last_serial BIGINT,
        retained_from BIGINT,
        lease_holder TEXT,
        lease_until {real} NOT NULL DEFAULT 0,
        caught_up_at {real},
        failing_since {real},
        last_error TEXT,
        rss_state TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS source_entries (
        source TEXT NOT NULL,
        serial BIGINT NOT NULL,
        project TEXT NOT NULL,
        entry TEXT NOT NULL,
        created_at {real} NOT NULL,
        PRIMARY KEY (source, serial)
    )""",
    "CREATE INDEX IF NOT EXISTS source_entries_project ON source_entries (source, project, serial)",
    "CREATE INDEX IF NOT EXISTS source_entries_created ON source_entries (created_at)",
    """CREATE TABLE IF NOT EXISTS source_projects (
        source TEXT NOT NULL,
        project TEXT NOT NULL,
        last_serial BIGINT NOT NULL,
        notified_until BIGINT,
        PRIMARY KEY (source, project)
    )""",
    """CREATE TABLE IF NOT EXISTS topic_sequences (
        topic TEXT PRIMARY KEY,
        last BIGINT NOT NULL
    )""",
]

# Indexes on columns added after the first release (created once the columns exist).
LATE_INDEXES = [
    "CREATE INDEX IF NOT EXISTS notifications_topic_seq ON notifications (topic, sequence)",
    "CREATE INDEX IF NOT EXISTS notifications_topic_key ON notifications (topic, dedupe_key)",
]

# Columns added after a table was first released: create_schema adds those an older
# database lacks (table, column, definition).
ADDED_COLUMNS = [
    ("topics", "fetch_until", "{real} NOT NULL DEFAULT 0"),
    ("notifications", "sequence", "BIGINT NOT NULL DEFAULT 0"),
    ("notifications", "dedupe_key", "TEXT"),
]

# The names of a table's columns (one parameter: the table).
COLUMNS_QUERY = {
    "sqlite": "SELECT name FROM pragma_table_info(?)",
    "postgresql": "SELECT column_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = ?",
}

DIALECTS = {
    "sqlite": {"pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB", "real": "REAL"},
    "postgresql": {"pk": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA", "real": "DOUBLE PRECISION"},
}


def statements(dialect: str) -> list[str]:
    return [table.format(**DIALECTS[dialect]) for table in TABLES]


def add_column(dialect: str, table: str, column: str, definition: str) -> str:
    if_missing = "IF NOT EXISTS " if dialect == "postgresql" else ""
    return f"ALTER TABLE {table} ADD COLUMN {if_missing}{column} " + definition.format(
        **DIALECTS[dialect]
    )
