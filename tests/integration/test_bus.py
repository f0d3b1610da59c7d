"""broker_hub.messaging on the real RabbitMQ and on memory://: publish, delays, broker down."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection

from broker_hub import topology
from broker_hub.errors import Unavailable
from broker_hub.messages import DeliverOne, FetchTopic, Message, VerifyIntent, from_body
from broker_hub.messaging import Messaging


@pytest.fixture(params=["amqp", "memory"])
def broker(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(broker URL, namespace) for each transport."""
    if request.param == "amqp":
        return request.getfixturevalue("rabbitmq_url"), request.getfixturevalue("namespace")
    return "memory://", f"bhm_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def messaging(broker: tuple[str, str]) -> Iterator[Messaging]:
    url, namespace = broker
    m = Messaging(url, namespace=namespace)
    try:
        yield m
    finally:
        m.close()


def receive(messaging: Messaging, target: str, timeout: float) -> tuple[Message, float] | None:
    """Poll the target's work queue with plain kombu; (decoded message, arrival time) or None."""
    deadline = time.monotonic() + timeout
    with Connection(messaging.url, transport_options={"polling_interval": 0.005}) as conn:
        bound = topology.queue(messaging.namespace, target)(conn.default_channel)
        bound.declare()
        while time.monotonic() < deadline:
            raw = bound.get(no_ack=False)
            if raw is not None:
                arrived = time.monotonic()
                raw.ack()
                assert raw.content_type == "application/json"
                return from_body(raw.body), arrived
            time.sleep(0.01)
    return None


def test_publish_then_consume(messaging: Messaging) -> None:
    msg = FetchTopic(topic="https://pypi.example/simple/x/", seq=3, pinged_at=time.time())
    messaging.publisher.publish(msg, topology.FETCH)
    got = receive(messaging, topology.FETCH, 5)
    assert got is not None
    assert got[0] == msg
    # Routed by target: nothing landed on another target's queue.
    assert receive(messaging, topology.DELIVER, 0.2) is None


def test_publish_keeps_order_and_secret(messaging: Messaging) -> None:
    publisher = messaging.publisher
    first = VerifyIntent(
        mode="subscribe",
        topic="https://t.example/",
        callback="http://m.example/cb",
        requested_at=1.0,
        secret="sekrit",
        lease_seconds=60,
    )
    second = DeliverOne(notification_id=1, subscription_id=2, pinged_at=1.0, attempt=2)
    publisher.publish(first, topology.VERIFY)
    publisher.publish(second, topology.VERIFY)
    a = receive(messaging, topology.VERIFY, 5)
    b = receive(messaging, topology.VERIFY, 5)
    assert a is not None and b is not None
    assert a[0] == first
    assert a[0].secret == "sekrit"
    assert b[0] == second


def test_publish_delayed_arrives_after_delay(messaging: Messaging) -> None:
    msg = DeliverOne(notification_id=7, subscription_id=8, pinged_at=1.0, attempt=3)
    sent = time.monotonic()
    messaging.publisher.publish_delayed(msg, topology.DELIVER, 0.3)
    got = receive(messaging, topology.DELIVER, 5)
    assert got is not None, "delayed message never arrived"
    message, arrived = got
    assert message == msg
    waited = arrived - sent
    assert waited >= 0.25, f"arrived after only {waited:.3f}s"
    assert waited < 4.0


def test_publish_delayed_zero_is_immediate(messaging: Messaging) -> None:
    msg = FetchTopic(topic="https://t.example/", seq=1, pinged_at=1.0)
    sent = time.monotonic()
    messaging.publisher.publish_delayed(msg, topology.FETCH, 0)
    got = receive(messaging, topology.FETCH, 5)
    assert got is not None
    assert got[0] == msg
    assert got[1] - sent < 1.0


def test_amqp_delay_goes_through_ttl_queue(rabbitmq_url: str, namespace: str) -> None:
    m = Messaging(rabbitmq_url, namespace=namespace)
    try:
        m.publisher.publish_delayed(
            FetchTopic(topic="https://t.example/", seq=1, pinged_at=1.0), topology.FETCH, 0.3
        )
        rung = topology.delay_rung_ms(0.3)
        delay_name = topology.delay_queue_name(namespace, topology.FETCH, rung)
        with Connection(rabbitmq_url) as conn:
            # Passive declare: fails if the delay queue does not exist.
            name, count, _ = conn.default_channel.queue_declare(queue=delay_name, passive=True)
            assert name == delay_name
            assert count in (0, 1)
        got = receive(m, topology.FETCH, 5)
        assert got is not None
        with Connection(rabbitmq_url) as conn:
            _, count, _ = conn.default_channel.queue_declare(queue=delay_name, passive=True)
            assert count == 0
    finally:
        m.close()


def test_publish_to_closed_port_raises_unavailable() -> None:
    m = Messaging("amqp://guest:guest@127.0.0.1:1//", namespace=f"bhx_{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            m.publisher.publish(FetchTopic(topic="t", seq=1, pinged_at=1.0), topology.FETCH)
        assert time.monotonic() - started < 10
        # The publisher recovers its state: a second attempt fails the same way, not differently.
        again = time.monotonic()
        with pytest.raises(Unavailable):
            m.publisher.publish_delayed(
                FetchTopic(topic="t", seq=2, pinged_at=1.0), topology.FETCH, 1.0
            )
        assert time.monotonic() - again < 10
    finally:
        m.close()


# --- the web front's shared publisher ---------------------------------------------------------


def test_publisher_is_one_per_process(messaging: Messaging) -> None:
    import threading

    from broker_hub.messaging.amqp import AmqpPublisher
    from broker_hub.messaging.memory import MemoryPublisher

    first = messaging.publisher
    other: list[object] = []
    t = threading.Thread(target=lambda: other.append(messaging.publisher))
    t.start()
    t.join(5)
    assert other[0] is first
    assert isinstance(first, MemoryPublisher if messaging.is_memory else AmqpPublisher)


def test_publish_many_confirms_every_message(messaging: Messaging) -> None:
    items = [(FetchTopic(topic=f"https://t.example/{i}", seq=i, pinged_at=1.0), topology.FETCH)
             for i in range(50)]  # fmt: skip
    messaging.publisher.publish_many(items)
    seen = []
    while (got := receive(messaging, topology.FETCH, 0.5)) is not None:
        seen.append(got[0].seq)
    assert sorted(seen) == list(range(50))


def test_shared_publisher_confirms_every_message_from_many_threads(messaging: Messaging) -> None:
    """16 threads publish at once; each returns only after its confirm, and every message
    reaches the queue exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    def send(thread: int) -> None:
        publisher = messaging.publisher
        for i in range(25):
            publisher.publish(
                FetchTopic(topic=f"https://t.example/{thread}", seq=i, pinged_at=1.0),
                topology.FETCH,
            )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(send, range(16)))
    seen = []
    while (got := receive(messaging, topology.FETCH, 0.5)) is not None:
        seen.append((got[0].topic, got[0].seq))
    assert len(seen) == 16 * 25
    assert set(seen) == {(f"https://t.example/{t}", i) for t in range(16) for i in range(25)}


def test_shared_publisher_reports_a_refused_message(rabbitmq_url: str, namespace: str) -> None:
    """A message the broker nacks (a full queue under an overflow=reject-publish policy) makes
    its caller's publish raise Unavailable; the messages it did confirm are all there."""
    import shutil
    import subprocess

    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    queue = topology.queue_name(namespace, topology.FETCH)
    policy = f"{namespace}_full"
    subprocess.run(
        [ctl, "set_policy", "--apply-to", "queues", policy, f"^{queue}$",
         '{"max-length": 2, "overflow": "reject-publish"}'],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    m = Messaging(rabbitmq_url, namespace=namespace)
    try:
        publisher = m.publisher
        deadline = time.monotonic() + 10  # the policy reaches the queue within a moment
        outcomes: list[bool] = []
        while time.monotonic() < deadline:
            try:
                publisher.publish(FetchTopic(topic="t", seq=len(outcomes), pinged_at=1.0),
                                  topology.FETCH)  # fmt: skip
                outcomes.append(True)
            except Unavailable as exc:
                assert "refused" in str(exc)
                outcomes.append(False)
                break
        assert outcomes[-1] is False, "the broker never refused a message"
        with Connection(rabbitmq_url) as conn:
            _, count, _ = conn.default_channel.queue_declare(queue=queue, passive=True)
        assert count == 2  # what was confirmed is stored; the refused one was reported
        # The publisher goes on after a refusal: space again, and the next publish is confirmed.
        assert receive(m, topology.FETCH, 5) is not None
        publisher.publish(FetchTopic(topic="t", seq=99, pinged_at=1.0), topology.FETCH)
    finally:
        m.close()
        subprocess.run([ctl, "clear_policy", policy], capture_output=True, timeout=30)


def test_shared_publisher_to_closed_port_raises_unavailable() -> None:
    m = Messaging("amqp://guest:guest@127.0.0.1:1//", namespace=f"bhx_{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            m.publisher.publish(FetchTopic(topic="t", seq=1, pinged_at=1.0), "fetch")
        assert time.monotonic() - started < 3  # a quick 503, not a long wait
    finally:
        m.close()
