"""``RssFallback``: new releases from ``/rss/updates.xml`` while XML-RPC is down (degraded).

PyPI's RSS items have no ``<guid>``: an item is identified by its ``<link>``
(``<index>/project/<name>/<version>/``). RSS shows new releases only: no late files, removals
or yanks, which is why changes from here are published as degraded.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import feedparser
import requests

from broker_hub.pypi.changes import Change
from broker_hub.pypi.errors import JournalUnavailable, MalformedAnswer
from broker_hub.pypi.names import is_valid_name, normalize
from broker_hub.pypi.transport import IndexHTTP
from broker_hub.pypi.wire import refuse_dtd

SEEN_LIMIT = 1000  # links remembered; the feed holds 100, so this spans many rounds
STATE_VERSION = 1


@dataclass(frozen=True)
class RssRound:
    """One poll of the feed: ``changes`` oldest first, all with ``serial=None``.

    ``bad`` lists items that could not be used, with the reason; ``not_modified`` is true
    when the index answered 304.
    """

    changes: list[Change]
    bad: list[tuple[str, str]] = field(default_factory=list)
    not_modified: bool = False
    degraded: bool = True


def release_from_link(link: str, title: str) -> tuple[str, str] | None:
    """``(name, version)`` from ``.../project/<name>/<version>/``, else from "name version"."""
    parts = [unquote(p) for p in urlsplit(link).path.split("/") if p]
    if len(parts) >= 3 and parts[-3] == "project":
        return parts[-2], parts[-1]
    name, _, version = title.strip().rpartition(" ")
    return (name, version) if name and version else None


class RssFallback:
    """Conditional GETs of ``<index>/rss/updates.xml``, remembering the links already seen.

    ``export_state()`` gives a JSON-able dict to store; pass it back as ``state=`` after a
    restart. ``poll(newer_than=t)`` skips (and remembers) items published before ``t``:
    pass the timestamp of the last journal entry the hub published, so releases already
    published from the journal are not sent again (same-second items may repeat, never
    vanish). The very first successful poll without ``newer_than`` only primes the memory
    and returns nothing.
    """

    def __init__(
        self,
        index_url: str,
        *,
        user_agent: str,
        timeout: float = 30.0,
        max_bytes: int = 4 * 1024 * 1024,
        allow_private: bool = False,
        state: dict[str, Any] | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = index_url.rstrip("/") + "/rss/updates.xml"
        self.http = IndexHTTP(user_agent=user_agent, timeout=timeout, max_bytes=max_bytes,
                              allow_private=allow_private, session=session)
        self.clock = clock
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.seen: list[str] = []
        self.primed = False  # a feed was read once: from now on every unseen item is new
        if state:
            self.import_state(state)

    # --- state -----------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "etag": self.etag, "last_modified": self.last_modified,
                "primed": self.primed, "seen": list(self.seen)}

    def import_state(self, state: dict[str, Any]) -> None:
        """Load an ``export_state()`` dict; anything unusable in it is ignored, not fatal."""
        etag, modified, seen = state.get("etag"), state.get("last_modified"), state.get("seen")
        self.etag = etag if isinstance(etag, str) else None
        self.last_modified = modified if isinstance(modified, str) else None
        if isinstance(seen, list):
            self.seen = [s for s in seen if isinstance(s, str)][-SEEN_LIMIT:]
        self.primed = state.get("primed") is True or bool(self.seen)

    # --- polling ---------------------------------------------------------------------------

    def poll(self, *, newer_than: float | None = None) -> RssRound:
        """Fetch the feed; new releases (oldest first) as degraded ``Change``s.

        Raises ``JournalUnavailable`` (HTTP error, connection, timeout) or ``MalformedAnswer``
        (not a feed, DTD/entities, too large).
        """
        headers = {"Accept": "application/rss+xml, application/xml;q=0.9, */*;q=0.1"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        answer = self.http.request("GET", self.url, headers=headers)
        if answer.status == 304:
            return RssRound([], not_modified=True)
        if answer.status != 200:
            raise JournalUnavailable(f"RSS: HTTP {answer.status} from the index", answer.status)
        refuse_dtd(answer.body)
        feed = feedparser.parse(answer.body)
        if not feed.get("version"):
            raise MalformedAnswer("RSS: the answer is not an RSS feed")
        changes, bad = self._new_changes(feed.entries, newer_than)
        self.etag = answer.headers.get("ETag")
        self.last_modified = answer.headers.get("Last-Modified")
        return RssRound(changes, bad)

    def _new_changes(
        self, items: list[Any], newer_than: float | None
    ) -> tuple[list[Change], list[tuple[str, str]]]:
        priming = not self.primed and newer_than is None
        known = set(self.seen)
        changes: list[Change] = []
        bad: list[tuple[str, str]] = []
        for item in reversed(items):  # the feed is newest first
            link = str(item.get("link") or "")
            if not link or link in known:
                continue
            known.add(link)
            self.seen.append(link)
            published = item.get("published_parsed")
            timestamp = calendar.timegm(published) if published else int(self.clock())
            if priming or (newer_than is not None and timestamp < newer_than):
                continue  # published through the journal already (or before we started)
            parsed = release_from_link(link, str(item.get("title") or ""))
            if parsed is None or not is_valid_name(parsed[0]) or not parsed[1].strip():
                bad.append((link, "RSS item names no valid project and version"))
                continue
            name, version = parsed
            changes.append(Change(None, name, normalize(name), version, "new release",
                                  "release_created", None, timestamp))
        del self.seen[:-SEEN_LIMIT]
        self.primed = True
        return changes, bad

    def close(self) -> None:
        self.http.close()
