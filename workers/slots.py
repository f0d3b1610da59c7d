"""Slots per remote address: no host, however many hanging callbacks it has, takes them all.

A hostile party can subscribe hundreds of callbacks that accept a connection and never answer;
each holds its request for the whole ``HUB_HTTP_TIMEOUT``. Counting requests in flight per
address (:func:`broker_hub.ratelimit.address_key`: the spelling and the port do not matter)
and capping them well below the total keeps room for everyone else (issue 15). Thread-safe:
the consumer thread takes slots for whole messages, the event loop for single deliveries.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from broker_hub.ratelimit import address_key
from broker_hub.storage import Subscription


class AddressSlots:
    """At most ``per_address`` *slow* units of work in flight per address key.

    Work that has been in flight longer than ``slow_after`` seconds counts against the cap, and
    so does slow work that ended less than ``remember`` seconds ago; quick work does not. So a
    mirror that answers fast gets all the concurrency it can use, while an address whose
    callbacks hang (the only work that holds anything for long) gets ``per_address`` units
    and, once they have timed out, waits ``remember`` before its next ones start.
    """

    def __init__(
        self,
        per_address: int,
        *,
        slow_after: float = 1.0,
        remember: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.per_address, self.slow_after, self.clock = per_address, slow_after, clock
        self.remember = remember
        self._started: dict[str, dict[int, float]] = {}
        self._recent: dict[str, deque[float]] = {}  # key -> when its slow units ended
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._freed: asyncio.Event | None = None  # created on the loop that waits...
        self._loop: asyncio.AbstractEventLoop | None = None  # ...which is this one
        self._waiting = 0  # workers in wait_for_release: a release wakes the loop only then

    def full(self, key: str) -> bool:
        """True when ``key`` has ``per_address`` slow units in flight."""
        with self._lock:
            return self._slow(key, self.clock()) >= self.per_address

    def _slow(self, key: str, now: float) -> int:
        slow = 0
        recent = self._recent.get(key)
        if recent:
            while recent and recent[0] < now - self.remember:
                recent.popleft()
            slow = len(recent)
            if not recent:
                del self._recent[key]
        started = self._started.get(key)
        if started:
            slow += count_slow(started.values(), now - self.slow_after, self.per_address - slow)
        return slow

    def try_acquire(self, key: str) -> int:
        """A token for a unit of work on ``key``, or 0 when its slots are full."""
        now = self.clock()
        with self._lock:
            if self._slow(key, now) >= self.per_address:
                return 0
            token = next(self._tokens)
            self._started.setdefault(key, {})[token] = now
            return token

    def release(self, key: str, token: int) -> None:
        with self._lock:
            started = self._started.get(key)
            if started is not None:
                began = started.pop(token, None)
                if not started:
                    del self._started[key]
                now = self.clock()
                if began is not None and self.remember > 0 and now - began > self.slow_after:
                    self._recent.setdefault(key, deque()).append(now)
        freed, loop = self._freed, self._loop
        if self._waiting and freed is not None and loop is not None:
            # not on every release: a wake-up through the loop's self-pipe is a system call
            loop.call_soon_threadsafe(freed.set)

    async def wait_for_release(self, timeout: float) -> None:
        """Wait (on the event loop) until some slot is released, or ``timeout``."""
        if self._freed is None:
            self._loop = asyncio.get_running_loop()
            self._freed = asyncio.Event()
        self._freed.clear()
        self._waiting += 1
        try:
            async with asyncio.timeout(timeout):
                await self._freed.wait()
        except TimeoutError:
            pass
        finally:
            self._waiting -= 1


def count_slow(started: Iterable[float], since: float, cap: int) -> int:
    """How many of ``started`` (start times in clock order) began before ``since``, counting
    up to ``cap``: the slow ones come first, so stop at the first quick one (counting every
    unit in flight on each acquire was ~10 % of a deliverer's time with hundreds in flight)."""
    slow = 0
    for began in started:
        if began > since or slow >= cap:
            break
        slow += 1
    return slow


def address_of(sub: Subscription) -> str:
    """The slot key of a subscription: the address stored when it was verified, else (rows
    older than that column) its callback's, from the cache only (never waits for DNS)."""
    return sub.address or address_key(sub.callback, wait=0)


class Lanes:
    """A batch's subscriptions, one lane per address, taken in turn across lanes; a lane whose
    address has no free slot (in all, or ``per_batch`` slow ones in this batch) is skipped, so
    hosts with many hanging callbacks never hold up the others.

    Used by the event loop alone: this batch's own units in flight are kept without a lock or
    tokens (two :class:`AddressSlots` per delivery were ~6 % of a deliverer's CPU)."""

    def __init__(self, subs: Iterable[Subscription], slots: AddressSlots, per_batch: int):
        self.slots, self.per_batch = slots, per_batch
        self._lanes: dict[str, deque[Subscription]] = {}
        for sub in subs:
            self._lanes.setdefault(address_of(sub), deque()).append(sub)
        self._order: deque[str] = deque(self._lanes)
        self._mine: dict[str, dict[int, float]] = {}  # key -> {id(sub): started}, oldest first
        self._held: dict[int, tuple[str, int]] = {}  # id(sub) -> key, token of ``slots``

    def __bool__(self) -> bool:
        return bool(self._order)

    def take(self) -> Subscription | None:
        """The next subscription whose address has a free slot (taken), else None."""
        now = self.slots.clock()
        since = now - self.slots.slow_after
        for _ in range(len(self._order)):
            key = self._order.popleft()
            mine = self._mine.get(key)
            token = 0
            if mine is None or count_slow(mine.values(), since, self.per_batch) < self.per_batch:
                token = self.slots.try_acquire(key)
            if token:
                lane = self._lanes[key]
                sub = lane.popleft()
                self._held[id(sub)] = (key, token)
                if mine is None:
                    mine = self._mine[key] = {}
                mine[id(sub)] = now
                if lane:
                    self._order.append(key)
                else:
                    del self._lanes[key]
                return sub
            self._order.append(key)
        return None

    def spill(self, full: Callable[[str], bool]) -> list[Subscription]:
        """Take out, untried, every subscription left on an address for which ``full``."""
        out: list[Subscription] = []
        for key in [k for k in self._order if full(k)]:
            out.extend(self._lanes.pop(key))
            self._order.remove(key)
        return out

    def done(self, sub: Subscription) -> None:
        key, token = self._held.pop(id(sub))
        mine = self._mine[key]
        del mine[id(sub)]
        if not mine:
            del self._mine[key]
        self.slots.release(key, token)
