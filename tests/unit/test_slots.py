"""Slots per address and a batch's lanes (workers/slots.py), on a clock the test moves."""

from __future__ import annotations

import asyncio
import threading

from broker_hub.storage import Subscription
from workers.slots import AddressSlots, Lanes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sub(n: int, address: str) -> Subscription:
    return Subscription(n, "t", f"http://{address}/{n}", None, 60, 9e9, address=address)


def test_only_slow_units_count_against_the_cap() -> None:
    clock = Clock()
    slots = AddressSlots(2, slow_after=1.0, clock=clock)
    tokens = [slots.try_acquire("a") for _ in range(5)]  # quick work: no cap
    assert all(tokens) and len(set(tokens)) == 5
    clock.now += 2  # all five are slow now
    assert slots.full("a") and slots.try_acquire("a") == 0
    assert not slots.full("b")
    for token in tokens[:4]:
        slots.release("a", token)
    assert not slots.full("a")  # one slow unit left, cap 2


def test_remembered_slow_units_hold_the_address_for_a_while() -> None:
    clock = Clock()
    slots = AddressSlots(1, slow_after=1.0, remember=5.0, clock=clock)
    token = slots.try_acquire("a")
    clock.now += 3  # timed out, say
    slots.release("a", token)
    assert slots.full("a")  # it ended less than 5 s ago
    clock.now += 5.5
    assert not slots.full("a")


def test_lanes_take_in_turn_across_addresses() -> None:
    slots = AddressSlots(8, clock=Clock())
    lanes = Lanes([sub(1, "a"), sub(2, "a"), sub(3, "a"), sub(4, "b")], slots, per_batch=4)
    taken = [lanes.take() for _ in range(4)]
    assert [s.id for s in taken if s] == [1, 4, 2, 3]
    assert not lanes and lanes.take() is None
    for s in taken:
        assert s is not None
        lanes.done(s)
    assert not slots.full("a") and slots._started == {}


def test_a_batch_holds_at_most_per_batch_slow_units_of_one_address() -> None:
    clock = Clock()
    slots = AddressSlots(100, slow_after=1.0, clock=clock)
    lanes = Lanes([sub(n, "slow") for n in range(5)] + [sub(9, "fast")], slots, per_batch=2)
    first = [lanes.take(), lanes.take(), lanes.take()]  # slow, fast, slow
    assert [s.id for s in first if s] == [0, 9, 1]
    assert lanes.take().id == 2  # still quick: no cap yet
    clock.now += 2  # the three "slow" units in flight are slow now
    assert lanes.take() is None  # this batch has three slow ones, over per_batch=2
    assert [s.id for s in lanes.spill(lambda key: key == "slow")] == [3, 4]
    assert not lanes


def test_a_release_wakes_a_waiter_from_another_thread() -> None:
    slots = AddressSlots(1, clock=Clock())
    token = slots.try_acquire("a")

    async def wait() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        threading.Timer(0.05, slots.release, ("a", token)).start()
        await slots.wait_for_release(5.0)
        return loop.time() - started

    assert asyncio.run(wait()) < 2.0  # woken, not timed out
