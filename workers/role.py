"""What a role is: the queues it consumes, its periodic tasks, and how a process builds it.

A role is one kind of work (fetching, delivering, verifying, polling PyPI, cleaning up). The
:class:`~workers.worker.Worker` runs one or more roles in a process and owns everything they
share: the consume loop, acks, retries, parking, periodic scheduling and graceful stop. A role
only says what it consumes and what it does with a message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker_hub.config import Settings

if TYPE_CHECKING:
    from workers.context import WorkerContext
    from workers.inbound import Inbound

# a handler takes one of the message types its Consume accepts
Handler = Callable[[Any, "Inbound"], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How a role retries a message whose handler raised TransientError."""

    max_attempts: int
    backoff_base: float


@dataclass(frozen=True)
class Consume:
    """One queue a role consumes.

    The handler settles the message itself (``inbound.ack()``, ``inbound.park(...)``, ...),
    now or later from :meth:`Role.tick`. If it raises instead, the worker decides:
    TransientError retries with ``retry``, PermanentError parks, Unavailable requeues, any other
    exception is a handler error (retried a few times, then parked with its reason).
    """

    target: str
    prefetch: int
    handler: Handler
    accepts: tuple[type, ...]
    retry: RetryPolicy | None = None


@dataclass(frozen=True)
class Periodic:
    """A task the worker runs every ``interval`` seconds, on its own thread."""

    name: str
    interval: float
    run: Callable[[], None]


class Role:
    """Base of every role; override what applies."""

    name = "role"

    def consumes(self) -> list[Consume]:
        return []

    def periodic(self) -> list[Periodic]:
        return []

    def tick(self) -> None:
        """Called on the consumer thread after each read of the broker: record finished work."""

    def in_flight(self) -> int:
        """Messages taken but not settled yet (graceful stop waits for them)."""
        return 0

    def close(self) -> None:
        """Release what the role holds."""


@dataclass(frozen=True)
class RoleSpec:
    """A role as the CLI and the embedded mode see it: registered in :mod:`workers.registry`."""

    name: str
    help: str
    build: Callable[[WorkerContext], Role]
    metrics_port: int  # the default of HUB_METRICS_PORT for ``broker-hub <name>``
    with_roles: tuple[str, ...] = ()  # other roles ``broker-hub <name>`` runs in its process
    enabled: Callable[[Settings], bool] = lambda settings: True
    # how long the consume loop waits for a message before the next tick(): work finished on
    # the event loop (a fetch, a delivery) is recorded at the latest this much later
    tick_interval: float = 0.2
    # the same while the role has work in flight (``in_flight() > 0``), where a shorter wait
    # is worth its wake-ups: a finished fetch is on the path from ping to first delivery
    busy_tick_interval: float | None = None
