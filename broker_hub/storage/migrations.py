"""The versioned schema: an ordered list of steps, applied once each, recorded in
``schema_version``. The same steps run on SQLite and PostgreSQL (``{pk}``, ``{blob}``,
``{real}`` are filled in per dialect, as in :mod:`broker_hub.storage.schema`).

Adding a step: append ``Step(<next number>, "<what it does>", [<SQL>, ...])`` to ``STEPS``.
Never edit or reorder a step that has shipped. Write SQL both dialects accept (``CREATE
TABLE IF NOT EXISTS``, ``CREATE INDEX IF NOT EXISTS``; a new column through
:func:`add_column_step`). ``broker-hub migrate`` applies what is missing; every role also
applies it at start (``Storage.create_schema``), so a forgotten migrate step cannot break a
deployment, and two processes migrating at once are serialized by a lock.

Step 1 is the schema as ``create_schema`` made it before versioning (``schema.TABLES``, the
columns added since (``ADDED_COLUMNS``), then ``LATE_INDEXES``): on a database made by an
earlier version its ``IF NOT EXISTS`` statements create only what is missing and the added
columns are created when absent. ``schema.py`` is frozen as that baseline: a new table,
column or index is a new step here, not an edit there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from broker_hub.storage.backends import Backend
from broker_hub.storage.schema import (
    ADDED_COLUMNS,
    COLUMNS_QUERY,
    DIALECTS,
    LATE_INDEXES,
    TABLES,
    add_column,
)

Action = Callable[[Backend], None]


@dataclass(frozen=True)
class Step:
    version: int
    description: str
    sql: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)  # for what plain SQL cannot say


def add_column_step(table: str, column: str, definition: str) -> Action:
    """An action adding ``column`` to ``table`` unless it is there already."""

    def run(backend: Backend) -> None:
        present = backend.execute(COLUMNS_QUERY[backend.dialect], (table,)).fetchall()
        if column not in {row[0] for row in present}:
            backend.execute(add_column(backend.dialect, table, column, definition))

    return run


def _sql_step(statement: str) -> Action:
    """A statement run after the step's actions (e.g. an index on an added column)."""

    def run(backend: Backend) -> None:
        backend.execute(statement.format(**DIALECTS[backend.dialect]))

    return run


STEPS: list[Step] = [
    Step(1, "the schema of broker-hub before versioning", list(TABLES),
         [*(add_column_step(*added) for added in ADDED_COLUMNS),
          *(_sql_step(statement) for statement in LATE_INDEXES)]),
    Step(2, "mirror_health for /status and the breaker; notifications by topic for backlog", [
        """CREATE TABLE IF NOT EXISTS mirror_health (
            mirror TEXT PRIMARY KEY,
            consecutive_failures BIGINT NOT NULL DEFAULT 0,
            last_status INTEGER,
            last_error_class TEXT,
            last_failure_at {real},
            last_success_at {real},
            updated_at {real} NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS notifications_topic_id ON notifications (topic, id)",
    ]),
]

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
    "description TEXT NOT NULL, applied_at {real} NOT NULL)"
)


def latest_version() -> int:
    return STEPS[-1].version


def current_version(backend: Backend) -> int:
    """The newest step applied (0: none, or no ``schema_version`` table yet)."""
    backend.execute(_VERSION_TABLE.format(**DIALECTS[backend.dialect]))
    row = backend.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(backend: Backend, now: float) -> list[int]:
    """Apply every missing step, each in its own transaction; return the versions applied."""
    _check_order()
    dialect = backend.dialect
    backend.execute(_VERSION_TABLE.format(**DIALECTS[dialect]))
    applied = []
    for step in STEPS:
        with backend.transaction():
            if dialect == "postgresql":  # one migrator at a time (SQLite: BEGIN IMMEDIATE)
                backend.execute("LOCK TABLE schema_version IN EXCLUSIVE MODE")
            done = backend.execute(
                "SELECT 1 FROM schema_version WHERE version = ?", (step.version,)
            ).fetchone()
            if done:
                continue
            for statement in step.sql:
                backend.execute(statement.format(**DIALECTS[dialect]))
            for action in step.actions:
                action(backend)
            backend.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (step.version, step.description, now),
            )
            applied.append(step.version)
    return applied


def _check_order() -> None:
    versions = [step.version for step in STEPS]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration steps must be numbered 1, 2, 3...: {versions}")
