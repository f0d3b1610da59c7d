"""devpi-server: ``POST <index>/+simple/<project>/refresh`` makes a mirror index refetch now.

devpi fetches upstream inside the POST. A refresh that lands while the upstream page is stale
caches the stale page again, so ``listed`` reads devpi's simple page and the agent retries.
"""

from __future__ import annotations

import logging

import requests

from mirror.adapters import SyncError, page_lists
from mirror.state import Change

logger = logging.getLogger(__name__)


class DevpiAdapter:
    name = "devpi"

    def __init__(self, index_url: str, *, session: requests.Session, timeout: float = 30.0):
        self.index_url = index_url.rstrip("/")  # e.g. http://127.0.0.1:3141/root/pypi
        self.session = session
        self.timeout = timeout

    def trigger(self, changes: list[Change]) -> None:
        failed = []
        for change in changes:
            url = f"{self.index_url}/+simple/{change.normalized}/refresh"
            try:
                answer = self.session.post(url, timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as exc:
                failed.append(f"{change.normalized}: {exc.__class__.__name__}")
                continue
            # 302 to the simple page is devpi's success; a 5xx keeps the cached links.
            if answer.status_code not in (200, 302, 303):
                failed.append(f"{change.normalized}: HTTP {answer.status_code}")
        if failed:
            raise SyncError("devpi refresh failed for " + ", ".join(failed))

    def listed(self, change: Change) -> bool | None:
        if not change.filename:
            return None
        url = f"{self.index_url}/+simple/{change.normalized}/"
        return page_lists(self.session, url, change.filename, self.timeout)
