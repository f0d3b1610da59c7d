"""The worker's policy by error type on the real RabbitMQ: the in-process tests
(tests/inproc/test_worker.py) again, with the AMQP publisher, delay queues and redelivery."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker_hub.config import Settings
from broker_hub.messaging import Messaging
from broker_hub.metrics import Metrics
from broker_hub.services import Services
from broker_hub.storage import Storage
from tests.inproc.test_worker import (  # noqa: F401 - collected here again, on RabbitMQ
    test_a_handler_bug_is_parked_after_a_bounded_number_of_tries,
    test_permanent_error_parks_at_once,
    test_transient_errors_retry_with_attempts_then_park,
    test_unavailable_requeues_until_it_works,
    test_unreadable_and_misrouted_messages_are_parked,
)


@pytest.fixture
def services(tmp_path: Path, rabbitmq_url: str, namespace: str) -> Iterator[Services]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'hub.sqlite3'}",
        broker_url=rabbitmq_url,
        namespace=namespace,
    )
    storage = Storage.from_url(settings.database_url)
    storage.create_schema()
    services = Services(settings, storage, Messaging(rabbitmq_url, namespace=namespace), Metrics())
    yield services
    services.close()
