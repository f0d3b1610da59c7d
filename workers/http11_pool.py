"""Idle keep-alive connections of :mod:`workers.http11`, per origin, bounded in time and count.

A connection unused for ``idle_seconds`` is closed by a sweeper task that runs while any
connection is idle (so an origin never contacted again does not keep its socket), and no
more than ``max_idle`` idle connections are kept in all: the oldest is closed first.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Hashable

from workers.http11_wire import Connection


class IdlePool:
    """Idle connections by origin (the most recently used handed out first)."""

    def __init__(self, *, idle_seconds: float, max_idle: int):
        self.idle_seconds = idle_seconds
        self.max_idle = max_idle
        self._by_origin: dict[Hashable, list[Connection]] = {}
        self._order: OrderedDict[Connection, Hashable] = OrderedDict()  # oldest first
        self._sweeper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._order)

    def take(self, origin: Hashable) -> Connection | None:
        """A usable idle connection to ``origin``, or None; unusable ones are closed."""
        conns = self._by_origin.get(origin)
        now = time.monotonic()
        while conns:
            conn = conns.pop()
            del self._order[conn]
            if not conns:
                del self._by_origin[origin]
            if conn.usable(now, self.idle_seconds):
                return conn
            conn.close()
        return None

    def put(self, origin: Hashable, conn: Connection) -> None:
        conn.idle_since = time.monotonic()
        self._by_origin.setdefault(origin, []).append(conn)
        self._order[conn] = origin
        while len(self._order) > self.max_idle:
            self._drop(next(iter(self._order)))
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def _drop(self, conn: Connection) -> None:
        origin = self._order.pop(conn)
        conns = self._by_origin[origin]
        conns.remove(conn)
        if not conns:
            del self._by_origin[origin]
        conn.close()

    def sweep(self) -> None:
        """Close connections idle too long or closed by the peer."""
        now = time.monotonic()
        for conn in [c for c in self._order if not c.usable(now, self.idle_seconds)]:
            self._drop(conn)

    async def _sweep(self) -> None:
        interval = max(0.05, min(5.0, self.idle_seconds / 3))
        while self._order:
            await asyncio.sleep(interval)
            self.sweep()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._order):
            self._drop(conn)
