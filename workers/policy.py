"""What becomes of a message whose handling failed: the policy by error type, in one place.

The worker applies it when a handler raises; roles that finish messages later (on the event
loop: the fetcher, the deliverer) apply the same function when their work fails.

| the error          | the message is                                                         |
|--------------------|------------------------------------------------------------------------|
| ``TransientError`` | retried with backoff per the queue's RetryPolicy, parked when used up  |
| ``PermanentError`` | parked with the reason                                                 |
| ``Unavailable``    | requeued (broker or database gone)                                     |
| anything else      | a handler error: retried ``POISON_LIMIT - 1`` times, then parked       |
"""

from __future__ import annotations

import logging

from broker_hub.errors import PermanentError, TransientError, Unavailable
from broker_hub.messages import Message
from broker_hub.metrics import Metrics
from workers.inbound import FAILURES_HEADER, Inbound
from workers.role import RetryPolicy

logger = logging.getLogger(__name__)

POISON_LIMIT = 3  # handler errors before a message is parked


def settle_failure(
    inbound: Inbound,
    message: Message,
    exc: BaseException,
    *,
    role: str,
    retry: RetryPolicy | None,
    metrics: Metrics,
) -> str:
    """Settle ``inbound`` after ``exc``; returns what was done (retried, parked, requeued)."""
    if isinstance(exc, Unavailable):
        logger.warning("%s: %s; the message goes back to the queue", role, exc)
        inbound.requeue()
        return "requeued"
    if isinstance(exc, TransientError):
        if retry is None:
            inbound.requeue()
            return "requeued"
        done = inbound.retry(message, retry, f"{role}: {exc}")
    elif isinstance(exc, PermanentError):
        done = "parked" if inbound.park_message(message, f"{role}: {exc}") else "requeued"
    else:
        done = _handler_error(inbound, message, exc, role=role, metrics=metrics)
        if done == "parked":
            metrics.parked.labels("handler_error").inc()
        return done
    if done == "parked":
        metrics.parked.labels(role).inc()
    return done


def _handler_error(
    inbound: Inbound, message: Message, exc: BaseException, *, role: str, metrics: Metrics
) -> str:
    failures = inbound.failures + 1
    metrics.handler_errors.labels(role).inc()
    logger.error(
        "%s: handler error on a %s message (%d of %d)",
        role, inbound.target, failures, POISON_LIMIT, exc_info=exc,
    )  # fmt: skip
    if inbound.settled:
        return "settled"
    reason = f"handler error: {exc.__class__.__name__}: {str(exc)[:200]}"
    if failures >= POISON_LIMIT:
        inbound.park_message(message, f"{reason} ({failures} tries)")
        return "parked"
    inbound.later(message, 0.5 * failures, **{FAILURES_HEADER: failures})
    return "retried"
