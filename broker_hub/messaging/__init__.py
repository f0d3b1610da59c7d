"""The broker, as the hub's processes see it: consumer connections and one publisher.

Every part of the hub publishes through :class:`Publisher` (``messaging.publisher``); which
implementation stands behind it is decided here, once, by the broker URL: ``memory://`` (the
embedded default, one process) or ``amqp://`` (RabbitMQ).
"""

from __future__ import annotations

import threading

from kombu import Connection, Queue

from broker_hub import topology
from broker_hub.messaging.amqp import AmqpPublisher
from broker_hub.messaging.memory import MemoryPublisher, memory_connection
from broker_hub.messaging.publisher import Headers, Publisher

__all__ = ["Headers", "Messaging", "Publisher"]


class Messaging:
    """The process's view of the broker: consumer connections and its one publisher."""

    def __init__(self, url: str, *, namespace: str, heartbeat: int = 30,
                 queue_type: str = topology.CLASSIC,
                 delivery_limit: int = topology.DEFAULT_DELIVERY_LIMIT):
        self.url = url
        self.namespace = namespace
        self.heartbeat = heartbeat
        self.is_memory = url.startswith("memory://")
        # HUB_QUEUE_TYPE: every declaration of a work queue goes through queue() (quorum
        # queues need the same arguments everywhere); the memory broker has classic ones only
        self.queue_type = topology.CLASSIC if self.is_memory else queue_type
        self.delivery_limit = delivery_limit
        self._lock = threading.Lock()
        self._publisher: Publisher | None = None
        self._queues: dict[str, Queue] = {}

    def connection(self) -> Connection:
        """A new consumer connection (the caller owns and closes it); heartbeats negotiated,
        since the consume loop sends them."""
        if self.is_memory:
            return memory_connection(self.url)
        return Connection(self.url, heartbeat=self.heartbeat, connect_timeout=2)

    def queue(self, target: str) -> Queue:
        """The work queue of ``target`` as this hub declares it (classic or quorum); built once
        per target (a kombu Queue per message was 40 % of the poller's publishing time)."""
        queue = self._queues.get(target)
        if queue is None:
            queue = topology.queue(self.namespace, target, self.queue_type, self.delivery_limit)
            self._queues[target] = queue
        return queue

    @property
    def publisher(self) -> Publisher:
        """The process's publisher, made on first use (after any fork of the web server)."""
        with self._lock:
            if self._publisher is None:
                self._publisher = (
                    MemoryPublisher(self.url, namespace=self.namespace)
                    if self.is_memory
                    else AmqpPublisher(self.url, namespace=self.namespace, queues=self.queue)
                )
            return self._publisher

    def close(self) -> None:
        with self._lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None
