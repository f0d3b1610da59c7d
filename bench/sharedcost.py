"""What the shared parts cost per delivery: RabbitMQ messages and bytes, PostgreSQL work.

- :class:`Tap`: a passive copy of what the hub publishes. An extra queue bound to the hub's
  exchange with the routing keys of its work queues (``fetch``, ``verify``, ``deliver``)
  receives a copy of every message the hub routes there; after a step it is drained and the
  messages and body bytes per routing key are counted. Nothing consumes it during the step,
  so it costs the broker one more enqueue per message and no consumer time.
- :func:`pg_counters`: ``pg_stat_database`` of the hub's database (transactions, rows read,
  written, blocks) whose difference over a step, divided by the deliveries, is the database
  cost per delivery; :func:`pg_sizes` the table sizes (``pg_total_relation_size``).
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from kombu import Connection, Exchange, Queue

KEYS = ("fetch", "verify", "deliver")


class Tap:
    def __init__(self, rabbit_url: str, namespace: str):
        self.name = f"{namespace}.bench-tap"
        self.conn = Connection(rabbit_url, connect_timeout=5)
        self.channel = self.conn.channel()
        exchange = Exchange(namespace, type="direct", durable=True)
        self.queues = [Queue(self.name, exchange=exchange, routing_key=key, durable=False,
                             auto_delete=False) for key in KEYS]
        for queue in self.queues:
            queue(self.channel).declare()

    def drain(self, limit: int = 2_000_000, timeout: float = 120.0) -> dict[str, Any]:
        """Count (and remove) what the tap holds: messages and body bytes per routing key,
        and the largest deliver message (whose ``notification_id`` shows no body rides along)."""
        queue = self.queues[0](self.channel)
        out: dict[str, Any] = {k: {"messages": 0, "bytes": 0} for k in KEYS}
        largest: tuple[int, str] = (0, "")
        deadline = time.monotonic() + timeout
        for _ in range(limit):
            message = queue.get(no_ack=True)
            if message is None or time.monotonic() > deadline:
                break
            key = message.delivery_info.get("routing_key", "?")
            body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
            rec = out.setdefault(key, {"messages": 0, "bytes": 0})
            rec["messages"] += 1
            rec["bytes"] += len(body)
            if key == "deliver" and len(body) > largest[0]:
                largest = (len(body), body.decode("utf-8", "replace"))
        if largest[1]:
            with contextlib.suppress(ValueError):
                out["deliver_example"] = json.loads(largest[1])
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.queue_delete(self.name)
        with contextlib.suppress(Exception):
            self.conn.release()


PG_FIELDS = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted",
             "tup_updated", "tup_deleted", "blks_hit", "blks_read")


def pg_counters(db_url: str, database: str) -> dict[str, int]:
    """``pg_stat_database`` of ``database`` (statistics are flushed by backends about once a
    second: wait ~1.5 s after a step before reading)."""
    import psycopg

    with psycopg.connect(db_url, connect_timeout=5, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(f"SELECT {', '.join(PG_FIELDS)} FROM pg_stat_database "
                           "WHERE datname = %s", (database,)).fetchone()
    return dict(zip(PG_FIELDS, row, strict=True)) if row else {}


def pg_sizes(db_url: str) -> dict[str, Any]:
    """Rows and total size (table + indexes + TOAST) of the subscriptions and notifications
    tables, and the database."""
    import psycopg

    out: dict[str, Any] = {}
    with psycopg.connect(db_url, connect_timeout=5, autocommit=True) as conn:
        for table in ("subscriptions", "notifications", "topics"):
            rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            size = conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0]
            out[table] = {"rows": rows, "bytes": size,
                          "bytes_per_row": round(size / rows, 1) if rows else None}
        out["database_bytes"] = conn.execute(
            "SELECT pg_database_size(current_database())").fetchone()[0]
    return out


def per(delta: dict[str, int], count: int) -> dict[str, float]:
    return {k: round(v / count, 3) for k, v in delta.items()} if count else {}
