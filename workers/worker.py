"""The one worker lifecycle: consume, dispatch, settle, tick, periodic tasks, graceful stop.

Modelled on kombu's ``ConsumerMixin`` (only connection and channel errors mean "reconnect"; a
stop flag checked every tick) and dramatiq's worker (per-message exception handling: a handler
that raises never takes the consume loop down, and a message that keeps failing is parked
with its reason instead of being redelivered forever).

What becomes of a message whose handler raised is :mod:`workers.policy` (retry with backoff,
park, requeue, or a handler error retried twice and then parked); only connection and channel
errors leave the message unacked and make the worker reconnect (the broker redelivers).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from kombu import Connection, Consumer
from kombu.message import Message as KombuMessage

from broker_hub import topology
from broker_hub.errors import Unavailable
from broker_hub.messages import MessageError, from_body
from broker_hub.messaging import Messaging
from broker_hub.metrics import Metrics
from workers.inbound import Inbound
from workers.policy import settle_failure
from workers.role import Consume, Periodic, Role

logger = logging.getLogger(__name__)

DRAIN_BATCH = 256  # messages read back to back before the next tick
UNAVAILABLE_PAUSE = 0.5  # seconds the consumer waits after requeueing for a missing database


class Worker:
    """Runs roles until :meth:`stop`; reconnects on broker failures."""

    def __init__(
        self,
        messaging: Messaging,
        roles: list[Role],
        *,
        metrics: Metrics,
        name: str = "worker",
        tick_interval: float = 0.02,
        drain_timeout: float = 20.0,
        busy_ticks: list[tuple[Role, float]] | None = None,
    ):
        self.messaging = messaging
        self.roles = roles
        self.metrics = metrics
        self.name = name
        self.tick_interval = tick_interval
        self.busy_ticks = busy_ticks or []  # (role, the tick while it has work in flight)
        self.drain_timeout = drain_timeout
        self.should_stop = threading.Event()
        self.ready = threading.Event()
        self.connected_generation = 0
        self._consumes = [(role, c) for role in roles for c in role.consumes()]
        self._periodic = [task for role in roles for task in role.periodic()]
        self._periodic_thread: threading.Thread | None = None

    def stop(self) -> None:
        self.should_stop.set()

    def run(self) -> None:
        """Consume until stopped, then let in-flight work finish (bounded) and return."""
        if self._periodic:
            self._periodic_thread = threading.Thread(
                target=self._run_periodic, name=f"{self.name}-periodic", daemon=True
            )
            self._periodic_thread.start()
        delay = 0.5
        try:
            while not self.should_stop.is_set():
                try:
                    self._consume_once()
                    delay = 0.5
                except Exception as exc:  # noqa: BLE001 - broker gone: back off and reconnect
                    if self.should_stop.is_set():
                        break
                    logger.warning(
                        "%s: broker connection lost (%s: %s); reconnecting in %.1fs",
                        self.name,
                        exc.__class__.__name__,
                        exc,
                        delay,
                    )
                    self.should_stop.wait(delay)
                    delay = min(delay * 2, 10.0)
        finally:
            if self._periodic_thread is not None:
                self._periodic_thread.join(10)
            for role in self.roles:
                role.close()

    # -- the consumer thread ------------------------------------------------------------------

    def _consume_once(self) -> None:
        with self.messaging.connection() as conn:
            conn.ensure_connection(max_retries=1)
            consumers = [self._consumer(conn, role, c) for role, c in self._consumes]
            self.connected_generation += 1
            self.ready.set()
            logger.info("%s: consuming %s", self.name, [c.target for _, c in self._consumes])
            last_beat = time.monotonic()
            while not self.should_stop.is_set():
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=self._tick_wait())
                    # then whatever else has arrived, without waiting: roles can batch
                    for _ in range(DRAIN_BATCH):
                        conn.drain_events(timeout=0)
                self._tick()
                if time.monotonic() - last_beat > 1.0:
                    conn.heartbeat_check()
                    last_beat = time.monotonic()
                if not conn.connected:  # e.g. an ack hit a reset socket: reads may not notice
                    raise ConnectionError("the broker connection was lost")
            # Graceful stop: no new deliveries; finish and ack in-flight work on this
            # connection; closing it returns prefetched, unacked messages to the queue.
            for consumer in consumers:
                consumer.cancel()
            self._drain()

    def _tick_wait(self) -> float:
        wait = self.tick_interval
        for role, busy in self.busy_ticks:
            if busy < wait and role.in_flight():
                wait = busy
        return wait

    def _consumer(self, conn: Connection, role: Role, consume: Consume) -> Consumer:
        channel = conn.channel()
        channel.basic_qos(0, consume.prefetch, False)
        queue = self.messaging.queue(consume.target)
        if self.messaging.queue_type != topology.CLASSIC:
            # quorum queues dead-letter into the parking queue: it must exist before that
            self.messaging.queue(topology.PARKED)(channel).declare()
        errors = (*conn.connection_errors, *conn.channel_errors)
        consumer = Consumer(
            channel,
            queues=[queue],
            no_ack=False,
            on_message=lambda raw: self._dispatch(role, consume, raw, errors),
        )
        consumer.consume()
        return consumer

    def _dispatch(
        self,
        role: Role,
        consume: Consume,
        raw: KombuMessage,
        errors: tuple[type[BaseException], ...],
    ) -> None:
        inbound = Inbound(raw, consume.target, self.messaging.publisher)
        try:
            message = from_body(raw.body)
        except MessageError as exc:
            inbound.park_unreadable(str(exc))
            self.metrics.parked.labels("unreadable").inc()
            return
        if not isinstance(message, consume.accepts):
            reason = f"the {consume.target} queue got a {message.kind} message"
            inbound.park_message(message, reason)
            self.metrics.parked.labels("unexpected").inc()
            return
        try:
            consume.handler(message, inbound)
        except errors:
            raise  # the connection or channel is gone: reconnect; the broker redelivers
        except Exception as exc:  # noqa: BLE001 - every other error: the one policy decides
            outcome = settle_failure(
                inbound, message, exc, role=role.name, retry=consume.retry, metrics=self.metrics
            )
            if outcome == "requeued" and isinstance(exc, Unavailable):
                self.should_stop.wait(UNAVAILABLE_PAUSE)

    def _tick(self) -> None:
        for role in self.roles:
            role.tick()

    def _drain(self) -> None:
        """Wait (bounded) for in-flight work of every role to finish and be recorded."""
        deadline = time.monotonic() + self.drain_timeout
        while self._in_flight() and time.monotonic() < deadline:
            time.sleep(0.02)
            self._tick()
        left = self._in_flight()
        if left:
            logger.warning("stopping with %d messages in flight; the broker redelivers them", left)

    def _in_flight(self) -> int:
        return sum(role.in_flight() for role in self.roles)

    # -- the periodic thread ------------------------------------------------------------------

    def _run_periodic(self) -> None:
        due = {id(task): time.monotonic() for task in self._periodic}
        while not self.should_stop.is_set():
            now = time.monotonic()
            for task in self._periodic:
                if now >= due[id(task)]:
                    self._run_task(task)
                    due[id(task)] = time.monotonic() + task.interval
            wait = min(due.values()) - time.monotonic()
            self.should_stop.wait(max(0.01, min(wait, 1.0)))

    def _run_task(self, task: Periodic) -> None:
        try:
            task.run()
        except Exception:
            self.metrics.handler_errors.labels(task.name).inc()
            logger.exception("%s: periodic task %s failed", self.name, task.name)


