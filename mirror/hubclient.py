"""Talking to the hub: subscription requests and the catch-up API of PyPI topics."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urljoin

import requests

from mirror.notifications import BadNotification, Notification, parse

MAX_PAGES = 1000  # one catch-up reads at most this many pages (then resumes on the next round)


class HubError(Exception):
    """The hub refused or could not be reached (the message says which)."""


class Gone(HubError):
    """410 from the catch-up API: the hub no longer holds that far back; do a full sync."""


def firehose(hub_url: str) -> str:
    return hub_url.rstrip("/") + "/pypi/changes"


def project_topic(hub_url: str, normalized: str) -> str:
    return hub_url.rstrip("/") + "/pypi/project/" + normalized


def request(session: requests.Session, hub_url: str, *, mode: str, topic: str, callback: str,
            secret: str, lease_seconds: int | None, timeout: float = 30.0) -> None:
    """POST a (un)subscription request; the hub answers 202 and verifies with the callback."""
    form = {"hub.mode": mode, "hub.topic": topic, "hub.callback": callback}
    if mode == "subscribe":
        form["hub.secret"] = secret
        if lease_seconds:
            form["hub.lease_seconds"] = str(lease_seconds)
    try:
        answer = session.post(hub_url, data=form, timeout=timeout)
    except requests.RequestException as exc:
        raise HubError(f"hub {hub_url} unreachable: {exc.__class__.__name__}") from None
    if answer.status_code not in (202, 204):
        raise HubError(f"hub answered {answer.status_code} to {mode} {topic}: "
                       f"{answer.text.strip()[:200]}")


def catch_up(session: requests.Session, topic: str, since: int,
             timeout: float = 30.0) -> Iterator[Notification]:
    """The pages of ``GET <topic>?since=<serial>``, oldest first; ``Gone`` on 410."""
    url: str | None = topic
    params: dict[str, str] | None = {"since": str(since)}
    for _ in range(MAX_PAGES):
        if url is None:
            return
        try:
            answer = session.get(url, params=params, timeout=timeout)
        except requests.RequestException as exc:
            raise HubError(f"catch-up {url} failed: {exc.__class__.__name__}") from None
        if answer.status_code == 410:
            raise Gone(answer.text.strip()[:300] or "410 Gone")
        if answer.status_code != 200:
            raise HubError(f"catch-up {answer.url} answered {answer.status_code}")
        try:
            page = parse(answer.content)
        except BadNotification as exc:
            raise HubError(f"catch-up {answer.url}: {exc}") from None
        yield page
        url = urljoin(answer.url, page.next_url) if page.next_url else None
        params = None
