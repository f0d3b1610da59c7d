"""The poller role: watch PyPI's change journal on behalf of every mirror.

PyPI sends no pings, so the hub is the publisher of PyPI's changes: every
``HUB_PYPI_POLL_INTERVAL`` seconds the poller asks ``changelog_since_serial(last)`` (the one
complete source), pages through a backlog, publishes each page as notifications of the firehose
topic and of each changed project's topic (:mod:`workers.pypi_rounds`), and only then stores
``last`` durably. One poller per index polls: it holds a lease in the database, the others
(started for availability) wait for it to run out.

When the journal fails for longer than ``HUB_PYPI_FALLBACK_AFTER`` the poller reads RSS
``updates.xml`` (conditional GET) and publishes new releases marked ``degraded``; the journal,
once back, is read from where it stopped, so nothing is skipped.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import TypeVar

from broker_hub.pypi.errors import (
    IndexForbidden,
    JournalFault,
    JournalUnavailable,
    MalformedAnswer,
    RateLimited,
)
from broker_hub.pypi.journal import JournalClient, Page
from broker_hub.pypi.notify import Round
from broker_hub.pypi.rss import RssFallback
from broker_hub.pypi.topics import source_of
from broker_hub.services import Services
from workers.pypi_rounds import publish_round
from workers.role import Periodic, Role, RoleSpec

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PAGES_PER_POLL = 20  # a backlog pages through in one go (1,000,000 entries), lease renewed
ROUND_ENTRIES = 1000  # journal entries per notification: a 50,000-entry page is 50 rounds
MAX_BACKOFF = 300.0  # seconds between polls of a failing journal, at most
RETENTION_EVERY = 300.0


class Poller(Role):
    name = "poller"

    def __init__(
        self,
        services: Services,
        *,
        journal: JournalClient | None = None,
        rss: RssFallback | None = None,
    ):
        self.services = s = services
        settings = s.settings
        self.source = source_of(settings.pypi_url)
        self.interval = settings.pypi_poll_interval
        self.lease_ttl = max(3 * self.interval, settings.pypi_timeout + 10)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.journal = journal or JournalClient(
            settings.pypi_url,
            user_agent=settings.pypi_user_agent,
            timeout=settings.pypi_timeout,
            allow_private=settings.allow_private_addresses,
        )
        self.rss = rss or RssFallback(
            settings.pypi_url,
            user_agent=settings.pypi_user_agent,
            timeout=settings.http_timeout,
            allow_private=settings.allow_private_addresses,
        )
        self._rss_loaded = False
        self._failures = 0
        self._not_before = 0.0
        self._rate_limited = False

    def periodic(self) -> list[Periodic]:
        return [
            Periodic("pypi-poll", self.interval, self.poll),
            Periodic("pypi-retention", RETENTION_EVERY, self.purge),
        ]

    def close(self) -> None:
        self.services.storage.release_source(self.source, self.holder)
        self.journal.close()
        self.rss.close()

    # -- one poll -----------------------------------------------------------------------------

    def poll(self) -> None:
        """Read what the journal has after ``last`` and publish it (paging a backlog)."""
        s = self.services
        backing_off = s.clock() < self._not_before
        if backing_off and self._rate_limited:
            return  # asked to wait: neither the journal nor RSS until then
        if not s.storage.claim_source(self.source, self.holder, s.clock(), self.lease_ttl):
            self._count("standby")  # another poller holds the lease
            return
        state = s.storage.source_state(self.source)
        assert state is not None  # claim_source made the row
        if backing_off:  # the journal is failing: RSS every interval meanwhile, once it is time
            if state.last_serial is not None and self._should_fall_back():
                self._fall_back(state.last_serial)
            return
        if state.last_serial is None:
            self._start()
            return
        last = state.last_serial
        for _ in range(MAX_PAGES_PER_POLL):
            page = self._read(last)
            if page is None:
                return
            self._report_bad(page)
            if page.last_serial_seen <= last:
                s.storage.advance_source(self.source, last, s.clock(), caught_up=True)
                self._observe(last, caught_up=True, newest=None)
                self._count("unchanged")
                return
            for round_ in rounds(self.source, last, page):
                published = publish_round(s, round_)
                done = not page.more and round_.until == page.last_serial_seen
                s.storage.advance_source(self.source, round_.until, s.clock(), caught_up=done)
                s.metrics.source_entries.labels(self.source, "published").inc(published.entries)
                newest = max((c.timestamp for c in round_.changes), default=None)
                self._observe(round_.until, caught_up=done, newest=newest)
                logger.info(
                    "%s: serials %d..%d: %d entries, %d notifications",
                    self.source, round_.since + 1, round_.until, published.entries,
                    published.notifications,
                )  # fmt: skip
                last = round_.until
            self._count("changed")
            if not page.more or self._rate_limited:
                return
            s.storage.claim_source(self.source, self.holder, s.clock(), self.lease_ttl)

    def _start(self) -> None:
        s = self.services
        start: int | None = s.settings.pypi_start_serial
        if start is None or start < 0:
            start = self._guard(self.journal.last_serial)
            if start is None:
                return
        s.storage.start_source(self.source, start, s.clock())
        logger.info("%s: watching the journal from serial %d", self.source, start)
        self._observe(start, caught_up=True, newest=None)
        self._count("started")

    def _read(self, last: int) -> Page | None:
        page = self._guard(lambda: self.journal.since(last))
        if page is None and not self._rate_limited and self._should_fall_back():
            self._fall_back(last)
        return page

    def _guard(self, call: Callable[[], T]) -> T | None:
        """Run a journal call; on failure count it, back off, and return None."""
        s = self.services
        try:
            result = call()
        except RateLimited as exc:
            self._not_before = s.clock() + exc.retry_after
            self._rate_limited = True
            self._count("rate_limited")
            logger.warning("%s: rate limited; next poll in %.0f s", self.source, exc.retry_after)
            return None
        except (IndexForbidden, JournalUnavailable, JournalFault, MalformedAnswer) as exc:
            self._failures += 1
            self._rate_limited = False
            wait = min(MAX_BACKOFF, self.interval * 2 ** min(self._failures, 10))
            self._not_before = s.clock() + wait
            error = f"{exc.__class__.__name__}: {exc}"
            s.storage.source_failed(self.source, error, s.clock())
            self._count("failed")
            logger.warning("%s: journal failed (%s); next poll in %.0f s", self.source, error, wait)
            self._observe_failing()
            return None
        self._failures = 0
        self._not_before = 0.0
        self._rate_limited = False
        limit = self.journal.rate_limit
        if limit is not None and limit.remaining == 0 and limit.reset:
            # the index says the next call would be refused: wait for its window (no bursts)
            self._not_before = s.clock() + min(limit.reset, MAX_BACKOFF)
            self._rate_limited = True
            self._count("paced")
        return result

    # -- degraded: the RSS fallback -----------------------------------------------------------

    def _should_fall_back(self) -> bool:
        state = self.services.storage.source_state(self.source)
        if state is None or state.failing_since is None:
            return False
        failing = self.services.clock() - state.failing_since
        return failing >= self.services.settings.pypi_fallback_after

    def _fall_back(self, last: int) -> None:
        s = self.services
        state = s.storage.source_state(self.source)
        if not self._rss_loaded and state is not None and state.rss_state:
            self.rss.import_state(json.loads(state.rss_state))
        self._rss_loaded = True
        try:
            got = self.rss.poll(newer_than=self._newest_journal_timestamp())
        except (IndexForbidden, JournalUnavailable, MalformedAnswer) as exc:
            self._count("rss_failed")
            logger.warning("%s: the RSS fallback failed too (%s)", self.source, exc)
            return
        s.storage.save_rss_state(self.source, json.dumps(self.rss.export_state()))
        if got.changes:
            published = publish_round(s, Round(self.source, last, last, tuple(got.changes), True))
            logger.warning(
                "%s: journal down; %d releases from RSS published as degraded",
                self.source, published.entries,
            )  # fmt: skip
        self._count("degraded")

    def _newest_journal_timestamp(self) -> float | None:
        """When the newest journal entry published happened (PyPI's clock): RSS items older
        than it came through the journal already; items of the same second may repeat."""
        newest = self.services.storage.entries_latest(self.source, None, 1)
        return float(json.loads(newest[0][1])["timestamp"]) if newest else None

    # -- bookkeeping --------------------------------------------------------------------------

    def _report_bad(self, page: Page) -> None:
        if not page.bad:
            return
        self.services.metrics.source_entries.labels(self.source, "invalid").inc(len(page.bad))
        for raw, reason in page.bad[:5]:
            logger.error("%s: skipping a journal entry (%s): %.200r", self.source, reason, raw)

    def _count(self, outcome: str) -> None:
        self.services.metrics.polls.labels(self.source, outcome).inc()

    def _observe(self, serial: int, *, caught_up: bool, newest: int | None) -> None:
        m = self.services.metrics
        m.source_serial.labels(self.source).set(serial)
        lag = 0.0 if caught_up or newest is None else max(0.0, self.services.clock() - newest)
        m.source_lag.labels(self.source).set(lag)

    def _observe_failing(self) -> None:
        state = self.services.storage.source_state(self.source)
        if state is not None and state.caught_up_at is not None:
            lag = max(0.0, self.services.clock() - state.caught_up_at)
            self.services.metrics.source_lag.labels(self.source).set(lag)

    def purge(self) -> None:
        """Drop journal entries past HUB_PYPI_RETENTION (catch-up then answers 410 for them)."""
        s = self.services
        dropped = s.storage.purge_source_entries(
            self.source, s.clock() - s.settings.pypi_retention
        )
        if dropped:
            logger.info("%s: %d journal entries past retention dropped", self.source, dropped)


def rounds(source: str, last: int, page: Page) -> list[Round]:
    """The page cut into rounds of at most ROUND_ENTRIES changes, chained since -> until; the
    last round ends at the page's last serial (bad entries at its end included). The cuts
    depend only on ``last`` and the page, so a page read again after a crash gives the same
    rounds (and the same notification keys)."""
    cuts: list[Round] = []
    since = last
    changes = page.changes
    for start in range(0, max(len(changes), 1), ROUND_ENTRIES):
        chunk = tuple(changes[start : start + ROUND_ENTRIES])
        final = start + ROUND_ENTRIES >= len(changes)
        until = page.last_serial_seen if final else chunk[-1].serial
        assert until is not None
        cuts.append(Round(source, since, until, chunk))
        since = until
    return cuts


SPEC = RoleSpec(
    name="poller",
    help="the PyPI poller: publish the index's journal as topics (needs HUB_PYPI_URL)",
    build=lambda context: Poller(context.services),
    metrics_port=9104,
    enabled=lambda settings: settings.pypi_enabled,
)
