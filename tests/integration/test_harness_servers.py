"""The test harness itself: the fake subscriber and publisher, driven over real HTTP."""

from __future__ import annotations

import base64
import time

import pytest
import requests

from tests.support import rabbit
from tests.support.processes import free_port, start_hub, start_server, wait_for

ATOM = "application/atom+xml; charset=UTF-8"
FEED = b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><id>t</id></feed>'


def test_subscriber_echoes_challenge_and_records(subscriber):
    url = subscriber.url("/cb1?existing=1")
    response = requests.get(
        url, params={"hub.mode": "subscribe", "hub.challenge": "abc123"}, timeout=5
    )
    assert response.status_code == 200
    assert response.text == "abc123"

    [record] = subscriber.requests("/cb1")
    assert record["method"] == "GET"
    assert record["path"] == "/cb1"
    assert record["query"] == "existing=1&hub.mode=subscribe&hub.challenge=abc123"
    assert record["status"] == 200
    assert abs(record["at"] - time.time()) < 5
    assert record["headers"]["host"].startswith("127.0.0.1:")
    assert subscriber.verifications("/cb1") == [record]


@pytest.mark.parametrize(
    ("mode", "status", "body_is_challenge"),
    [("echo", 200, True), ("wrong", 200, False), ("404", 404, False), ("redirect", 302, False)],
)
def test_subscriber_verify_modes(subscriber, mode, status, body_is_challenge):
    subscriber.configure("/v", verify=mode)
    response = requests.get(
        subscriber.url("/v"), params={"hub.challenge": "xyz"}, allow_redirects=False, timeout=5
    )
    assert response.status_code == status
    assert (response.text == "xyz") is body_is_challenge
    if mode == "redirect":
        assert response.headers["Location"].startswith("/_redirected/v?")


def test_subscriber_slow_verification_honours_delay(subscriber):
    subscriber.configure("/slow", verify="slow", delay=0.5)
    started = time.monotonic()
    response = requests.get(subscriber.url("/slow"), params={"hub.challenge": "c"}, timeout=5)
    assert time.monotonic() - started >= 0.45
    assert response.text == "c"


def test_subscriber_delivery_statuses_and_recording(subscriber):
    subscriber.configure("/cb2", deliver_statuses=[500, 429, 302, 410], retry_after=1)
    body = b"\x00binary\xffpayload"
    statuses = []
    for _ in range(6):
        response = requests.post(
            subscriber.url("/cb2"),
            data=body,
            headers={"Content-Type": ATOM, "X-Hub-Signature": "sha256=00"},
            allow_redirects=False,
            timeout=5,
        )
        statuses.append(response.status_code)
        if response.status_code != 200:
            assert response.headers["Retry-After"] == "1"
        else:
            assert "Retry-After" not in response.headers
    assert statuses == [500, 429, 302, 410, 200, 200]

    posts = subscriber.posts("/cb2")
    assert [p["status"] for p in posts] == statuses
    assert all(subscriber.body(p) == body for p in posts)
    assert posts[0]["headers"]["content-type"] == ATOM
    assert posts[0]["headers"]["x-hub-signature"] == "sha256=00"
    assert base64.b64decode(posts[0]["body_b64"]) == body
    assert subscriber.count("/cb2") == 6
    assert subscriber.count("/cb2", "GET") == 0

    subscriber.configure("/cb2", deliver_default=503)
    assert requests.post(subscriber.url("/cb2"), data=b"x", timeout=5).status_code == 503

    subscriber.reset()
    assert subscriber.requests() == []
    assert requests.post(subscriber.url("/cb2"), data=b"x", timeout=5).status_code == 200


def test_subscriber_rejects_bad_config(subscriber):
    response = requests.post(
        subscriber.url("/_control/config"), json={"path": "/x", "verify": "nope"}, timeout=5
    )
    assert response.status_code == 400


def test_publisher_serves_topic_byte_for_byte(publisher):
    topic_url = publisher.set_topic("/feed.xml", FEED, ATOM)
    response = requests.get(topic_url, timeout=5)
    assert response.status_code == 200
    assert response.content == FEED
    assert response.headers["Content-Type"] == ATOM
    assert "ETag" not in response.headers

    assert requests.get(publisher.url("/missing"), timeout=5).status_code == 404
    fetches = publisher.fetches("/feed.xml")
    assert len(fetches) == 1
    assert fetches[0]["status"] == 200
    assert "user-agent" in fetches[0]["headers"]
    assert len(publisher.fetches()) == 2


def test_publisher_conditional_get(publisher):
    last_modified = "Wed, 21 Oct 2015 07:28:00 GMT"
    topic_url = publisher.set_topic(
        "/cond.xml", FEED, ATOM, etag='"v1"', last_modified=last_modified
    )
    first = requests.get(topic_url, timeout=5)
    assert first.status_code == 200
    assert first.headers["ETag"] == '"v1"'
    assert first.headers["Last-Modified"] == last_modified

    by_etag = requests.get(topic_url, headers={"If-None-Match": '"v1"'}, timeout=5)
    assert by_etag.status_code == 304
    assert by_etag.content == b""
    assert requests.get(topic_url, headers={"If-None-Match": '"v0"'}, timeout=5).status_code == 200

    by_date = requests.get(topic_url, headers={"If-Modified-Since": last_modified}, timeout=5)
    assert by_date.status_code == 304
    older = "Tue, 20 Oct 2015 07:28:00 GMT"
    assert requests.get(topic_url, headers={"If-Modified-Since": older}, timeout=5).ok

    statuses = [f["status"] for f in publisher.fetches("/cond.xml")]
    assert statuses == [200, 304, 200, 304, 200]
    assert publisher.fetches("/cond.xml")[1]["headers"]["if-none-match"] == '"v1"'

    # A new version replaces the topic whole.
    publisher.set_topic("/cond.xml", FEED + b" ", ATOM, etag='"v2"')
    again = requests.get(topic_url, headers={"If-None-Match": '"v1"'}, timeout=5)
    assert again.status_code == 200
    assert again.content == FEED + b" "


def test_publisher_status_and_redirect(publisher):
    publisher.set_topic("/broken.xml", b"oops", "text/plain", status=500)
    assert requests.get(publisher.url("/broken.xml"), timeout=5).status_code == 500

    publisher.set_topic("/final.xml", FEED, ATOM)
    publisher.set_topic("/moved.xml", b"", None, redirect=publisher.url("/final.xml"))
    response = requests.get(publisher.url("/moved.xml"), timeout=5)
    assert response.status_code == 200
    assert response.content == FEED
    assert [r.status_code for r in response.history] == [302]

    publisher.set_topic("/perm.xml", b"", None, redirect="/final.xml", status=301)
    response = requests.get(publisher.url("/perm.xml"), allow_redirects=False, timeout=5)
    assert response.status_code == 301
    assert response.headers["Location"] == "/final.xml"

    publisher.delete_topic("/final.xml")
    assert requests.get(publisher.url("/final.xml"), timeout=5).status_code == 404
    publisher.reset()
    assert publisher.fetches() == []


def test_start_server_gives_distinct_ports_and_stops():
    first = start_server("tests.support.subscriber")
    second = start_server("tests.support.subscriber")
    try:
        assert first.port != second.port
        assert requests.get(first.url("/_control/requests"), timeout=5).json() == []
    finally:
        assert first.stop() is not None
        second.stop()
    assert first.proc.poll() is not None


def test_start_hub_reports_log_tail_when_it_never_gets_ready(tmp_path):
    # `broker-hub --no-such-command` exits at once; the error must carry its output.
    with pytest.raises(RuntimeError, match="did not become ready"):
        start_hub(
            "--no-such-command",
            {"HUB_BIND": f"127.0.0.1:{free_port()}"},
            wait_health_url="http://127.0.0.1:9/healthz",
            timeout=10,
            log_dir=tmp_path,
        )


def test_wait_for_returns_value_and_times_out():
    assert wait_for(lambda: 42, timeout=1) == 42
    with pytest.raises(TimeoutError, match="never"):
        wait_for(lambda: False, timeout=0.2, message="never")


@pytest.mark.rabbitmq
def test_namespace_cleanup_deletes_queues_and_exchanges(rabbitmq_url, namespace):
    from kombu import Connection, Exchange, Queue

    exchange = Exchange(f"{namespace}.x", type="direct", durable=True)
    queue = Queue(f"{namespace}.q", exchange=exchange, routing_key="k", durable=True)
    with Connection(rabbitmq_url, connect_timeout=5) as conn:
        queue(conn.channel()).declare()
    queues, exchanges = rabbit.list_names(namespace)
    assert queues == [f"{namespace}.q"]
    assert exchanges == [f"{namespace}.x"]
    assert rabbit.delete_namespace(namespace) == (1, 1)
    assert rabbit.list_names(namespace) == ([], [])


@pytest.mark.postgres
def test_postgres_url_is_a_fresh_database(postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, connect_timeout=5) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_hub_env_shares_bind_and_database_but_not_metrics_port(hub_env, sqlite_url):
    web = hub_env()
    worker = hub_env(HUB_LEASE_MIN=1, HUB_HTTP_TIMEOUT=None)
    assert web["HUB_BIND"] == worker["HUB_BIND"] == hub_env.bind
    assert hub_env.hub_url == f"http://{hub_env.bind}/"
    assert web["HUB_DATABASE_URL"] == worker["HUB_DATABASE_URL"] == sqlite_url
    assert web["HUB_DATABASE_URL"].startswith("sqlite:////")
    assert web["HUB_METRICS_PORT"] != worker["HUB_METRICS_PORT"]
    assert web["HUB_ALLOW_PRIVATE_ADDRESSES"] == "true"
    assert worker["HUB_LEASE_MIN"] == "1"
    assert "HUB_HTTP_TIMEOUT" not in worker
    assert web["HUB_NAMESPACE"].startswith("bht_")
