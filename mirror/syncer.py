"""Turning queued changes into syncs: coalesce, wait for the index, trigger, check, retry."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import requests

from mirror.adapters import Adapter, SyncError
from mirror.index import wait_fresh
from mirror.metrics import MirrorMetrics
from mirror.state import Change, State

logger = logging.getLogger(__name__)

CHECK_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0)  # re-trigger while the mirror does not list the file


def retry_delay(attempts: int) -> float:
    """Backoff between attempts of one change: 2, 4, 8, ... seconds, at most 5 minutes."""
    return min(2.0 * 2**attempts, 300.0)


class Syncer:
    def __init__(self, state: State, adapters: list[Adapter], *, index_url: str,
                 session: requests.Session, metrics: MirrorMetrics, coalesce_seconds: float = 1.0,
                 fresh_timeout: float = 60.0, max_attempts: int = 8,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.state = state
        self.adapters = adapters
        self.index_url = index_url
        self.session = session
        self.metrics = metrics
        self.coalesce = coalesce_seconds
        self.fresh_timeout = fresh_timeout
        self.max_attempts = max_attempts
        self.clock = clock
        self.sleep = sleep

    def run_once(self) -> float:
        """Sync one batch if one is ready; the seconds until the next may be (at most 1)."""
        now = self.clock()
        due = self.state.due(now)
        if not due:
            upcoming = self.state.next_due()
            return 1.0 if upcoming is None else max(0.05, min(1.0, upcoming - now))
        oldest = min(c.first_seen for c in due)
        if oldest + self.coalesce > now and all(c.attempts == 0 for c in due):
            return max(0.05, oldest + self.coalesce - now)  # the window is still open
        self.sync(due)
        return 0.0

    def _fail(self, change: Change, stage: str, adapter: str, error: str) -> None:
        self.metrics.sync_failures.labels(adapter, stage).inc()
        at = self.clock() + retry_delay(change.attempts)
        if self.state.retry_later(change, error, at, self.max_attempts):
            self.metrics.gave_up.inc()
            logger.error("%s: giving up after %d attempts (%s)", change.normalized,
                         self.max_attempts, error)
        else:
            logger.warning("%s: %s (attempt %d, retrying)", change.normalized, error,
                           change.attempts + 1)

    def sync(self, batch: list[Change]) -> None:
        deadline = time.monotonic() + self.fresh_timeout
        fresh = []
        for change in batch:
            if change.serial is None or wait_fresh(self.session, self.index_url,
                                                   change.normalized, change.serial,
                                                   deadline=deadline):
                fresh.append(change)
            else:
                self._fail(change, "index", "index",
                           f"the index does not serve serial {change.serial} yet")
        if not fresh:
            return
        for adapter in self.adapters:
            try:
                adapter.trigger(fresh)
            except SyncError as exc:
                for change in fresh:
                    self._fail(change, "trigger", adapter.name, str(exc))
                return
        for change in fresh:
            problem = self._check(change)
            if problem:
                self._fail(change, "check", problem[0], problem[1])
                continue
            self.state.synced(change)
            seconds = max(0.0, self.clock() - change.first_seen)
            self.metrics.synced(change.normalized, seconds)
            self.state.put("last_sync", f"{self.clock():.3f} {change.normalized} {change.serial}")
            logger.info("%s synced (serial %s) %.2f s after the push", change.normalized,
                        change.serial, seconds)

    def _check(self, change: Change) -> tuple[str, str] | None:
        """None when every adapter that can tell lists the file (re-triggering a few times)."""
        for adapter in self.adapters:
            for delay in (*CHECK_DELAYS, None):
                if adapter.listed(change) is not False:
                    break
                if delay is None:
                    return adapter.name, f"{adapter.name} does not list {change.filename}"
                self.sleep(delay)
                try:
                    adapter.trigger([change])
                except SyncError as exc:
                    return adapter.name, str(exc)
        return None
