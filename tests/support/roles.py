"""A role for testing the worker's policy: its handler does what the test tells it to."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from broker_hub import topology
from broker_hub.messages import FetchTopic
from broker_hub.services import Services
from workers.inbound import Inbound
from workers.role import Consume, RetryPolicy, Role
from workers.worker import Worker


class ScriptedRole(Role):
    """Consumes the fetch queue; ``behaviour(message, inbound)`` decides each time."""

    name = "scripted"

    def __init__(self, behaviour: Callable[[FetchTopic, Inbound], None], max_attempts: int = 3):
        self.behaviour = behaviour
        self.calls: list[FetchTopic] = []
        self.policy = RetryPolicy(max_attempts=max_attempts, backoff_base=0.05)

    def consumes(self) -> list[Consume]:
        return [Consume(topology.FETCH, 4, self.handle, (FetchTopic,), self.policy)]

    def handle(self, message: FetchTopic, inbound: Inbound) -> None:
        self.calls.append(message)
        self.behaviour(message, inbound)


@contextmanager
def running(services: Services, role: Role) -> Iterator[Worker]:
    worker = Worker(services.messaging, [role], metrics=services.metrics, name="test")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.ready.wait(10), "the worker never connected"
        yield worker
    finally:
        worker.stop()
        thread.join(30)


def wait_until(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)
