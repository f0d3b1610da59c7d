"""Slots per remote address: no host, however many callbacks it has, takes every slot.

A hostile party can subscribe hundreds of callbacks that accept a connection and never answer;
each holds its request for the whole ``HUB_HTTP_TIMEOUT``. Counting requests in flight per
address (:func:`broker_hub.ratelimit.address_key`: the spelling and the port do not matter)
and capping them well below the total keeps room for everyone else (issue 15). Thread-safe:
the consumer thread takes slots for whole messages, the event loop for single deliveries.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Iterable

from broker_hub.ratelimit import address_key
from broker_hub.storage import Subscription


class AddressSlots:
    """At most ``per_address`` units of work in flight per address key."""

    def __init__(self, per_address: int):
        self.per_address = per_address
        self._busy: dict[str, int] = {}
        self._lock = threading.Lock()
        self._freed: asyncio.Event | None = None  # created on the loop that waits

    def try_acquire(self, key: str) -> bool:
        with self._lock:
            busy = self._busy.get(key, 0)
            if busy >= self.per_address:
                return False
            self._busy[key] = busy + 1
            return True

    def release(self, key: str) -> None:
        with self._lock:
            busy = self._busy.get(key, 0) - 1
            if busy > 0:
                self._busy[key] = busy
            else:
                self._busy.pop(key, None)
        freed = self._freed
        if freed is not None:
            freed.get_loop().call_soon_threadsafe(freed.set)

    def in_flight(self, key: str) -> int:
        with self._lock:
            return self._busy.get(key, 0)

    async def wait_for_release(self, timeout: float) -> None:
        """Wait (on the event loop) until some slot is released, or ``timeout``."""
        if self._freed is None:
            self._freed = asyncio.Event()
        self._freed.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._freed.wait()
        except TimeoutError:
            pass


def address_of(sub: Subscription) -> str:
    """The slot key of a subscription: the address stored when it was verified, else (rows
    older than that column) its callback's, from the cache only (never waits for DNS)."""
    return sub.address or address_key(sub.callback, wait=0)


class Lanes:
    """A batch's subscriptions, one lane per address, taken in turn across lanes; a lane whose
    address has no free slot (in all, or ``per_batch`` in this batch) is skipped, so hosts
    with many hanging callbacks never hold up the others."""

    def __init__(self, subs: Iterable[Subscription], slots: AddressSlots, per_batch: int):
        self.slots, self.per_batch = slots, per_batch
        self._lanes: dict[str, deque[Subscription]] = {}
        for sub in subs:
            self._lanes.setdefault(address_of(sub), deque()).append(sub)
        self._order: deque[str] = deque(self._lanes)
        self._busy: dict[str, int] = {}
        self._keys: dict[int, str] = {}

    def __bool__(self) -> bool:
        return bool(self._order)

    def take(self) -> Subscription | None:
        """The next subscription whose address has a free slot (taken), else None."""
        for _ in range(len(self._order)):
            key = self._order.popleft()
            lane = self._lanes[key]
            if self._busy.get(key, 0) < self.per_batch and self.slots.try_acquire(key):
                sub = lane.popleft()
                self._busy[key] = self._busy.get(key, 0) + 1
                self._keys[id(sub)] = key
                if lane:
                    self._order.append(key)
                else:
                    del self._lanes[key]
                return sub
            self._order.append(key)
        return None

    def done(self, sub: Subscription) -> None:
        key = self._keys.pop(id(sub))
        self._busy[key] -= 1
        self.slots.release(key)
