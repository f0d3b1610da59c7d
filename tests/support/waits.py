"""Bounded waits of the multi-process tests (re-exported by :mod:`tests.support.hubs`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from tests.support.processes import wait_for

T = TypeVar("T")


def poll(read: Callable[[], T], until: Callable[[T], bool], *, timeout: float = 10.0,
         message: str = "") -> T:
    """Call ``read`` until ``until(value)`` holds; return that value."""
    box: list[T] = []

    def check() -> bool:
        box[:] = [read()]
        return until(box[0])

    wait_for(check, timeout=timeout, message=message or None)
    return box[0]


def wait_posts(subscriber: Any, path: str, count: int, timeout: float = 10.0) -> list[dict]:
    """Wait until ``path`` received at least ``count`` POSTs; returns them."""
    return poll(lambda: subscriber.posts(path), lambda posts: len(posts) >= count,
                timeout=timeout, message=f"{count} deliveries to {path}")


def quiet_period(seconds: float = 0.8) -> None:
    """Give the hub time to do something it must not do (a delivery that should not happen)."""
    time.sleep(seconds)
