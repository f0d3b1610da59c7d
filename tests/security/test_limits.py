"""Bounds: fetched body size and time, verification response size, subscriptions, hostile XML."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.security.helpers import quiet
from tests.support.hostile_xml import billion_laughs
from tests.support.hubs import Hub
from tests.support.processes import wait_for

TEXT = "text/plain"
ATOM = "application/atom+xml"
FEED = (
    '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><id>urn:t</id>'
    "<title>t</title><entry><id>urn:e1</id><title>{title}</title></entry></feed>"
)
BILLION_LAUGHS = billion_laughs(
    '<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:t</id>\n'
    "<entry><id>urn:e</id><title>&lol9;</title></entry></feed>"
)
XXE = """<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:t</id>
<entry><id>urn:e</id><title>&xxe;</title></entry></feed>"""


@pytest.fixture(scope="module")
def hub(hub_factory) -> Hub:
    return hub_factory(HUB_ALLOW_PRIVATE_ADDRESSES="true", HUB_HTTP_TIMEOUT="1")


def _subscribed(hub: Hub, subscriber, topic: str, path: str) -> str:
    callback = subscriber.url(path)
    assert hub.subscribe(topic, callback).status_code == 202
    wait_for(lambda: hub.subscription(topic, callback), timeout=10, message="verification")
    return callback


def _fetches(hub: Hub, outcome: str) -> float:
    return hub.metric("broker_hub_fetches_total", outcome=outcome)


def test_fetched_body_size_is_capped_at_10_mib_by_default(hub, subscriber, publisher):
    topic = publisher.set_topic(
        "/big.bin", b"x" * (10 * 1024 * 1024 + 1), "application/octet-stream"
    )
    _subscribed(hub, subscriber, topic, "/big")
    before = _fetches(hub, "refused")
    assert hub.publish(topic).status_code == 204
    wait_for(lambda: _fetches(hub, "refused") > before, timeout=15, message="refused fetch")
    quiet(0.3)
    assert subscriber.posts("/big") == []
    # The same topic within the cap is delivered: the pipeline works, only the size refused it.
    publisher.set_topic("/big.bin", b"x" * (1024 * 1024), "application/octet-stream")
    assert hub.publish(topic).status_code == 204
    [post] = wait_for(lambda: subscriber.posts("/big"), timeout=15)
    assert len(subscriber.body(post)) == 1024 * 1024


class _Drip(BaseHTTPRequestHandler):
    """Promises 100 kB, sends a byte every 0.2 s (each read well inside the timeout)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", TEXT)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(100000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)


class _HugeChallenge(BaseHTTPRequestHandler):
    """Answers a verification with the challenge followed by 100 MiB; counts what got out."""

    protocol_version = "HTTP/1.1"
    sent: list[int] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        challenge = parse_qs(urlsplit(self.path).query)["hub.challenge"][0].encode()
        total = 100 * 1024 * 1024
        self.send_response(200)
        self.send_header("Content-Type", TEXT)
        self.send_header("Content-Length", str(len(challenge) + total))
        self.end_headers()
        sent = 0
        block = b"y" * 65536
        try:
            self.wfile.write(challenge)
            while sent < total:
                self.wfile.write(block)
                sent += len(block)
        except OSError:
            pass
        type(self).sent.append(sent)


@contextlib.contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_time_is_bounded(hub, subscriber):
    """HUB_HTTP_TIMEOUT=1: a body that trickles in is abandoned after ~3 s, not ~5 hours."""
    with _serve(_Drip) as base:
        topic = base + "/slow.txt"
        _subscribed(hub, subscriber, topic, "/slow")
        before = _fetches(hub, "failed")
        started = time.monotonic()
        assert hub.publish(topic).status_code == 204
        wait_for(lambda: _fetches(hub, "failed") > before, timeout=10, message="fetch abandoned")
        assert time.monotonic() - started < 6
    assert subscriber.posts("/slow") == []


def test_verification_response_read_is_bounded(hub):
    """A callback answering the challenge plus 100 MiB is not verified, and is not read."""
    _HugeChallenge.sent = []
    with _serve(_HugeChallenge) as base:
        callback = base + "/huge"
        topic = "http://example.invalid/feed"
        assert hub.subscribe(topic, callback).status_code == 202
        wait_for(lambda: _HugeChallenge.sent, timeout=15, message="the callback to give up")
        assert _HugeChallenge.sent[0] < 32 * 1024 * 1024  # socket buffers at most, not 100 MiB
    assert hub.subscription(topic, callback) is None
    assert hub.healthy()


def test_subscriptions_per_topic_and_per_callback_host_are_limited(hub_factory, subscriber):
    hub = hub_factory(
        HUB_ALLOW_PRIVATE_ADDRESSES="true",
        HUB_MAX_SUBSCRIPTIONS_PER_TOPIC="2",
        HUB_MAX_SUBSCRIPTIONS_PER_HOST="3",
    )
    t1, t2, t3 = (f"http://example.invalid/limit{i}" for i in (1, 2, 3))
    _subscribed(hub, subscriber, t1, "/l1")
    _subscribed(hub, subscriber, t1, "/l2")
    # A third subscription to t1: over the per-topic limit.
    assert hub.subscribe(t1, subscriber.url("/l3")).status_code == 202
    [denial] = wait_for(lambda: subscriber.requests("/l3"), timeout=10)
    assert "hub.mode=denied" in denial["query"] and "hub.reason=" in denial["query"]
    assert "limit" in denial["query"]
    assert hub.subscription(t1, subscriber.url("/l3")) is None
    # The callback host now has 2; one more is fine, the fourth is over the per-host limit.
    _subscribed(hub, subscriber, t2, "/l4")
    assert hub.subscribe(t3, subscriber.url("/l5")).status_code == 202
    [denial] = wait_for(lambda: subscriber.requests("/l5"), timeout=10)
    assert "hub.mode=denied" in denial["query"]
    assert hub.subscription(t3, subscriber.url("/l5")) is None
    # Re-subscribing an existing subscription is never denied (it renews).
    assert hub.subscribe(t1, subscriber.url("/l1")).status_code == 202
    wait_for(lambda: len(subscriber.verifications("/l1")) == 2, timeout=10)


@pytest.mark.parametrize(("name", "body"), [("laughs", BILLION_LAUGHS), ("xxe", XXE)])
def test_hostile_xml_is_refused_harmlessly(hub, subscriber, publisher, name, body):
    topic = publisher.set_topic(f"/{name}.xml", FEED.format(title="fine"), ATOM)
    path = f"/xml-{name}"
    _subscribed(hub, subscriber, topic, path)
    assert hub.publish(topic).status_code == 204
    wait_for(lambda: subscriber.posts(path), timeout=10, message="the well-formed feed")
    publisher.set_topic(f"/{name}.xml", body, ATOM)
    before = _fetches(hub, "refused")
    assert hub.publish(topic).status_code == 204
    wait_for(lambda: _fetches(hub, "refused") > before, timeout=10, message="refused XML")
    quiet(0.3)
    assert len(subscriber.posts(path)) == 1
    assert hub.healthy()
    # The hub still serves the topic once it is sane again.
    publisher.set_topic(f"/{name}.xml", FEED.format(title="again"), ATOM)
    assert hub.publish(topic).status_code == 204
    wait_for(lambda: len(subscriber.posts(path)) == 2, timeout=10)
    assert b"root:" not in b"".join(subscriber.body(p) for p in subscriber.posts(path))
