"""Every exchange and queue the hub uses, declared in one place.

One durable direct exchange ``<ns>`` routes by target (``fetch``, ``verify``, ``deliver``,
``parked``). Retries wait in delay queues ``<ns>.<target>.delay.<ms>``: a message sits there
until its TTL runs out and is dead-lettered back to ``<ns>`` with the target as routing key.

Work queues are classic by default; ``queue_type="quorum"`` (``HUB_QUEUE_TYPE``) makes them
replicated quorum queues with ``x-delivery-limit``: a message redelivered more often than
that (a handler that keeps crashing) is dead-lettered by the broker itself to ``<ns>`` with
routing key ``parked``, i.e. into the parking queue. The parking queue has no dead-letter
target; delay queues stay classic (they only hold a message until its TTL ends). Every
declaration of a queue must use the same arguments, so a namespace is either classic or
quorum: switching an existing namespace needs its queues drained and deleted first.
"""

from __future__ import annotations

import math

from kombu import Exchange, Queue

FETCH = "fetch"
VERIFY = "verify"
DELIVER = "deliver"
PARKED = "parked"
TARGETS = (FETCH, VERIFY, DELIVER, PARKED)

# Delay queue TTLs in milliseconds: a delay is rounded up to the next rung, and the message's
# own expiration makes it leave at the exact delay (head-of-line wait is bounded by the rung).
DELAY_LADDER_MS = (250, 1_000, 5_000, 30_000, 120_000, 600_000, 3_600_000, 21_600_000)


def exchange(namespace: str) -> Exchange:
    return Exchange(namespace, type="direct", durable=True, delivery_mode="persistent")


def queue_name(namespace: str, target: str) -> str:
    return f"{namespace}.{target}"


CLASSIC = "classic"
QUORUM = "quorum"
DEFAULT_DELIVERY_LIMIT = 20


def queue_arguments(
    namespace: str, target: str, queue_type: str = CLASSIC,
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
) -> dict[str, object] | None:
    """The ``x-`` arguments of a work queue (None for classic ones)."""
    if queue_type == CLASSIC:
        return None
    if queue_type != QUORUM:
        raise ValueError(f"queue type must be {CLASSIC} or {QUORUM}, not {queue_type!r}")
    arguments: dict[str, object] = {"x-queue-type": QUORUM}
    if target != PARKED:
        arguments["x-delivery-limit"] = delivery_limit
        arguments["x-dead-letter-exchange"] = namespace
        arguments["x-dead-letter-routing-key"] = PARKED
    return arguments


def queue(
    namespace: str, target: str, queue_type: str = CLASSIC,
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
) -> Queue:
    """The work queue of one target, durable, bound to the hub exchange by the target name."""
    return Queue(
        queue_name(namespace, target),
        exchange=exchange(namespace),
        routing_key=target,
        durable=True,
        queue_arguments=queue_arguments(namespace, target, queue_type, delivery_limit),
    )


def work_queues(
    namespace: str, queue_type: str = CLASSIC, delivery_limit: int = DEFAULT_DELIVERY_LIMIT
) -> list[Queue]:
    return [queue(namespace, target, queue_type, delivery_limit) for target in TARGETS]


def delay_rung_ms(delay_seconds: float) -> int:
    """The smallest ladder rung that can hold a delay (the top rung for longer delays)."""
    wanted = max(1, math.ceil(delay_seconds * 1000 - 1e-9))
    for rung in DELAY_LADDER_MS:
        if rung >= wanted:
            return rung
    return DELAY_LADDER_MS[-1]


def delay_queue_name(namespace: str, target: str, rung_ms: int) -> str:
    return f"{namespace}.{target}.delay.{rung_ms}"


def delay_queue(namespace: str, target: str, rung_ms: int) -> Queue:
    """A queue nobody consumes: messages expire into the hub exchange under ``target``."""
    name = delay_queue_name(namespace, target, rung_ms)
    return Queue(
        name,
        exchange=Exchange("", type="direct"),
        routing_key=name,
        durable=True,
        queue_arguments={
            "x-message-ttl": rung_ms,
            "x-dead-letter-exchange": namespace,
            "x-dead-letter-routing-key": target,
        },
    )
