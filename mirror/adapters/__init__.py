"""Adapters: how a batch of changed projects becomes a sync of one kind of mirror.

Each adapter has ``name``, ``trigger(changes)`` (raises ``SyncError``) and ``listed(change)``:
True when the mirror now lists the pushed file, False when it does not yet, None when the
adapter cannot tell.
"""

from __future__ import annotations

from typing import Protocol

import requests

from mirror.state import Change

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{SIMPLE_JSON}, text/html;q=0.5"


class SyncError(Exception):
    """A trigger that did not work (the message says which and why)."""


class Adapter(Protocol):
    name: str

    def trigger(self, changes: list[Change]) -> None: ...

    def listed(self, change: Change) -> bool | None: ...


def page_lists(session: requests.Session, url: str, filename: str, timeout: float) -> bool:
    """True when the simple page at ``url`` (PEP 691 JSON or PEP 503 HTML) names ``filename``."""
    try:
        answer = session.get(url, headers={"Accept": ACCEPT}, timeout=timeout)
    except requests.RequestException:
        return False
    if answer.status_code != 200:
        return False
    if answer.headers.get("Content-Type", "").startswith(SIMPLE_JSON):
        try:
            files = answer.json().get("files", [])
        except ValueError:
            return False
        return any(isinstance(f, dict) and f.get("filename") == filename for f in files)
    return f">{filename}<" in answer.text or f"/{filename}#" in answer.text
