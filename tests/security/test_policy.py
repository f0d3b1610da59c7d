"""HUB_TOPIC_ALLOWLIST, the publisher token, and secrets kept out of logs, metrics and pages."""

from __future__ import annotations

import pytest
import requests

from broker_hub.signing import verify_signature
from tests.security.helpers import quiet
from tests.support.hubs import Hub
from tests.support.processes import wait_for

TOKEN = "publisher-token-Zq8vX2"
SECRET = "subscriber-secret-Kp4wR7"
QUERY_SECRET = "query-secret-Hn5tL9"


@pytest.fixture(scope="module")
def hub(hub_factory, publisher_server) -> Hub:
    return hub_factory(
        HUB_ALLOW_PRIVATE_ADDRESSES="true",
        HUB_TOPIC_ALLOWLIST=f"http://example.invalid/other/,{publisher_server.url('/allowed/')}",
        HUB_PUBLISH_TOKEN=TOKEN,
        HUB_LOG_LEVEL="DEBUG",
    )


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_topic_outside_allowlist_is_403_without_fetch_or_verification(hub, subscriber, publisher):
    topic = publisher.set_topic("/elsewhere/feed.xml", b"<feed/>")
    response = hub.subscribe(topic, subscriber.url("/al"))
    assert response.status_code == 403
    assert "hub.topic" in response.text and "HUB_TOPIC_ALLOWLIST" in response.text
    response = hub.publish(topic, headers=_auth())
    assert response.status_code == 403
    assert "hub.url" in response.text
    # A prefix is a prefix of the URL, not of its host: this one is not in the list either.
    sneaky = "http://example.invalid/other.evil/feed"
    assert hub.subscribe(sneaky, subscriber.url("/al")).status_code == 403
    quiet(0.5)
    assert subscriber.requests() == []
    assert publisher.fetches() == []


def test_topic_inside_allowlist_is_served(hub, subscriber, publisher):
    topic = publisher.set_topic("/allowed/feed.txt", b"v1", "text/plain")
    callback = subscriber.url("/in")
    assert hub.subscribe(topic, callback).status_code == 202
    wait_for(lambda: hub.subscription(topic, callback), timeout=10)
    assert hub.publish(topic, headers=_auth()).status_code == 204
    wait_for(lambda: subscriber.posts("/in"), timeout=10)


@pytest.mark.parametrize(
    "headers",
    [{}, _auth("wrong"), {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "no-scheme", "basic"],
)
def test_publish_needs_the_token(hub, publisher, headers):
    topic = publisher.url("/allowed/feed.txt")
    response = hub.publish(topic, headers=headers)
    assert response.status_code == 401
    assert "token" in response.text
    assert TOKEN not in response.text


def test_publish_token_in_form_and_any_case_scheme(hub, publisher):
    topic = publisher.url("/allowed/feed.txt")
    data = {"hub.mode": "publish", "hub.url": topic, "hub.token": TOKEN}
    assert hub.post(data).status_code == 204
    assert hub.publish(topic, headers={"Authorization": f"bearer {TOKEN}"}).status_code == 204


def test_subscribing_needs_no_token(hub, subscriber, publisher):
    topic = publisher.url("/allowed/feed.txt")
    assert hub.subscribe(topic, subscriber.url("/nt")).status_code == 202


def test_secrets_never_appear_in_logs_metrics_pages_or_errors(hub, subscriber, publisher):
    topic = publisher.set_topic("/allowed/signed.txt", b"signed v1", "text/plain")
    callback = subscriber.url("/signed")
    assert hub.subscribe(topic, callback, secret=SECRET).status_code == 202
    # A bodiless POST carrying its parameters (and a secret) in the query string.
    params = {
        "hub.mode": "subscribe",
        "hub.topic": topic,
        "hub.callback": callback + "2",
        "hub.secret": QUERY_SECRET,
    }
    assert requests.post(hub.url, params=params, timeout=10).status_code == 202
    wait_for(lambda: hub.subscription(topic, callback), timeout=10)
    wait_for(lambda: hub.subscription(topic, callback + "2"), timeout=10)
    # Refusals that involve a secret or a token do not echo them.
    errors = [
        hub.subscribe(topic, callback, secret=SECRET + "x" * 200),
        hub.subscribe(topic, "ftp://x", secret=SECRET),
        hub.post(
            {
                "hub.mode": "subscribe",
                "hub.topic": topic,
                "hub.callback": callback,
                "hub.secret": [SECRET, SECRET + "2"],
            }
        ),
        hub.publish(topic, headers=_auth(TOKEN + "x")),
    ]
    assert [e.status_code for e in errors] == [400, 400, 400, 401]
    assert hub.publish(topic, headers=_auth()).status_code == 204
    [post] = wait_for(lambda: subscriber.posts("/signed"), timeout=10)
    assert verify_signature(SECRET, subscriber.body(post), post["headers"]["x-hub-signature"])
    wait_for(lambda: subscriber.posts("/signed2"), timeout=10)

    texts = [e.text for e in errors]
    for path in ("", "metrics", "status", "healthz"):
        texts.append(requests.get(hub.url + path, timeout=10).text)
    texts.append(hub.log())
    assert "POST /?<redacted>" in hub.log()  # the query-string request was logged, redacted
    for text in texts:
        for secret in (SECRET, QUERY_SECRET, TOKEN):
            assert secret not in text
