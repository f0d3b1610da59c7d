"""SSRF: no outbound request to forbidden addresses, at subscribe, verification, fetch and delivery.

The hub runs with its default ``HUB_ALLOW_PRIVATE_ADDRESSES=false``; the fake subscriber and
publisher listen on loopback, so "refused" is exactly what is observable: they never see a
request.
"""

from __future__ import annotations

import time

import pytest

from broker_hub.config import Settings
from broker_hub.metrics import Metrics
from tests.security.helpers import loopback_alias, quiet
from tests.support.hubs import Hub, embedded, split
from tests.support.processes import wait_for

PUBLIC_TOPIC = "http://example.invalid/feed"
PUBLIC_CALLBACK = "http://example.invalid/cb"
FORBIDDEN_HOSTS = [
    "127.0.0.1",
    "127.9.9.9",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "localhost",
    "LocalHost.",
    "mirror.localhost",
    "ip6-localhost",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::ffff:10.0.0.1]",
    "[::127.0.0.1]",
    "[64:ff9b::a9fe:a9fe]",
    "0.0.0.0",
    "[::]",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.0.1",
    "100.64.0.1",
    "169.254.169.254",
    "[fd00:ec2::254]",
    "[fe80::1]",
    "[fc00::1]",
    "224.0.0.1",
    "[ff02::1]",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "198.18.0.1",
]


@pytest.fixture(scope="module")
def hub(hub_factory) -> Hub:
    return hub_factory()  # defaults: private addresses refused


@pytest.mark.parametrize("host", FORBIDDEN_HOSTS)
def test_forbidden_callback_refused_at_subscribe_with_403(hub, host):
    response = hub.subscribe(PUBLIC_TOPIC, f"http://{host}:8080/cb")
    assert response.status_code == 403, response.text
    assert "hub.callback" in response.text and "forbidden" in response.text


@pytest.mark.parametrize("host", FORBIDDEN_HOSTS)
def test_forbidden_topic_refused_at_subscribe_and_publish_with_403(hub, host):
    topic = f"https://{host}/feed"
    response = hub.subscribe(topic, PUBLIC_CALLBACK)
    assert response.status_code == 403, response.text
    assert "hub.topic" in response.text
    response = hub.publish(topic)
    assert response.status_code == 403, response.text
    assert "hub.url" in response.text


def test_name_resolving_to_loopback_is_refused_at_verification(hub, subscriber):
    """Not forbidden by its spelling, so 202; refused on the resolved address: no GET arrives."""
    alias = loopback_alias()
    callback = f"http://{alias}:{subscriber.port}/alias-cb"
    refused_before = hub.metric(
        "broker_hub_verifications_total", mode="subscribe", outcome="failed"
    )
    response = hub.subscribe(PUBLIC_TOPIC, callback)
    assert response.status_code == 202, response.text
    wait_for(
        lambda: (
            hub.metric("broker_hub_verifications_total", mode="subscribe", outcome="failed")
            > refused_before
        ),
        timeout=10,
        message="the verification to be refused",
    )
    assert subscriber.requests() == []
    assert hub.subscription(PUBLIC_TOPIC, callback) is None


def test_name_resolving_to_loopback_is_refused_at_fetch(hub, publisher):
    alias = loopback_alias()
    publisher.set_topic("/alias-feed.xml", b"<feed/>")
    topic = f"http://{alias}:{publisher.port}/alias-feed.xml"
    refused_before = hub.metric("broker_hub_fetches_total", outcome="refused")
    assert hub.publish(topic).status_code == 204
    wait_for(
        lambda: hub.metric("broker_hub_fetches_total", outcome="refused") > refused_before,
        timeout=10,
        message="the fetch to be refused",
    )
    assert publisher.fetches() == []


def test_every_redirect_hop_of_a_fetch_is_checked(tmp_path, publisher, monkeypatch):
    """The product's Fetcher (real HTTP, real SQLite, memory broker) following a redirect.

    Here the policy is narrowed to forbid only 127.0.0.2, so the first hop (the publisher on
    127.0.0.1) is allowed and the redirect to 127.0.0.2 must be refused before connecting:
    with private addresses refused for real, no local server could serve the first hop.
    """
    from broker_hub import netguard
    from broker_hub.messages import FetchTopic
    from broker_hub.messaging import Messaging
    from broker_hub.services import Services
    from broker_hub.storage import Storage
    from workers.fetcher import Fetcher
    from workers.http_engine import HttpEngine

    monkeypatch.setattr(netguard, "is_forbidden_ip", lambda address: str(address) == "127.0.0.2")
    target = f"http://127.0.0.2:{publisher.port}/private.xml"
    topic = publisher.set_topic("/hop.xml", b"", redirect=target)
    publisher.set_topic("/private.xml", b"<feed/>")
    storage = Storage.from_url(f"sqlite:///{tmp_path / 'f.sqlite3'}")
    storage.create_schema()
    messaging = Messaging("memory://", namespace="hop")
    metrics = Metrics()
    settings = Settings(allow_private_addresses=False)
    engine = HttpEngine(settings)
    engine.start()
    fetcher = Fetcher(Services(settings, storage, messaging, metrics), engine=engine)
    storage.activate(topic, "https://mirror.example/cb", None, 3600, time.time())
    seq = storage.record_ping(topic).seq
    fetcher.handle(FetchTopic(topic=topic, seq=seq, pinged_at=time.time()))
    assert [f["path"] for f in publisher.fetches()] == ["/hop.xml"]
    assert metrics.fetches.labels("refused")._value.get() == 1
    assert metrics.fetches.labels("changed")._value.get() == 0
    engine.stop()
    messaging.close()
    storage.close()


def test_verification_never_follows_redirects(hub_factory, subscriber):
    hub = hub_factory(HUB_ALLOW_PRIVATE_ADDRESSES="true")
    subscriber.configure("/redirecting", verify="redirect")
    callback = subscriber.url("/redirecting")
    assert hub.subscribe(PUBLIC_TOPIC, callback).status_code == 202
    wait_for(lambda: subscriber.verifications("/redirecting"), timeout=10)
    quiet(0.5)
    assert [r["path"] for r in subscriber.requests()] == ["/redirecting"]
    assert hub.subscription(PUBLIC_TOPIC, callback) is None


def test_delivery_never_follows_redirects(hub_factory, subscriber, publisher):
    hub = hub_factory(HUB_ALLOW_PRIVATE_ADDRESSES="true")
    topic = publisher.set_topic("/redir-delivery.txt", b"payload", "text/plain")
    subscriber.configure("/moved", deliver_statuses=[302, 302, 302, 302])
    callback = subscriber.url("/moved")
    assert hub.subscribe(topic, callback).status_code == 202
    wait_for(lambda: hub.subscription(topic, callback), timeout=10)
    assert hub.publish(topic).status_code == 204
    wait_for(lambda: len(subscriber.posts("/moved")) >= 2, timeout=10)  # retried, not followed
    quiet(0.5)
    assert not [r for r in subscriber.requests() if r["path"].startswith("/_redirected")]


def test_forbidden_at_delivery_time_not_only_at_subscribe(tmp_path, subscriber, publisher):
    """A subscription made while private addresses were allowed is refused once they are not.

    Phase 1: an embedded hub allowing private addresses verifies a loopback callback.
    Phase 2: web and fetcher still allow them (so the topic is fetched) but the deliverer, a
    separate process on RabbitMQ, does not: no POST reaches the callback; and a denial
    (``hub.mode=denied``, over the per-topic limit) to a name resolving to loopback is not
    sent either.
    """
    settings = {
        "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.sqlite3'}",  # shared by both phases
        "HUB_DELIVERY_MAX_ATTEMPTS": "2",
        "HUB_HTTP_TIMEOUT": "2",
    }
    topic = publisher.set_topic("/late.txt", b"v1", "text/plain")
    callback = subscriber.url("/late")

    with embedded(tmp_path, **settings) as hub:  # private addresses allowed
        hub.subscribe(topic, callback)
        wait_for(lambda: subscriber.verifications("/late"), timeout=10)
        hub.subscribed(topic, callback)

    with split(tmp_path, roles=("fetcher",), **settings) as hub:
        hub.start("deliverer", HUB_ALLOW_PRIVATE_ADDRESSES="false",
                  HUB_MAX_SUBSCRIPTIONS_PER_TOPIC="1")
        subscriber.reset()
        hub.publish(topic)
        mirror = f"127.0.0.1:{subscriber.port}"
        wait_for(lambda: hub.metric("broker_hub_deliveries_total", mirror=mirror,
                                    outcome="refused"), timeout=15)
        assert [f["path"] for f in publisher.fetches("/late.txt")]  # it was fetched

        hub.subscribe(topic, f"http://{loopback_alias()}:{subscriber.port}/denied")
        wait_for(lambda: hub.metric("broker_hub_verifications_total", mode="subscribe",
                                    outcome="denied"), timeout=15)
        quiet(0.5)
        assert subscriber.requests() == []
