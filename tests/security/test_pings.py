"""Pings of topics nobody subscribes (issue 15): answered 204 as WebSub says, but not fetched,
not stored, not shown, in embedded and split mode. Before the fix the hub fetched every URL
anyone named and kept the body for 7 days."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import requests

from tests.integration.hubs import RunningHub, embedded_hub, split_hub, wait_posts
from tests.security.helpers import quiet

MODES = {"embedded": embedded_hub, "split": split_hub}


@pytest.fixture(params=list(MODES))
def hub(request, tmp_path) -> Iterator[RunningHub]:
    with MODES[request.param](tmp_path) as running:
        yield running


def test_a_topic_nobody_subscribes_is_not_fetched_nor_stored(hub, publisher, subscriber):
    nobody = publisher.set_topic("/nobody.xml", b"x" * 50_000, "text/plain")
    response = requests.post(
        hub.url, data=[("hub.mode", "publish"), ("hub.url", nobody)], timeout=10
    )
    assert response.status_code == 204  # WebSub: publish answers 2xx even with no subscriber
    quiet(1.5)
    assert publisher.fetches("/nobody.xml") == []
    assert hub.storage.topic_state(nobody) is None
    assert nobody not in requests.get(hub.url + "status", timeout=10).text
    with contextlib.closing(hub.storage.backend.conn.cursor()) as cur:
        cur.execute("SELECT COUNT(*) FROM notifications")
        assert cur.fetchone()[0] == 0

    # A subscribed topic is still fetched and delivered as before.
    topic = publisher.set_topic("/someone.xml", b"v1", "text/plain")
    hub.subscribe(topic, subscriber.url("/cb"))
    hub.subscribed(topic, subscriber.url("/cb"))
    hub.publish(topic)
    (post,) = wait_posts(subscriber, "/cb", 1, timeout=20)
    assert subscriber.body(post) == b"v1"
