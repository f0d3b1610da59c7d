"""The embedded default's publisher: kombu's in-memory transport, a timer thread for delays.

The in-memory transport (one process) has no TTL or dead-lettering, so a delayed message waits
on a timer thread instead of in a delay queue. kombu connections are not thread-safe: each
thread publishes through a producer of its own.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Sequence

from kombu import Connection, Producer
from kombu.common import maybe_declare

from broker_hub import topology
from broker_hub.messages import Message, to_body
from broker_hub.messaging.publisher import Headers

POLLING_INTERVAL = 0.005


def memory_connection(url: str) -> Connection:
    return Connection(url, transport_options={"polling_interval": POLLING_INTERVAL})


class MemoryPublisher:
    """:class:`~broker_hub.messaging.publisher.Publisher` on ``memory://``."""

    def __init__(self, url: str, *, namespace: str):
        self.url = url
        self.namespace = namespace
        self._local = threading.local()
        self._exchange = topology.exchange(namespace)
        self._delayer = _Delayer(self)

    def _producer(self) -> Producer:
        producer = getattr(self._local, "producer", None)
        if producer is None:
            connection = memory_connection(self.url)
            producer = self._local.producer = Producer(connection)
            self._local.declared = set()
        return producer

    def publish(self, message: Message, target: str, *, headers: Headers | None = None) -> None:
        producer = self._producer()
        if target not in self._local.declared:
            maybe_declare(topology.queue(self.namespace, target), producer.channel)
            self._local.declared.add(target)
        producer.publish(
            to_body(message),
            exchange=self._exchange,
            routing_key=target,
            content_type="application/json",
            content_encoding="utf-8",
            headers=dict(headers or {}),
        )

    def publish_many(self, items: Sequence[tuple[Message, str]]) -> None:
        for message, target in items:
            self.publish(message, target)

    def publish_delayed(
        self, message: Message, target: str, delay: float, *, headers: Headers | None = None
    ) -> None:
        if delay <= 0:
            self.publish(message, target, headers=headers)
        else:
            self._delayer.schedule(message, target, delay, dict(headers or {}))

    def close(self) -> None:
        self._delayer.stop()
        producer = getattr(self._local, "producer", None)
        if producer is not None:
            producer.connection.release()
            self._local.producer = None


class _Delayer:
    """A timer thread that publishes delayed messages when due."""

    def __init__(self, publisher: MemoryPublisher):
        self._publisher = publisher
        self._heap: list[tuple[float, int, Message, str, dict]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def schedule(self, message: Message, target: str, delay: float, headers: dict) -> None:
        with self._cond:
            due = time.monotonic() + delay
            heapq.heappush(self._heap, (due, next(self._counter), message, target, headers))
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
                _, _, message, target, headers = heapq.heappop(self._heap)
            self._publisher.publish(message, target, headers=headers)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
