"""Fixtures of the PyPI bridge's tests: the fake index (a real XML-RPC/HTTP server in its own
process, shaped like PyPI) and a hub whose poller watches it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_hub.signing import verify_signature
from tests.support.fake_pypi import FakePyPIClient, running_fake_pypi
from tests.support.hubs import RunningHub, embedded, poll
from tests.support.subscriber import SubscriberClient

SECRET = "mirror-secret"
USER_AGENT = "broker-hub tests (https://example.org/contact)"


@pytest.fixture
def fake_pypi() -> Iterator[tuple[str, FakePyPIClient]]:
    """(index URL, control client) of a fresh fake index."""
    with running_fake_pypi() as (server, client):
        yield server.url("").rstrip("/"), client


def bridge_env(index_url: str, **overrides: str) -> dict[str, str]:
    return {
        "HUB_PYPI_URL": index_url,
        "HUB_PYPI_POLL_INTERVAL": "0.2",
        "HUB_PYPI_FALLBACK_AFTER": "1",
        "HUB_PYPI_TIMEOUT": "10",
        "HUB_PYPI_USER_AGENT": USER_AGENT,
        **overrides,
    }


@pytest.fixture
def bridge(tmp_path: Path, fake_pypi: tuple[str, FakePyPIClient]) -> Iterator[RunningHub]:
    """``broker-hub run`` with the poller watching the fake index."""
    with embedded(tmp_path, **bridge_env(fake_pypi[0])) as hub:
        yield hub


def follow(hub: RunningHub, subscriber: SubscriberClient, topic_path: str, path: str) -> str:
    """Subscribe ``path`` of the fake mirror to a hub topic; wait until verified."""
    topic = hub.url + topic_path
    hub.subscribe(topic, subscriber.url(path), secret=SECRET)
    hub.subscribed(topic, subscriber.url(path))
    return topic


def pushes(subscriber: SubscriberClient, path: str) -> list[dict[str, Any]]:
    """The JSON notifications ``path`` received, each with its headers, signature checked."""
    out = []
    for record in subscriber.posts(path):
        body = SubscriberClient.body(record)
        headers = record["headers"]
        assert headers["content-type"] == "application/json"
        assert verify_signature(SECRET, body, headers["x-hub-signature"])
        out.append({**json.loads(body), "_sequence": int(headers["x-hub-sequence"])})
    return out


def wait_pushes(
    subscriber: SubscriberClient,
    path: str,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    return poll(lambda: pushes(subscriber, path), until, timeout=timeout,
                message=f"notifications at {path}")  # fmt: skip


def serials(notifications: list[dict[str, Any]]) -> list[int]:
    """The journal serials delivered, in order (degraded notifications from RSS have none)."""
    return [e["serial"] for n in notifications if not n["degraded"] for e in n["entries"]]
