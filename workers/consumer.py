"""The consume loop both workers share: manual acks, bounded prefetch, reconnects, graceful stop.

A handler receives each decoded message with its kombu message and must ack or reject it
itself, only after the outcome is recorded. A message that cannot be decoded is parked with
the reason, then acked: never silently dropped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kombu import Consumer
from kombu.message import Message as KombuMessage

from broker_hub import topology
from broker_hub.bus import Messaging
from broker_hub.errors import Unavailable
from broker_hub.messages import Message, MessageError, Parked, from_body

logger = logging.getLogger(__name__)

Handler = Callable[[Message, KombuMessage], None]
DRAIN_BATCH = 256  # messages read back to back before the next tick


@dataclass(frozen=True)
class Subscription:
    """One queue to consume, with its prefetch and handler."""

    target: str
    prefetch: int
    handler: Handler


class ConsumerLoop:
    """Consumes queues until :meth:`stop`; reconnects on broker failures."""

    def __init__(
        self,
        messaging: Messaging,
        subscriptions: list[Subscription],
        *,
        tick: Callable[[], None] | None = None,
        drain: Callable[[float], None] | None = None,
        tick_interval: float = 0.02,
        name: str = "worker",
        drain_timeout: float = 20.0,
    ):
        self.messaging = messaging
        self.subscriptions = subscriptions
        self.tick = tick or (lambda: None)
        self.drain = drain or (lambda timeout: None)
        self.tick_interval = tick_interval
        self.name = name
        self.drain_timeout = drain_timeout
        self.should_stop = threading.Event()
        self.ready = threading.Event()
        self.connected_generation = 0

    def stop(self) -> None:
        self.should_stop.set()

    def run(self) -> None:
        """Consume until stopped, then let in-flight work finish (bounded) and return."""
        delay = 0.5
        while not self.should_stop.is_set():
            try:
                self._consume_once()
                delay = 0.5
            except Exception as exc:  # noqa: BLE001 - broker gone: back off and reconnect
                if self.should_stop.is_set():
                    break
                logger.warning(
                    "%s: broker connection lost (%s); reconnecting in %.1fs",
                    self.name,
                    exc.__class__.__name__,
                    delay,
                )
                self.should_stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _consume_once(self) -> None:
        with self.messaging.connection(consumer=True) as conn:
            conn.ensure_connection(max_retries=1)
            consumers = []
            for sub in self.subscriptions:
                channel = conn.channel()
                channel.basic_qos(0, sub.prefetch, False)
                queue = topology.queue(self.messaging.namespace, sub.target)
                consumer = Consumer(
                    channel, queues=[queue], no_ack=False, on_message=self._wrap(sub.handler)
                )
                consumer.consume()
                consumers.append(consumer)
            self.connected_generation += 1
            self.ready.set()
            logger.info("%s: consuming %s", self.name, [s.target for s in self.subscriptions])
            last_beat = time.monotonic()
            while not self.should_stop.is_set():
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=self.tick_interval)
                    # then whatever else has arrived, without waiting: handlers can batch
                    for _ in range(DRAIN_BATCH):
                        conn.drain_events(timeout=0)
                self.tick()
                if time.monotonic() - last_beat > 1.0:
                    conn.heartbeat_check()
                    last_beat = time.monotonic()
                if not conn.connected:  # e.g. an ack hit a reset socket: reads may not notice
                    raise ConnectionError("the broker connection was lost")
            # Graceful stop: no new deliveries; finish and ack in-flight work on this
            # connection; closing it returns prefetched, unacked messages to the queue.
            for consumer in consumers:
                consumer.cancel()
            self.drain(self.drain_timeout)

    def _wrap(self, handler: Handler) -> Callable[[KombuMessage], None]:
        def on_message(raw: KombuMessage) -> None:
            try:
                message = from_body(raw.body)
            except MessageError as exc:
                park_unreadable(self.messaging, raw, str(exc))
                return
            handler(message, raw)

        return on_message


def settle(raw: KombuMessage, *, ack: bool) -> None:
    """Ack (or requeue) a message; a channel lost meanwhile means the broker redelivers it."""
    try:
        if ack:
            raw.ack()
        else:
            raw.reject(requeue=True)
    except Exception as exc:  # noqa: BLE001 - the broker will redeliver: at-least-once
        logger.info(
            "could not settle a message (%s); it will be redelivered", exc.__class__.__name__
        )


def park(messaging: Messaging, raw: KombuMessage, parked: Parked) -> bool:
    """Publish ``parked`` to the parking queue, then ack ``raw``; if the broker is gone,
    requeue ``raw`` instead (nothing is dropped). True when parked."""
    try:
        messaging.bus().publish(parked, topology.PARKED)
    except Unavailable:
        settle(raw, ack=False)
        return False
    settle(raw, ack=True)
    return True


def park_unreadable(messaging: Messaging, raw: KombuMessage, reason: str) -> None:
    """Park a message nobody can read (its raw text kept), then ack it."""
    body = raw.body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else str(body)
    logger.error("parking an unreadable message: %s", reason)
    park(
        messaging,
        raw,
        Parked(
            reason=f"unreadable: {reason}", original={"raw": text[:65536]}, parked_at=time.time()
        ),
    )
