"""A plain HTTP hook: POST the batch as JSON; any 2xx is success."""

from __future__ import annotations

import requests

from mirror.adapters import SyncError, page_lists
from mirror.state import Change


class HookAdapter:
    name = "hook"

    def __init__(self, url: str, *, session: requests.Session, timeout: float = 30.0,
                 verify_url: str | None = None):
        self.url = url
        self.session = session
        self.timeout = timeout
        self.verify_url = verify_url

    def trigger(self, changes: list[Change]) -> None:
        body = {"projects": [
            {"project": c.project, "normalized": c.normalized, "serial": c.serial,
             "filename": c.filename, "new_project": c.new_project} for c in changes]}
        try:
            answer = self.session.post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SyncError(f"hook {self.url}: {exc.__class__.__name__}") from None
        if not 200 <= answer.status_code < 300:
            raise SyncError(f"hook {self.url}: HTTP {answer.status_code}")

    def listed(self, change: Change) -> bool | None:
        if not self.verify_url or not change.filename:
            return None
        url = self.verify_url.replace("{project}", change.normalized)
        return page_lists(self.session, url, change.filename, self.timeout)
