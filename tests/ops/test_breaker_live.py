"""The per-mirror circuit breaker in a running hub: ten subscriptions on one failing mirror
open it, later deliveries are held back (outcome "paused"), /status shows the mirror paused,
nothing is unsubscribed, and once the mirror answers again everything is delivered."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.hubs import RunningHub, embedded_hub
from tests.support.processes import start_server, wait_for
from tests.support.publisher import PublisherClient
from tests.support.subscriber import SubscriberClient

ATOM = (
    '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
    "<title>t</title><id>urn:t</id><updated>2026-11-24T00:00:00Z</updated>"
    "<entry><id>e1</id><title>one</title><updated>2026-11-24T00:00:00Z</updated></entry></feed>"
)


@pytest.fixture
def servers() -> Iterator[tuple[PublisherClient, SubscriberClient]]:
    pub, sub = start_server("tests.support.publisher"), start_server("tests.support.subscriber")
    try:
        yield PublisherClient(pub.url()), SubscriberClient(sub.url())
    finally:
        for server in (pub, sub):
            server.stop()


def _paused_count(hub: RunningHub) -> float:
    text = requests.get(hub.url + "metrics", timeout=10).text
    return sum(float(v) for v in re.findall(
        r'^broker_hub_deliveries_total{[^}]*outcome="paused"[^}]*} (\S+)$', text, re.M))


def test_failing_mirror_is_paused_probed_and_recovers(
    tmp_path: Path, servers: tuple[PublisherClient, SubscriberClient]
) -> None:
    publisher, mirror = servers
    with embedded_hub(tmp_path, HUB_DELIVERY_MAX_ATTEMPTS="30",
                      HUB_DELIVERY_BACKOFF_BASE="0.2") as hub:
        topic = publisher.set_topic(f"/feed-{uuid.uuid4().hex[:6]}", ATOM)
        paths = [f"/cb{i}" for i in range(10)]
        for path in paths:
            mirror.configure(path, deliver_default=503)
            hub.subscribe(topic, mirror.url(path))
        for path in paths:
            hub.subscribed(topic, mirror.url(path))
        hub.publish(topic)
        wait_for(lambda: _paused_count(hub) > 0, timeout=60, interval=0.3,
                 message="deliveries to the failing mirror held back by the breaker")

        def state() -> str:
            doc = requests.get(hub.url + "status.json", timeout=10).json()
            return next((m["state"] for m in doc["mirrors"]), "")

        wait_for(lambda: state() == "paused", timeout=30, interval=0.5,
                 message="/status shows the mirror paused")
        assert all(hub.storage.find_subscription(topic, mirror.url(p)) for p in paths)
        for path in paths:
            mirror.configure(path, deliver_default=200)
        wait_for(lambda: all(any(r["status"] == 200 for r in mirror.posts(p)) for p in paths),
                 timeout=90, interval=0.5, message="every subscription delivered after recovery")
        wait_for(lambda: state() == "healthy", timeout=30, interval=0.5,
                 message="/status shows the mirror healthy again")
