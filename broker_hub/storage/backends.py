"""One DB-API connection per thread, for SQLite or PostgreSQL, chosen by URL."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


class Backend:
    """Runs SQL written with ``?`` placeholders on a per-thread connection."""

    dialect = ""

    def __init__(self, url: str):
        self.url = url
        self._local = threading.local()

    def _connect(self) -> Any:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql

    @property
    def conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self.conn.cursor()
        cur.execute(self._sql(sql), tuple(params))
        return cur

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.conn.cursor().executemany(self._sql(sql), [tuple(r) for r in rows])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield

    def retrying(self, work: Callable[[], T], attempts: int = 3) -> T:
        """Run ``work`` in a transaction, again (a few times) when the database aborted it to
        break a deadlock or a serialization conflict; the last failure propagates."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction():
                    return work()
            except Exception as exc:
                if attempt == attempts or not self._is_conflict(exc):
                    raise
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _is_conflict(exc: Exception) -> bool:
        return False

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class SQLiteBackend(Backend):
    dialect = "sqlite"

    def __init__(self, url: str):
        super().__init__(url)
        path = url.removeprefix("sqlite://")
        path = path[1:] if path.startswith("/") else path  # sqlite:///rel, sqlite:////abs
        self.path = path or ":memory:"
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")


class PostgresBackend(Backend):
    dialect = "postgresql"

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            return super().execute(sql, params)
        except Exception as exc:
            if self._is_disconnect(exc):
                self.close()
                return super().execute(sql, params)
            raise

    @staticmethod
    def _is_conflict(exc: Exception) -> bool:
        from psycopg import errors

        return isinstance(exc, errors.DeadlockDetected | errors.SerializationFailure)

    @staticmethod
    def _is_disconnect(exc: Exception) -> bool:
        import psycopg

        return isinstance(exc, psycopg.OperationalError)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield


def backend_for(url: str) -> Backend:
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return SQLiteBackend(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresBackend(url)
    raise ValueError(f"HUB_DATABASE_URL: unsupported scheme {scheme!r} (sqlite or postgresql)")
