"""Publishing hub messages through kombu, with publisher confirms and delayed retries.

A :class:`Messaging` is made once per process from the settings; each thread takes its own
:class:`Bus` from it (kombu connections are not thread-safe). On ``amqp://`` a delayed message
waits in a TTL delay queue; on ``memory://`` (the embedded default, one process) a timer thread
holds it, since the in-memory transport has no TTL or dead-lettering.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from typing import Any

from amqp.exceptions import MessageNacked
from kombu import Connection, Producer
from kombu.common import maybe_declare
from kombu.exceptions import OperationalError

from broker_hub import topology
from broker_hub.batch_publish import BatchPublisher
from broker_hub.errors import Unavailable
from broker_hub.messages import Message, to_body

logger = logging.getLogger(__name__)

PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.5, "interval_max": 1}


class Messaging:
    """The process's view of the broker: connections, topology, a Bus per thread."""

    def __init__(self, url: str, *, namespace: str, heartbeat: int = 30):
        self.url = url
        self.namespace = namespace
        self.heartbeat = heartbeat
        self.is_memory = url.startswith("memory://")
        self._local = threading.local()
        self._delayer = MemoryDelayer(self) if self.is_memory else None
        self._lock = threading.Lock()
        self._batch_publisher: BatchPublisher | None = None

    def connection(self, *, consumer: bool = False, confirms: bool = True) -> Connection:
        """A new kombu connection (the caller owns and closes it).

        Consumers negotiate heartbeats (their loop sends them); a publisher-only connection
        sits idle between publishes, so it asks for none. With ``confirms``, each publish waits
        for the broker's confirm; without, the caller selects and reads confirms itself.
        """
        if self.is_memory:
            return Connection(self.url, transport_options={"polling_interval": 0.005})
        return Connection(
            self.url,
            heartbeat=self.heartbeat if consumer else 0,
            connect_timeout=2,
            transport_options={"confirm_publish": confirms},
        )

    def shared_publisher(self) -> BatchPublisher | Bus:
        """What request threads publish through: on AMQP one BatchPublisher for the whole
        process (confirms read per batch); in memory, this thread's Bus."""
        if self.is_memory:
            return self.bus()
        with self._lock:
            if self._batch_publisher is None:
                self._batch_publisher = BatchPublisher(self)
            return self._batch_publisher

    def bus(self) -> Bus:
        """This thread's Bus, made on first use."""
        bus = getattr(self._local, "bus", None)
        if bus is None:
            bus = self._local.bus = Bus(self)
        return bus

    def close(self) -> None:
        if self._delayer is not None:
            self._delayer.stop()
        if self._batch_publisher is not None:
            self._batch_publisher.close()
        bus = getattr(self._local, "bus", None)
        if bus is not None:
            bus.close()
            self._local.bus = None


class Bus:
    """Publishes messages for one thread. Every publish waits for the broker's confirm."""

    def __init__(self, messaging: Messaging):
        self.messaging = messaging
        self.namespace = messaging.namespace
        self.connection = messaging.connection()
        self._producer: Producer | None = None
        self._exchange = topology.exchange(self.namespace)
        self._declared: set[str] = set()
        self._failures = (
            *self.connection.connection_errors,
            *self.connection.channel_errors,
            OSError,
            OperationalError,
            MessageNacked,
        )

    def _get_producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self.connection)
        return self._producer

    def publish(self, message: Message, target: str, **properties: Any) -> None:
        """Publish persistently to a target's queue; raise Unavailable when the broker is gone."""
        self._send(
            to_body(message),
            self._exchange,
            target,
            [topology.queue(self.namespace, target)],
            properties,
        )

    def publish_delayed(self, message: Message, target: str, delay: float) -> None:
        """Publish so that the message reaches ``target`` after ``delay`` seconds."""
        if delay <= 0:
            self.publish(message, target)
            return
        if self.messaging._delayer is not None:
            self.messaging._delayer.schedule(message, target, delay)
            return
        rung = topology.delay_rung_ms(delay)
        delay_queue = topology.delay_queue(self.namespace, target, rung)
        self._send(
            to_body(message),
            "",
            delay_queue.name,
            [delay_queue],
            {"expiration": min(delay, rung / 1000)},
        )

    def _send(self, body: str, exchange: Any, routing_key: str, declare: list, props: dict) -> None:
        producer = self._get_producer()
        try:
            for entity in declare:
                if entity.name not in self._declared:  # once per connection, off the hot path
                    maybe_declare(entity, producer.channel, retry=True, **PUBLISH_RETRY)
                    self._declared.add(entity.name)
            producer.publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                retry=True,
                retry_policy=PUBLISH_RETRY,
                **props,
            )
        except self._failures as exc:
            logger.warning("publish to %s failed: %s", routing_key, exc.__class__.__name__)
            self._reset()
            raise Unavailable(f"message broker unavailable: {exc.__class__.__name__}") from exc

    def _reset(self) -> None:
        self._producer = None
        self._declared.clear()
        with contextlib.suppress(Exception):  # closing a broken connection may fail again
            self.connection.close()
        self.connection = self.messaging.connection()

    def close(self) -> None:
        self.connection.release()


class MemoryDelayer:
    """A timer thread that publishes delayed messages when due (embedded mode only)."""

    def __init__(self, messaging: Messaging):
        self._messaging = messaging
        self._heap: list[tuple[float, int, Message, str]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def schedule(self, message: Message, target: str, delay: float) -> None:
        with self._cond:
            heapq.heappush(
                self._heap, (time.monotonic() + delay, next(self._counter), message, target)
            )
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="delayer", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, message, target = heapq.heappop(self._heap)
            self._messaging.bus().publish(message, target)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
