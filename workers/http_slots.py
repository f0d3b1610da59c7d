"""Concurrency slots: a bound in all and a bound per key (host), the per-key table pruned.

A key's semaphore exists only while a request holds or awaits it, so the table holds as many
entries as hosts currently in flight, however many hosts were ever contacted. A request
waiting for a busy key holds no slot of the global bound.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Slots:
    """``async with slots.hold(key):`` one of ``total`` slots and one of ``per_key`` for key."""

    def __init__(self, *, total: int, per_key: int):
        self.per_key = per_key
        self._total = asyncio.Semaphore(total)
        self._keys: dict[str, _Entry] = {}

    def hold(self, key: str) -> _Hold:
        return _Hold(self, key)

    def __len__(self) -> int:
        """Keys with a request holding or awaiting a slot."""
        return len(self._keys)


class _Entry:
    __slots__ = ("semaphore", "users")

    def __init__(self, per_key: int):
        self.semaphore = asyncio.Semaphore(per_key)
        self.users = 0


class _Hold:
    __slots__ = ("_entry", "_key", "_slots", "_total_held")

    def __init__(self, slots: Slots, key: str):
        self._slots, self._key = slots, key
        self._entry: _Entry | None = None
        self._total_held = False

    async def __aenter__(self) -> None:
        slots = self._slots
        entry = slots._keys.get(self._key)
        if entry is None:
            entry = slots._keys[self._key] = _Entry(slots.per_key)
        entry.users += 1
        self._entry = entry
        try:
            await entry.semaphore.acquire()
            try:
                await slots._total.acquire()
            except BaseException:
                entry.semaphore.release()
                raise
        except BaseException:
            self._leave()
            raise
        self._total_held = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._total_held:
            self._slots._total.release()
            assert self._entry is not None
            self._entry.semaphore.release()
            self._total_held = False
        self._leave()

    def _leave(self) -> None:
        entry = self._entry
        if entry is None:
            return
        self._entry = None
        entry.users -= 1
        if entry.users == 0 and self._slots._keys.get(self._key) is entry:
            del self._slots._keys[self._key]
