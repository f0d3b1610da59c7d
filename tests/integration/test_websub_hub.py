"""The hub end to end, in both shapes: embedded (``broker-hub run``) and split (web, fetcher and
deliverer as separate processes on RabbitMQ and PostgreSQL). Real publisher and subscriber HTTP
servers on loopback. Includes the equivalents of the websub.rocks hub tests 100-106."""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import feedparser
import pytest

from tests.support.hubs import RunningHub, embedded, poll, quiet_period, split, wait_posts
from tests.support.processes import wait_for

ATOM = "application/atom+xml"


def atom(*entries: tuple[str, str]) -> str:
    body = "".join(
        f"<entry><id>{eid}</id><title>{title}</title><updated>2026-11-24T00:00:00Z</updated>"
        "</entry>"
        for eid, title in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>Example index</title><id>urn:example:index</id>"
        f"<updated>2026-11-24T00:00:00Z</updated>{body}</feed>"
    )


@pytest.fixture(scope="module", params=["embedded", "split"])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    RunningHub
]:
    tmp: Path = tmp_path_factory.mktemp(request.param)
    runner = embedded if request.param == "embedded" else split
    with runner(tmp) as running:
        yield running


@pytest.fixture
def names() -> tuple[str, str]:
    """A fresh topic path and callback path, so tests sharing one hub never meet."""
    tag = uuid.uuid4().hex[:10]
    return f"/topic-{tag}", f"/cb-{tag}"


def query(record: dict) -> dict[str, list[str]]:
    return parse_qs(record["query"], keep_blank_values=True)


# -- websub.rocks 100-106 -------------------------------------------------------------------


def test_100_typical_subscriber_request(hub, publisher, subscriber, names):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, atom(("urn:e1", "one")), ATOM)
    callback = subscriber.url(cb) + "?mirror=eu-1&x=a%20b"
    hub.subscribe(topic, callback)
    hub.subscribed(topic, callback)

    (verification,) = subscriber.verifications(cb)
    params = query(verification)
    assert params["mirror"] == ["eu-1"] and params["x"] == ["a b"]  # its own query kept
    assert params["hub.mode"] == ["subscribe"]
    assert params["hub.topic"] == [topic]
    assert len(params["hub.challenge"][0]) >= 32
    assert params["hub.lease_seconds"] == ["864000"]

    hub.publish(topic)
    (post,) = wait_posts(subscriber, cb, 1)
    assert post["headers"]["content-type"] == ATOM
    assert post["headers"]["link"] == f'<{hub.url}>; rel="hub", <{topic}>; rel="self"'
    assert "x-hub-signature" not in post["headers"]
    assert subscriber.body(post) == atom(("urn:e1", "one")).encode()


def test_101_subscriber_includes_a_secret(hub, publisher, subscriber, names):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, "plain text\n", "text/plain; charset=utf-8")
    callback = subscriber.url(cb)
    hub.subscribe(topic, callback, secret="s3cr3t-\u00e9")
    hub.subscribed(topic, callback)
    hub.publish(topic)
    (post,) = wait_posts(subscriber, cb, 1)
    body = subscriber.body(post)
    expected = hmac.new("s3cr3t-\u00e9".encode(), body, hashlib.sha256).hexdigest()
    assert post["headers"]["x-hub-signature"] == f"sha256={expected}"


def test_102_additional_parameters_are_ignored(hub, publisher, subscriber, names):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, "x", "text/plain")
    response = hub.post(mode="subscribe", topic=topic, callback=subscriber.url(cb),
                        foo="bar", **{"unknown.param": "1"})
    assert response.status_code == 202
    hub.subscribed(topic, subscriber.url(cb))


def test_103_resubscribe_before_expiry_renews_and_replaces_only_once_verified(
    hub, publisher, subscriber, names
):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, "v1", "text/plain")
    callback = subscriber.url(cb)
    hub.subscribe(topic, callback, secret="old-secret", lease_seconds="3600")
    first = hub.subscribed(topic, callback)
    assert first.lease_seconds == 3600

    # A re-subscription whose verification fails changes nothing.
    subscriber.configure(cb, verify="wrong")
    hub.subscribe(topic, callback, secret="new-secret", lease_seconds="7200")
    wait_for(lambda: len(subscriber.verifications(cb)) == 2, timeout=10)
    quiet_period(0.5)
    assert hub.storage.find_subscription(topic, callback).lease_seconds == 3600

    # A verified one replaces the lease and the secret; still one subscription.
    subscriber.configure(cb, verify="echo")
    hub.subscribe(topic, callback, secret="new-secret", lease_seconds="7200")
    wait_for(lambda: hub.storage.find_subscription(topic, callback).lease_seconds == 7200,
             timeout=10)
    hub.publish(topic)
    (post,) = wait_posts(subscriber, cb, 1)
    expected = hmac.new(b"new-secret", subscriber.body(post), hashlib.sha256).hexdigest()
    assert post["headers"]["x-hub-signature"] == f"sha256={expected}"
    quiet_period(0.5)
    assert len(subscriber.posts(cb)) == 1


def test_104_unsubscribe(hub, publisher, subscriber, names):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, "v1", "text/plain")
    callback = subscriber.url(cb)
    hub.subscribe(topic, callback)
    hub.subscribed(topic, callback)
    assert hub.post(mode="unsubscribe", topic=topic, callback=callback).status_code == 202
    wait_for(lambda: hub.storage.find_subscription(topic, callback) is None, timeout=10)
    last = subscriber.verifications(cb)[-1]
    assert query(last)["hub.mode"] == ["unsubscribe"]
    assert "hub.lease_seconds" not in query(last)
    hub.publish(topic)
    wait_for(lambda: publisher.fetches(topic_path), timeout=10)
    quiet_period()
    assert subscriber.posts(cb) == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/plain", b"105: plain text, delivered whole\n"),
     ("application/json", b'{"106": "json, delivered whole"}')],
    ids=["105-plaintext", "106-json"],
)
def test_105_106_other_content_is_delivered_whole(
    hub, publisher, subscriber, names, content_type, body
):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, body, content_type)
    hub.subscribe(topic, subscriber.url(cb))
    hub.subscribed(topic, subscriber.url(cb))
    hub.publish(topic)
    (post,) = wait_posts(subscriber, cb, 1)
    assert post["headers"]["content-type"] == content_type
    assert subscriber.body(post) == body


# -- distribution ---------------------------------------------------------------------------


def test_atom_delivers_only_new_and_changed_entries(hub, publisher, subscriber, names):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, atom(("urn:a", "a"), ("urn:b", "b")), ATOM)
    hub.subscribe(topic, subscriber.url(cb))
    hub.subscribed(topic, subscriber.url(cb))
    hub.publish(topic)
    wait_posts(subscriber, cb, 1)

    publisher.set_topic(topic_path, atom(("urn:c", "c"), ("urn:a", "a"), ("urn:b", "b2")), ATOM)
    hub.publish(topic)
    posts = wait_posts(subscriber, cb, 2)
    parsed = feedparser.parse(subscriber.body(posts[1]))
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Example index" and parsed.feed.id == "urn:example:index"
    assert [(e.id, e.title) for e in parsed.entries] == [("urn:c", "c"), ("urn:b", "b2")]

    # byte-identical content is not delivered twice
    hub.publish(topic)
    wait_for(lambda: len(publisher.fetches(topic_path)) == 3, timeout=10)
    quiet_period()
    assert len(subscriber.posts(cb)) == 2


def test_conditional_get_and_304(hub, publisher, subscriber, names):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, "v1", "text/plain", etag='"v1"',
                                last_modified="Tue, 24 Nov 2026 10:00:00 GMT")
    hub.subscribe(topic, subscriber.url(cb))
    hub.subscribed(topic, subscriber.url(cb))
    hub.publish(topic)
    wait_posts(subscriber, cb, 1)
    hub.publish(topic)
    fetches = poll(lambda: publisher.fetches(topic_path), lambda f: len(f) == 2)
    assert fetches[1]["headers"]["if-none-match"] == '"v1"'
    assert fetches[1]["headers"]["if-modified-since"] == "Tue, 24 Nov 2026 10:00:00 GMT"
    assert fetches[1]["status"] == 304
    quiet_period()
    assert len(subscriber.posts(cb)) == 1


def test_publish_without_subscribers_and_several_topics(hub, publisher, names):
    topic_path, _ = names
    one = publisher.set_topic(topic_path + "-1", "1", "text/plain")
    two = publisher.set_topic(topic_path + "-2", "2", "text/plain")
    hub.publish(one, two)
    wait_for(lambda: publisher.fetches(topic_path + "-1") and publisher.fetches(topic_path + "-2"),
             timeout=10)


def test_pings_before_the_fetch_are_coalesced(hub, publisher, subscriber, names):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, "v1", "text/plain")
    hub.subscribe(topic, subscriber.url(cb))
    hub.subscribed(topic, subscriber.url(cb))
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: hub.publish(topic), range(30)))
    wait_posts(subscriber, cb, 1)
    quiet_period(1.0)
    fetches = len(publisher.fetches(topic_path))
    assert 1 <= fetches < 30, fetches
    assert len(subscriber.posts(cb)) == 1


def test_410_gone_ends_the_subscription(hub, publisher, subscriber, names):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, "v1", "text/plain")
    callback = subscriber.url(cb)
    subscriber.configure(cb, deliver_default=410)
    hub.subscribe(topic, callback)
    hub.subscribed(topic, callback)
    hub.publish(topic)
    wait_posts(subscriber, cb, 1)
    wait_for(lambda: hub.storage.find_subscription(topic, callback) is None, timeout=10)
    quiet_period()
    assert len(subscriber.posts(cb)) == 1  # no retry after 410


def test_failures_are_retried_with_the_same_delivery_id(hub, publisher, subscriber, names):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, "v1", "text/plain")
    subscriber.configure(cb, deliver_statuses=[500, 302])  # a 3xx is a failure, never followed
    hub.subscribe(topic, subscriber.url(cb))
    hub.subscribed(topic, subscriber.url(cb))
    hub.publish(topic)
    posts = wait_posts(subscriber, cb, 3, timeout=15)
    assert [p["status"] for p in posts] == [500, 302, 200]
    ids = {p["headers"]["x-hub-delivery-id"] for p in posts}
    assert len(ids) == 1
    assert subscriber.requests("/_redirected" + cb) == []


def test_failed_verification_changes_nothing(hub, publisher, subscriber, names):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, "v1", "text/plain")
    for mode in ("wrong", "404", "redirect"):
        path = f"{cb}-{mode}"
        subscriber.configure(path, verify=mode)
        hub.subscribe(topic, subscriber.url(path))
    wait_for(lambda: all(subscriber.verifications(f"{cb}-{m}") for m in ("wrong", "404",
                                                                           "redirect")),
             timeout=10)
    quiet_period()
    assert hub.storage.count_for_topic(topic, 0) == 0
    assert subscriber.requests(f"/_redirected{cb}-redirect") == []  # never followed


def test_leases_are_clamped_and_expired_subscriptions_get_nothing(
    hub, publisher, subscriber, names
):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, "v1", "text/plain")
    long_cb = subscriber.url(cb + "-long")
    hub.subscribe(topic, long_cb, lease_seconds=str(10**9))
    assert hub.subscribed(topic, long_cb).lease_seconds == 2592000
    (verification,) = subscriber.verifications(cb + "-long")
    assert query(verification)["hub.lease_seconds"] == ["2592000"]

    short_cb = subscriber.url(cb + "-short")
    hub.subscribe(topic, short_cb, lease_seconds="1")  # HUB_LEASE_MIN=1 in these hubs
    hub.subscribed(topic, short_cb)
    quiet_period(1.5)
    hub.publish(topic)
    wait_posts(subscriber, cb + "-long", 1)
    quiet_period()
    assert subscriber.posts(cb + "-short") == []


def test_metrics_track_delivery_latency_per_mirror(hub, publisher, subscriber, names):
    topic_path, cb = names
    topic = publisher.set_topic(topic_path, "v1", "text/plain")
    hub.subscribe(topic, subscriber.url(cb))
    hub.subscribed(topic, subscriber.url(cb))
    hub.publish(topic)
    wait_posts(subscriber, cb, 1)
    mirror = f'mirror="127.0.0.1:{subscriber.port}"'
    text = poll(hub.metrics_text, lambda t: f"latency_seconds_count{{{mirror}}}" in t)
    assert f"broker_hub_delivery_latency_seconds_count{{{mirror}}}" in text
    assert f'broker_hub_deliveries_total{{{mirror},outcome="delivered"}}' in text
    assert "broker_hub_pings_total" in text
    assert cb not in text  # labels carry host:port, never a URL


def test_healthz(hub):
    import requests

    assert requests.get(hub.url + "healthz", timeout=5).status_code == 200
