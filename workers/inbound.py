"""One consumed message and the ways to settle it: the ack policy, written once.

Every outcome goes through here: ack after the outcome is recorded, requeue when the broker or
the database is gone, retry through a delay queue, park with the reason. A message is settled
once; a second settle is ignored, so a handler that settled before raising is not settled twice.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from kombu.message import Message as KombuMessage

from broker_hub import topology
from broker_hub.errors import Unavailable
from broker_hub.messages import Message, Parked, as_record
from broker_hub.messaging import Publisher
from broker_hub.retry import backoff_delay
from workers.role import RetryPolicy

logger = logging.getLogger(__name__)

FAILURES_HEADER = "x-hub-failures"  # handler errors so far (poison-message count)


class Inbound:
    """A consumed broker message, with its target queue and the process's publisher."""

    __slots__ = ("publisher", "raw", "settled", "target")

    def __init__(self, raw: KombuMessage, target: str, publisher: Publisher):
        self.raw = raw
        self.target = target
        self.publisher = publisher
        self.settled = False

    @property
    def redelivered(self) -> bool:
        return bool(self.raw.delivery_info.get("redelivered"))

    @property
    def failures(self) -> int:
        """How many times a handler raised an unexpected error on this message."""
        try:
            return int((self.raw.headers or {}).get(FAILURES_HEADER, 0))
        except (TypeError, ValueError):
            return 0

    def ack(self) -> None:
        self._settle(ack=True)

    def requeue(self) -> None:
        """Give the message back to the broker (another consumer, or this one, takes it)."""
        self._settle(ack=False)

    def _settle(self, *, ack: bool) -> None:
        if self.settled:
            return
        self.settled = True
        try:
            if ack:
                self.raw.ack()
            else:
                self.raw.reject(requeue=True)
        except Exception as exc:  # noqa: BLE001 - the broker will redeliver: at-least-once
            logger.info(
                "could not settle a message (%s); it will be redelivered", exc.__class__.__name__
            )

    def later(self, message: Message, delay: float, **headers: Any) -> bool:
        """Publish ``message`` to this queue after ``delay`` s, then ack this one (requeue it if
        the broker cannot take the copy). True when the copy is queued."""
        try:
            self.publisher.publish_delayed(message, self.target, delay, headers=headers or None)
        except Unavailable:
            self.requeue()
            return False
        self.ack()
        return True

    def park(self, parked: Parked) -> bool:
        """Publish ``parked`` to the parking queue, then ack; requeue if the broker is gone."""
        try:
            self.publisher.publish(parked, topology.PARKED)
        except Unavailable:
            self.requeue()
            return False
        self.ack()
        return True

    def park_message(self, message: Message, reason: str, **where: Any) -> bool:
        parked = Parked(reason=reason, original=as_record(message), parked_at=time.time(), **where)
        return self.park(parked)

    def retry(self, message: Message, policy: RetryPolicy, error: str, **where: Any) -> str:
        """Retry ``message`` with backoff, or park it once its attempts are used up.
        Returns "retried", "parked" or "requeued"."""
        attempt = int(getattr(message, "attempt", 1))
        if attempt >= policy.max_attempts:
            reason = f"{error} ({attempt} attempts)"
            ok = self.park_message(message, reason, attempts=attempt, **where)
            return "parked" if ok else "requeued"
        delay = backoff_delay(attempt, policy.backoff_base)
        again = dataclasses.replace(message, attempt=attempt + 1)  # type: ignore[arg-type]
        return "retried" if self.later(again, delay) else "requeued"

    def park_unreadable(self, reason: str) -> None:
        body = self.raw.body
        text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else str(body)
        logger.error("parking an unreadable message from %s: %s", self.target, reason)
        original = {"raw": text[:65536]}
        self.park(Parked(reason=f"unreadable: {reason}", original=original, parked_at=time.time()))
