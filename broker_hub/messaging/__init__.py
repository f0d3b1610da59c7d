"""The broker, as the hub's processes see it: consumer connections and one publisher.

Every part of the hub publishes through :class:`Publisher` (``messaging.publisher``); which
implementation stands behind it is decided here, once, by the broker URL: ``memory://`` (the
embedded default, one process) or ``amqp://`` (RabbitMQ).
"""

from __future__ import annotations

import threading

from kombu import Connection

from broker_hub.messaging.amqp import AmqpPublisher
from broker_hub.messaging.memory import MemoryPublisher, memory_connection
from broker_hub.messaging.publisher import Headers, Publisher

__all__ = ["Headers", "Messaging", "Publisher"]


class Messaging:
    """The process's view of the broker: consumer connections and its one publisher."""

    def __init__(self, url: str, *, namespace: str, heartbeat: int = 30):
        self.url = url
        self.namespace = namespace
        self.heartbeat = heartbeat
        self.is_memory = url.startswith("memory://")
        self._lock = threading.Lock()
        self._publisher: Publisher | None = None

    def connection(self) -> Connection:
        """A new consumer connection (the caller owns and closes it); heartbeats negotiated,
        since the consume loop sends them."""
        if self.is_memory:
            return memory_connection(self.url)
        return Connection(self.url, heartbeat=self.heartbeat, connect_timeout=2)

    @property
    def publisher(self) -> Publisher:
        """The process's publisher, made on first use (after any fork of the web server)."""
        with self._lock:
            if self._publisher is None:
                self._publisher = (
                    MemoryPublisher(self.url, namespace=self.namespace)
                    if self.is_memory
                    else AmqpPublisher(self.url, namespace=self.namespace)
                )
            return self._publisher

    def close(self) -> None:
        with self._lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None
