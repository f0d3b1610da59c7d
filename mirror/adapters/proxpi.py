"""proxpi: ``DELETE <proxpi>/cache/<project>`` drops a cached project page (refetched lazily).

proxpi's cache key is the name as the client typed it, so every spelling the agent knows is
dropped (normalized, as in the journal, lower case); a project new upstream also needs
``DELETE /cache/list``. A DELETE that lands during a fetch of the project is skipped though it
answers success: ``listed`` reads the page back and the agent retries.
"""

from __future__ import annotations

import requests

from mirror.adapters import SyncError, page_lists
from mirror.state import Change


def spellings(change: Change) -> list[str]:
    """The names a client may have typed for this project (the cache keys to drop)."""
    return list(dict.fromkeys([change.normalized, change.project, change.project.lower()]))


class ProxpiAdapter:
    name = "proxpi"

    def __init__(self, url: str, *, session: requests.Session, timeout: float = 30.0):
        self.url = url.rstrip("/")  # e.g. http://127.0.0.1:5000
        self.session = session
        self.timeout = timeout

    def _delete(self, key: str) -> str | None:
        try:
            answer = self.session.delete(f"{self.url}/cache/{key}", timeout=self.timeout)
        except requests.RequestException as exc:
            return f"{key}: {exc.__class__.__name__}"
        return None if answer.status_code == 200 else f"{key}: HTTP {answer.status_code}"

    def trigger(self, changes: list[Change]) -> None:
        keys = [name for change in changes for name in spellings(change)]
        if any(change.new_project for change in changes):
            keys.insert(0, "list")
        failed = [error for error in map(self._delete, keys) if error]
        if failed:
            raise SyncError("proxpi cache drop failed for " + ", ".join(failed))

    def listed(self, change: Change) -> bool | None:
        if not change.filename:
            return None
        url = f"{self.url}/index/{change.normalized}/"
        return page_lists(self.session, url, change.filename, self.timeout)
