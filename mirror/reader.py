"""Reading what arrived: inbox rows into the sync queue, gaps, catch-ups, the full sync."""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable

import requests

from mirror import hubclient
from mirror.metrics import MirrorMetrics
from mirror.names import NameFilter
from mirror.notifications import REMOVALS, BadNotification, Entry, is_gap, parse
from mirror.state import Change, State

logger = logging.getLogger(__name__)


def changes_from(entries: Iterable[Entry], first_seen: float, allowed: NameFilter,
                 metrics: MirrorMetrics) -> list[Change]:
    """One change per project allowed by the filters: newest serial, newest file added."""
    by_name: dict[str, Change] = {}
    left_out: set[str] = set()
    for e in sorted(entries, key=lambda e: -1 if e.serial is None else e.serial):
        if not allowed(e.normalized):
            left_out.add(e.normalized)
            continue
        before = by_name.get(e.normalized)
        filename = e.filename if e.kind == "file_added" else ("" if e.kind in REMOVALS else None)
        if filename is None and before is not None:
            filename = before.filename
        serial = e.serial if e.serial is not None else (before.serial if before else None)
        by_name[e.normalized] = Change(
            normalized=e.normalized, project=e.project, serial=serial, filename=filename,
            new_project=e.kind == "project_created" or bool(before and before.new_project),
            first_seen=first_seen)
    if left_out:
        metrics.filtered.inc(len(left_out))
    return list(by_name.values())


class Reader:
    """Moves accepted pushes into the queue, bridges gaps and runs the full sync when needed."""

    def __init__(self, state: State, *, session: requests.Session, metrics: MirrorMetrics,
                 allowed: NameFilter, full_sync: str | None = None,
                 full_sync_timeout: float = 3600.0, clock: Callable[[], float] = time.time):
        self.state = state
        self.session = session
        self.metrics = metrics
        self.allowed = allowed
        self.full_sync_argv = shlex.split(full_sync) if full_sync else None
        self.full_sync_timeout = full_sync_timeout
        self.clock = clock
        self._full_sync_logged = False
        self._full_sync_after = 0.0

    def run_once(self) -> bool:
        """One round; True when something is left to do at once."""
        busy = self.read_inbox()
        self.catch_up()
        self.full_sync()
        return busy

    def read_inbox(self) -> bool:
        rows = self.state.inbox()
        for row_id, topic, sequence, received_at, body in rows:
            try:
                note = parse(body)
            except BadNotification as exc:  # checked on arrival; only a schema change gets here
                logger.error("queued notification %d for %s unreadable (%s): dropped",
                             row_id, topic, exc)
                self.state.drop_inbox_row(row_id)
                continue
            cursor_until, cursor_sequence = self.state.cursor(topic)
            gap_since = None
            if is_gap(cursor_until, cursor_sequence, note.since, sequence):
                self.metrics.gaps.inc()
                logger.warning("gap on %s: last serial %s sequence %s, then since %s sequence %s;"
                               " catching up", topic, cursor_until, cursor_sequence, note.since,
                               sequence)
                gap_since = cursor_until
            changes = changes_from(note.entries, received_at, self.allowed, self.metrics)
            self.state.read_inbox_row(row_id, topic, changes, until=note.until,
                                      sequence=sequence, gap_since=gap_since)
        return len(rows) == 100

    def catch_up(self) -> None:
        for topic, since in self.state.catchups():
            now = self.clock()
            try:
                for page in hubclient.catch_up(self.session, topic, since):
                    changes = changes_from(page.entries, now, self.allowed, self.metrics)
                    self.state.caught_up(topic, changes, page.until, done=page.next_url is None)
                    logger.info("caught up on %s: serials %s..%s, %d projects", topic,
                                page.since, page.until, len(changes))
            except hubclient.Gone as exc:
                self.metrics.catchups.labels("gone").inc()
                logger.error("catch-up of %s since %d: the hub no longer holds it (%s); "
                             "a full sync is needed", topic, since, exc)
                self.state.need_full_sync(topic)
                self._full_sync_logged = False
                continue
            except hubclient.HubError as exc:
                self.metrics.catchups.labels("error").inc()
                logger.warning("catch-up of %s since %d failed, retrying later: %s",
                               topic, since, exc)
                continue
            self.metrics.catchups.labels("ok").inc()

    def full_sync(self) -> None:
        topic = self.state.get("full_sync")
        if topic is None or self.clock() < self._full_sync_after:
            return
        if self.full_sync_argv is None:
            if not self._full_sync_logged:
                self.metrics.full_syncs.labels("not_configured").inc()
                logger.error("a full sync of the mirror is needed (%s) and no --full-sync command"
                             " is configured: run one by hand", topic)
                self._full_sync_logged = True
            return
        logger.warning("running the full sync: %s", shlex.join(self.full_sync_argv))
        try:
            done = subprocess.run(self.full_sync_argv, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=self.full_sync_timeout,
                                  check=False)
            ok = done.returncode == 0
            detail = f"exit {done.returncode}"
        except (OSError, subprocess.SubprocessError) as exc:
            ok, detail = False, str(exc)
        if ok:
            self.metrics.full_syncs.labels("ok").inc()
            self.state.put("full_sync", None)
            self.state.put("last_full_sync", str(self.clock()))
            logger.warning("full sync done")
        else:
            self.metrics.full_syncs.labels("failed").inc()
            self._full_sync_after = self.clock() + 60
            logger.error("the full sync failed (%s); it runs again in 60 s", detail)
