"""broker_hub.bus on the real RabbitMQ and on memory://: publish, delayed publish, broker down."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection

from broker_hub import topology
from broker_hub.bus import Messaging
from broker_hub.errors import Unavailable
from broker_hub.messages import DeliverOne, FetchTopic, Message, VerifyIntent, from_body


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
    messaging.bus().publish(msg, topology.FETCH)
    got = receive(messaging, topology.FETCH, 5)
    assert got is not None
    assert got[0] == msg
    # Routed by target: nothing landed on another target's queue.
    assert receive(messaging, topology.DELIVER, 0.2) is None


def test_publish_keeps_order_and_secret(messaging: Messaging) -> None:
    bus = messaging.bus()
    first = VerifyIntent(
        mode="subscribe",
        topic="https://t.example/",
        callback="http://m.example/cb",
        requested_at=1.0,
        secret="sekrit",
        lease_seconds=60,
    )
    second = DeliverOne(notification_id=1, subscription_id=2, pinged_at=1.0, attempt=2)
    bus.publish(first, topology.VERIFY)
    bus.publish(second, topology.VERIFY)
    a = receive(messaging, topology.VERIFY, 5)
    b = receive(messaging, topology.VERIFY, 5)
    assert a is not None and b is not None
    assert a[0] == first
    assert a[0].secret == "sekrit"
    assert b[0] == second


def test_bus_is_per_thread(messaging: Messaging) -> None:
    import threading

    main_bus = messaging.bus()
    assert messaging.bus() is main_bus
    other: list[object] = []
    t = threading.Thread(target=lambda: other.append(messaging.bus()))
    t.start()
    t.join(5)
    assert other and other[0] is not main_bus


def test_publish_delayed_arrives_after_delay(messaging: Messaging) -> None:
    msg = DeliverOne(notification_id=7, subscription_id=8, pinged_at=1.0, attempt=3)
    sent = time.monotonic()
    messaging.bus().publish_delayed(msg, topology.DELIVER, 0.3)
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
    messaging.bus().publish_delayed(msg, topology.FETCH, 0)
    got = receive(messaging, topology.FETCH, 5)
    assert got is not None
    assert got[0] == msg
    assert got[1] - sent < 1.0


def test_amqp_delay_goes_through_ttl_queue(rabbitmq_url: str, namespace: str) -> None:
    m = Messaging(rabbitmq_url, namespace=namespace)
    try:
        m.bus().publish_delayed(
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
            m.bus().publish(FetchTopic(topic="t", seq=1, pinged_at=1.0), topology.FETCH)
        assert time.monotonic() - started < 10
        # The bus recovers its state: a second attempt fails the same way, not differently.
        again = time.monotonic()
        with pytest.raises(Unavailable):
            m.bus().publish_delayed(
                FetchTopic(topic="t", seq=2, pinged_at=1.0), topology.FETCH, 1.0
            )
        assert time.monotonic() - again < 10
    finally:
        m.close()
