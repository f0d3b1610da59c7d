"""Is the index serving the notified serial yet? PyPI's journal commits before its CDN purge."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

SERIAL_HEADER = "X-PyPI-Last-Serial"


def served_serial(session: requests.Session, index_url: str, normalized: str,
                  timeout: float = 10.0) -> int | None:
    """``X-PyPI-Last-Serial`` of ``<index>/pypi/<name>/json``; None when absent or unreachable."""
    try:
        answer = session.get(f"{index_url.rstrip('/')}/pypi/{normalized}/json", timeout=timeout)
    except requests.RequestException:
        return None
    try:
        return int(answer.headers.get(SERIAL_HEADER, ""))
    except ValueError:
        return None


def wait_fresh(session: requests.Session, index_url: str, normalized: str, serial: int, *,
               deadline: float, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> bool:
    """Poll with bounded backoff (0.1 s doubling to 2 s) until the serial is served or deadline."""
    delay = 0.1
    while True:
        served = served_serial(session, index_url, normalized)
        if served is not None and served >= serial:
            return True
        if clock() + delay > deadline:
            return False
        sleep(delay)
        delay = min(delay * 2, 2.0)
