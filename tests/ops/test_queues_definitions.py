"""Quorum queues against the real RabbitMQ (declare, publish, consume; a message rejected past
the delivery limit lands in the parking queue), and deploy/rabbitmq/definitions.json: what
the generator writes, and what the hub's own declarations accept unchanged."""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection, Producer

from broker_hub import topology
from broker_hub.config import ConfigError, Settings
from tests.support import rabbit
from tests.support.processes import REPO_ROOT

DEFINITIONS = REPO_ROOT / "deploy" / "rabbitmq" / "definitions.json"


@pytest.fixture
def ns() -> Iterator[str]:
    assert rabbit.rabbitmq_available(), "RabbitMQ must answer on 127.0.0.1:5672 (make rabbitmq)"
    namespace = f"bhq_{uuid.uuid4().hex[:8]}"
    yield namespace
    rabbit.delete_namespace(namespace)


def _generator():
    path = REPO_ROOT / "deploy" / "rabbitmq" / "generate_definitions.py"
    spec = importlib.util.spec_from_file_location("generate_definitions", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_queue_type_setting() -> None:
    assert Settings.from_env({}).queue_type == "classic"
    assert Settings.from_env({"HUB_QUEUE_TYPE": "Quorum"}).queue_type == "quorum"
    with pytest.raises(ConfigError, match="HUB_QUEUE_TYPE"):
        Settings.from_env({"HUB_QUEUE_TYPE": "stream"})
    assert topology.queue_arguments("n", "deliver") is None
    assert topology.queue_arguments("n", "deliver", "quorum", 3) == {
        "x-queue-type": "quorum", "x-delivery-limit": 3,
        "x-dead-letter-exchange": "n", "x-dead-letter-routing-key": "parked"}
    assert topology.queue_arguments("n", "parked", "quorum") == {"x-queue-type": "quorum"}


def test_quorum_queue_parks_a_message_rejected_past_the_delivery_limit(ns: str) -> None:
    limit = 2
    with Connection(rabbit.AMQP_URL, connect_timeout=5) as conn:
        channel = conn.channel()
        for q in topology.work_queues(ns, topology.QUORUM, limit):
            q(channel).declare()
        producer = Producer(channel, exchange=topology.exchange(ns))
        deliver = topology.queue(ns, topology.DELIVER, topology.QUORUM, limit)(channel)
        parked = topology.queue(ns, topology.PARKED, topology.QUORUM, limit)(channel)
        producer.publish({"fine": 2}, routing_key=topology.DELIVER, serializer="json")
        fine = _get(deliver, lambda m: True)
        assert fine is not None and fine.payload == {"fine": 2}
        fine.ack()  # a normal consume: published, consumed, acked
        producer.publish({"poison": 1}, routing_key=topology.DELIVER, serializer="json")
        deliveries = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = deliver.get(no_ack=False)
            if message is None:
                if channel.queue_declare(f"{ns}.parked", passive=True)[1]:
                    break
                time.sleep(0.05)
                continue
            assert message.payload == {"poison": 1}
            deliveries += 1
            message.reject(requeue=True)  # a handler that keeps crashing
        assert deliveries == limit + 1  # the first delivery plus `limit` redeliveries
        assert deliver.get(no_ack=False) is None
        dead = _get(parked, lambda m: True)
        assert dead is not None and dead.payload == {"poison": 1}
        death = dead.headers["x-death"][0]
        assert death["queue"] == f"{ns}.deliver" and death["reason"] == "delivery_limit"


def _get(bound, accept, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = bound.get(no_ack=False)
        if message is None:
            time.sleep(0.05)
            continue
        if accept(message):
            return message
    return None


def test_definitions_file_is_generated_from_topology() -> None:
    assert DEFINITIONS.read_text() == _generator().render(), (
        "run python deploy/rabbitmq/generate_definitions.py")
    doc = json.loads(DEFINITIONS.read_text())
    names = {q["name"] for q in doc["queues"]}
    assert {f"broker_hub.{t}" for t in topology.TARGETS} <= names
    assert len(names) == len(topology.TARGETS) + 3 * len(topology.DELAY_LADDER_MS)


@pytest.mark.parametrize("queue_type", [topology.CLASSIC, topology.QUORUM])
def test_the_hub_declares_over_the_definitions_unchanged(ns: str, queue_type: str) -> None:
    """Create what the definitions say (as the broker would at boot), then let the hub's own
    declarations run: a different argument anywhere fails with PRECONDITION_FAILED."""
    doc = _generator().definitions(namespace=ns, queue_type=queue_type)
    with Connection(rabbit.AMQP_URL, connect_timeout=5) as conn:
        channel = conn.channel()
        for ex in doc["exchanges"]:
            channel.exchange_declare(ex["name"], ex["type"], durable=ex["durable"],
                                     auto_delete=False)
        for q in doc["queues"]:
            channel.queue_declare(q["name"], durable=True, auto_delete=False,
                                  arguments=q["arguments"])
        for b in doc["bindings"]:
            channel.queue_bind(b["destination"], b["source"], b["routing_key"])
        for q in topology.work_queues(ns, queue_type):
            q(channel).declare()
        for target in (topology.FETCH, topology.VERIFY, topology.DELIVER):
            for rung in topology.DELAY_LADDER_MS:
                topology.delay_queue(ns, target, rung)(channel).declare()
        # and a mismatch is caught: a classic declaration over a quorum queue (or back)
        other = topology.QUORUM if queue_type == topology.CLASSIC else topology.CLASSIC
        with pytest.raises(conn.channel_errors):
            topology.queue(ns, topology.DELIVER, other)(conn.channel()).declare()


def test_split_hub_on_quorum_queues_delivers(tmp_path) -> None:
    """HUB_QUEUE_TYPE=quorum end to end: web, fetcher, deliverer declare the same quorum
    queues (a mismatch anywhere would fail with PRECONDITION_FAILED) and a ping is delivered."""
    from tests.integration.hubs import split_hub, wait_posts
    from tests.support.processes import start_server
    from tests.support.publisher import PublisherClient
    from tests.support.subscriber import SubscriberClient

    servers = [start_server("tests.support.publisher"), start_server("tests.support.subscriber")]
    try:
        publisher, mirror = PublisherClient(servers[0].url()), SubscriberClient(servers[1].url())
        with split_hub(tmp_path, HUB_QUEUE_TYPE="quorum", HUB_QUEUE_DELIVERY_LIMIT="5") as hub:
            topic = publisher.set_topic(
                "/q-feed", '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
                "<id>urn:q</id><title>q</title><updated>2026-11-24T00:00:00Z</updated>"
                "<entry><id>1</id><title>a</title><updated>2026-11-24T00:00:00Z</updated>"
                "</entry></feed>")
            hub.subscribe(topic, mirror.url("/q"))
            hub.subscribed(topic, mirror.url("/q"))
            hub.publish(topic)
            wait_posts(mirror, "/q", 1, timeout=30)
            with Connection(rabbit.AMQP_URL, connect_timeout=5) as conn:
                channel = conn.channel()
                ns = hub.env["HUB_NAMESPACE"]
                for target in topology.TARGETS:  # quorum declared; passive check sees them
                    topology.queue(ns, target, topology.QUORUM, 5)(channel).declare()
    finally:
        for server in servers:
            server.stop()
