"""Rate limits: hub requests per client address (429); verifications, fetches per host (paced)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.support.hubs import Hub
from tests.support.processes import wait_for

TOKEN = "rate-test-publisher-token"


class _SourceAdapter(HTTPAdapter):
    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def client(source: str) -> requests.Session:
    """A session whose connections come from ``source`` (a 127.x address): one client."""
    session = requests.Session()
    session.mount("http://", _SourceAdapter(source))
    return session


@pytest.fixture(scope="module")
def hub(hub_factory) -> Hub:
    return hub_factory(HUB_RATE_LIMIT_PER_MINUTE="5", HUB_PUBLISH_TOKEN=TOKEN)


SUBSCRIBE = {
    "hub.mode": "subscribe",
    "hub.topic": "http://example.invalid/feed",
    "hub.callback": "http://example.invalid/cb",
}
PUBLISH = {"hub.mode": "publish", "hub.url": "http://example.invalid/feed"}


def test_subscriptions_are_limited_per_client_address(hub):
    one, other = client("127.0.0.11"), client("127.0.0.12")
    statuses = [one.post(hub.url, data=SUBSCRIBE, timeout=10).status_code for _ in range(5)]
    assert statuses == [202] * 5
    response = one.post(hub.url, data=SUBSCRIBE, timeout=10)
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 12  # one token comes back every 12 s
    assert "too many" in response.text
    # Another address has its own allowance.
    assert other.post(hub.url, data=SUBSCRIBE, timeout=10).status_code == 202


def test_publish_pings_are_limited_per_client_address(hub):
    one = client("127.0.0.13")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    statuses = [one.post(hub.url, data=PUBLISH, headers=auth, timeout=10).status_code]
    statuses += [one.post(hub.url, data=PUBLISH, timeout=10).status_code for _ in range(6)]
    # The authenticated ping is not counted; unauthenticated ones are (401, then 429).
    assert statuses == [204] + [401] * 5 + [429]
    response = one.post(hub.url, data=SUBSCRIBE, timeout=10)
    assert response.status_code == 429 and response.headers["Retry-After"].isdigit()


def test_authenticated_publisher_is_not_rate_limited(hub):
    one = client("127.0.0.14")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    statuses = {
        one.post(hub.url, data=PUBLISH, headers=auth, timeout=10).status_code for _ in range(20)
    }
    assert statuses == {204}


@pytest.fixture(scope="module")
def paced_hub(hub_factory) -> Hub:
    return hub_factory(
        HUB_ALLOW_PRIVATE_ADDRESSES="true",
        HUB_VERIFY_RATE_PER_HOST="30",
        HUB_FETCH_RATE_PER_HOST="30",
    )


def test_verifications_are_paced_per_callback_host_and_none_is_lost(paced_hub, subscriber):
    """30 a minute per host: 30 at once, then one every 2 s; the rest wait, none is dropped."""
    topic = "http://example.invalid/paced"
    started = time.time()
    for i in range(33):
        assert paced_hub.subscribe(topic, subscriber.url(f"/v{i}")).status_code == 202
    verifications = wait_for(
        lambda: (v := subscriber.verifications()) and len(v) >= 33 and v,
        timeout=20,
        message="all 33 verifications",
    )
    times = sorted(v["at"] - started for v in verifications)
    assert times[29] < 2.0  # the burst
    assert times[30] >= 1.5 and times[32] >= 5.5  # then 2 s apart
    assert (
        paced_hub.metric("broker_hub_verifications_total", mode="subscribe", outcome="deferred")
        >= 3
    )
    for i in range(33):
        wait_for(lambda i=i: paced_hub.subscription(topic, subscriber.url(f"/v{i}")), timeout=5)


def test_fetches_are_paced_per_topic_host_and_none_is_lost(paced_hub, publisher):
    topics = [publisher.set_topic(f"/p{i}.txt", f"body {i}", "text/plain") for i in range(33)]
    started = time.time()
    for topic in topics:
        assert paced_hub.publish(topic).status_code == 204
    fetches = wait_for(
        lambda: (f := publisher.fetches()) and len(f) >= 33 and f, timeout=20, message="33 fetches"
    )
    assert sorted(f["path"] for f in fetches) == sorted(f"/p{i}.txt" for i in range(33))
    times = sorted(f["at"] - started for f in fetches)
    assert times[29] < 2.0
    assert times[30] >= 1.5 and times[32] >= 5.5
    assert paced_hub.metric("broker_hub_fetches_total", outcome="deferred") >= 3
