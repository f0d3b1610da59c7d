"""Delivery that loses nothing: killed workers, a restarted broker, failing mirrors, parking.

Every scenario runs the split hub (web, fetcher, deliverer as processes) on the real RabbitMQ
and PostgreSQL with real HTTP subscribers, and is bounded in time. Each prints its lost and
duplicate counts (``pytest -s`` shows them); a lost notification fails the test.
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from kombu import Connection, Producer

from broker_hub import topology
from tests.support import rabbit
from tests.support.hubs import (
    RunningHub,
    build_env,
    launch,
    poll,
    quiet_period,
    split,
    wait_posts,
)
from tests.support.processes import free_port, wait_for

SUBSCRIBERS = 1000


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[RunningHub]:
    with split(
        tmp_path,
        HUB_DELIVERY_PER_HOST="16",
        HUB_DELIVERY_BATCH_SIZE="250",
        HUB_DELIVERY_MAX_ATTEMPTS="3",
    ) as running:
        yield running


def subscribe_many(hub: RunningHub, topic: str, callback_base: str, count: int) -> None:
    """Subscribe ``count`` callbacks (``<base>?n=<i>``) through the hub and wait for them."""
    with requests.Session() as session:

        def one(i: int) -> int:
            data = {
                "hub.mode": "subscribe",
                "hub.topic": topic,
                "hub.callback": f"{callback_base}?n={i}",
            }
            return session.post(hub.url, data=data, timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            assert set(pool.map(one, range(count))) == {202}
    wait_for(
        lambda: hub.storage.count_for_topic(topic, time.time()) == count,
        timeout=60,
        message=f"{count} verified subscriptions",
    )


def received(subscriber, path: str) -> Counter:
    """How many times each subscriber number got a successful delivery."""
    return Counter(
        r["query"] for r in subscriber.requests(path, method="POST") if r["status"] == 200
    )


def all_received(subscriber, path: str, count: int, timeout: float = 60) -> Counter:
    """Wait until each of ``count`` subscribers got a successful delivery; their counts."""
    return poll(lambda: received(subscriber, path), lambda c: len(c) == count, timeout=timeout,
                message=f"every one of {count} subscribers delivered")  # fmt: skip


def report(name: str, counts: Counter, expected: int) -> tuple[int, int]:
    lost = expected - len(counts)
    duplicates = sum(counts.values()) - len(counts)
    print(
        f"\n[{name}] expected={expected} delivered={len(counts)} lost={lost} "
        f"duplicates={duplicates}"
    )
    return lost, duplicates


def test_deliverer_killed_mid_fan_out_loses_nothing(hub, publisher, subscriber):
    tag = uuid.uuid4().hex[:8]
    topic = publisher.set_topic(f"/k1-{tag}", "release 1.0", "text/plain")
    path = f"/k1-{tag}"
    subscribe_many(hub, topic, subscriber.url(path), SUBSCRIBERS)
    subscriber.configure(path, delay=0.02)  # 16 at a time: the fan-out takes about 1.3 s
    hub.publish(topic)
    wait_for(lambda: subscriber.count(path, "POST") >= SUBSCRIBERS // 3, timeout=30)
    hub.kill("deliverer")  # kill -9, mid fan-out
    at_kill = subscriber.count(path, "POST")
    assert at_kill < SUBSCRIBERS, "the fan-out finished before the kill: slow it down"
    hub.start("deliverer")
    counts = all_received(subscriber, path, SUBSCRIBERS)
    lost, duplicates = report("deliverer kill -9", counts, SUBSCRIBERS)
    assert lost == 0
    # progress is recorded as it happens, so only what was in flight is sent again
    assert duplicates < 200, duplicates


def test_fetcher_killed_between_ping_and_fetch_loses_nothing(hub, publisher, subscriber):
    tag = uuid.uuid4().hex[:8]
    path = f"/k2-{tag}"
    topic = publisher.set_topic(path, "release 2.0", "text/plain", delay=3.0)
    subscribe_many(hub, topic, subscriber.url(path), SUBSCRIBERS)
    hub.publish(topic)
    wait_for(lambda: publisher.fetches(path), timeout=10)  # the fetch is in flight
    hub.kill("fetcher")
    publisher.set_topic(path, "release 2.0", "text/plain")  # answers at once from now on
    hub.start("fetcher")
    counts = all_received(subscriber, path, SUBSCRIBERS)
    lost, duplicates = report("fetcher kill -9", counts, SUBSCRIBERS)
    assert lost == 0 and duplicates == 0


def test_rabbitmq_restart_during_fan_out_loses_nothing(hub, publisher, subscriber):
    tag = uuid.uuid4().hex[:8]
    path = f"/k3-{tag}"
    topic = publisher.set_topic(path, "release 3.0", "text/plain")
    subscribe_many(hub, topic, subscriber.url(path), SUBSCRIBERS)
    subscriber.configure(path, delay=0.02)
    hub.publish(topic)
    wait_for(lambda: subscriber.count(path, "POST") >= SUBSCRIBERS // 4, timeout=30)
    try:
        rabbit_ctl("stop_app")
        # the web front refuses work it cannot queue: never a 204 for a dropped ping
        refused = requests.post(hub.url, data={"hub.mode": "publish", "hub.url": topic}, timeout=30)
        assert refused.status_code == 503 and refused.headers["Retry-After"]
    finally:
        rabbit_ctl("start_app")
    counts = all_received(subscriber, path, SUBSCRIBERS, timeout=90)
    lost, _ = report("rabbitmq restart", counts, SUBSCRIBERS)
    assert lost == 0
    # every process reconnected by itself: a new publish goes all the way through
    assert all(proc.alive() for proc in hub.processes.values())
    publisher.set_topic(path, "release 3.1", "text/plain")
    wait_for(
        lambda: (
            requests.post(
                hub.url, data={"hub.mode": "publish", "hub.url": topic}, timeout=30
            ).status_code
            == 204
        ),
        timeout=30,
    )
    poll(
        lambda: subscriber.requests(path, method="POST"),
        lambda posts: sum(b"3.1" in subscriber.body(p) for p in posts) == SUBSCRIBERS,
        timeout=60,
        message="the next release after the restart",
    )


def test_failing_mirror_is_retried_then_parked_and_replayed(hub, publisher, subscriber):
    tag = uuid.uuid4().hex[:8]
    topic = publisher.set_topic(f"/k4-{tag}", "release 4.0", "text/plain")
    flaky, dead = f"/flaky-{tag}", f"/dead-{tag}"
    subscriber.configure(flaky, deliver_statuses=[500, 503])  # then 200
    subscriber.configure(dead, deliver_default=500)
    for path in (flaky, dead):
        hub.subscribe(topic, subscriber.url(path))
        hub.subscribed(topic, subscriber.url(path))
    hub.publish(topic)

    flaky_posts = wait_posts(subscriber, flaky, 3, timeout=20)
    assert [p["status"] for p in flaky_posts] == [500, 503, 200]

    # HUB_DELIVERY_MAX_ATTEMPTS=3: the dead mirror gets 3 attempts, then the delivery is parked
    wait_posts(subscriber, dead, 3, timeout=20)
    listing = poll(
        lambda: hub.cli("parked", "list").stdout,
        lambda out: dead[1:] in out or f"127.0.0.1:{subscriber.port}" in out,
        timeout=15,
    )
    parked = [json.loads(line) for line in listing.splitlines() if line.startswith("{")]
    assert len(parked) == 1
    assert parked[0]["mirror"] == f"127.0.0.1:{subscriber.port}"
    assert parked[0]["topic"] == topic and parked[0]["attempts"] == 3
    assert "500" in parked[0]["reason"]
    assert hub.storage.find_subscription(topic, subscriber.url(dead)) is not None
    quiet_period(0.5)
    assert len(subscriber.posts(dead)) == 3

    subscriber.configure(dead, deliver_default=200)  # the mirror is back
    replay = hub.cli("parked", "replay")
    assert "replayed 1" in replay.stdout, replay.stdout + replay.stderr
    posts = wait_posts(subscriber, dead, 4, timeout=20)
    assert posts[-1]["status"] == 200 and subscriber.body(posts[-1]) == b"release 4.0"
    assert "replayed 0" in hub.cli("parked", "replay").stdout  # nothing left parked


def test_sigterm_finishes_in_flight_work_and_a_second_exits_at_once(hub, publisher, subscriber):
    tag = uuid.uuid4().hex[:8]
    path = f"/k6-{tag}"
    topic = publisher.set_topic(path, "release 6.0", "text/plain")
    subscribe_many(hub, topic, subscriber.url(path), 300)
    subscriber.configure(path, delay=0.05)
    hub.publish(topic)
    wait_for(lambda: subscriber.count(path, "POST") >= 30, timeout=30)
    deliverer = hub.processes["deliverer"]
    deliverer.terminate()
    assert deliverer.wait(timeout=30) == 0
    hub.start("deliverer")
    counts = all_received(subscriber, path, 300)
    lost, duplicates = report("deliverer SIGTERM", counts, 300)
    assert lost == 0 and duplicates == 0  # in-flight deliveries finished and were recorded

    # twice: out at once, without waiting for a slow fan-out
    subscriber.configure(path, delay=2.0)
    publisher.set_topic(path, "release 6.1", "text/plain")
    hub.publish(topic)
    wait_for(lambda: subscriber.count(path, "POST") > sum(counts.values()), timeout=30)
    deliverer = hub.processes["deliverer"]
    deliverer.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    started = time.monotonic()
    deliverer.send_signal(signal.SIGTERM)
    assert deliverer.wait(timeout=10) == 4
    assert time.monotonic() - started < 2.0


def test_unreadable_messages_are_parked_not_dropped(hub):
    namespace = hub.env["HUB_NAMESPACE"]
    with Connection(rabbit.AMQP_URL) as conn:
        for target in (topology.DELIVER, topology.FETCH):  # bound even if no worker ran yet
            topology.queue(namespace, target)(conn.default_channel).declare()
        producer = Producer(conn)
        producer.publish(
            b"\x00 not json",
            exchange=topology.exchange(namespace),
            routing_key=topology.DELIVER,
            content_type="application/json",
            content_encoding="binary",
            delivery_mode=2,
        )
        producer.publish(
            '{"v": 1, "type": "no-such-type"}',
            exchange=topology.exchange(namespace),
            routing_key=topology.FETCH,
            content_type="application/json",
            content_encoding="utf-8",
        )
    listing = poll(
        lambda: hub.cli("parked", "list").stdout,
        lambda out: out.count("unreadable") == 2,
        timeout=15,
    )
    assert "no-such-type" in listing


def test_web_front_without_broker_answers_503_never_204(tmp_path, publisher, subscriber):
    env = build_env(
        database_url=f"sqlite:///{tmp_path / 'hub.sqlite3'}",
        broker_url=f"amqp://guest:guest@127.0.0.1:{free_port()}//",  # nothing listens
        HUB_WEB_WORKERS="1",
    )
    url = f"http://{env['HUB_BIND']}/"
    web = launch("web", env, log_dir=tmp_path)
    try:
        topic = publisher.set_topic("/k5", "x", "text/plain")
        for data in (
            {"hub.mode": "publish", "hub.url": topic},
            {"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": subscriber.url("/k5")},
        ):
            response = requests.post(url, data=data, timeout=30)
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"].isdigit()
            assert "broker" in response.text
    finally:
        web.stop()


def rabbit_ctl(command: str) -> None:
    subprocess.run(["rabbitmqctl", command], check=True, capture_output=True, timeout=60)
    if command == "start_app":
        subprocess.run(
            ["rabbitmqctl", "await_startup"], check=True, capture_output=True, timeout=60
        )


def test_two_fetchers_notify_a_change_once(hub, publisher, subscriber):
    """Two fetchers, and a second ping while the first fetch waits on a slow publisher: the
    second fetch waits for the first (the topic's fetch lease), then finds nothing new. Without
    the lease both would diff against the same old state and notify the new entry twice."""
    from tests.integration.test_websub_hub import atom

    tag = uuid.uuid4().hex[:8]
    path = f"/k5-{tag}"
    count = 20
    topic = publisher.set_topic(path, atom((f"urn:{tag}:a", "release a")))
    subscribe_many(hub, topic, subscriber.url(path), count)
    hub.publish(topic)  # the first fetch of the topic: the whole feed
    all_received(subscriber, path, count, timeout=30)  # the first notification
    fetchers = [hub.processes["fetcher"], hub.start("fetcher")]
    publisher.set_topic(
        path, atom((f"urn:{tag}:b", "release b"), (f"urn:{tag}:a", "release a")), delay=1.5
    )
    hub.publish(topic)
    time.sleep(0.5)  # the first fetch has claimed the topic and waits for the publisher
    hub.publish(topic)  # counted after that claim: a fetch message of its own, for the other

    def with_b() -> Counter:
        return Counter(
            r["query"]
            for r in subscriber.requests(path, method="POST")
            if b"release b" in subscriber.body(r)
        )

    poll(with_b, lambda c: len(c) == count, timeout=30, message="release b everywhere")
    quiet_period(2.0)  # the deferred fetch runs after the first, and must find nothing new
    counts = with_b()
    lost, duplicates = report("two fetchers", counts, count)
    assert lost == 0 and duplicates == 0
    deferred = 0
    for proc in fetchers:
        page = requests.get(f"http://127.0.0.1:{proc.env['HUB_METRICS_PORT']}/metrics", timeout=10)
        for line in page.text.splitlines():
            if line.startswith('broker_hub_fetches_total{outcome="deferred"}'):
                deferred += float(line.split()[-1])
    assert deferred >= 1, "the second fetch never met the first one's lease"
