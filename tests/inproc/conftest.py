"""The in-process layer: the web front through Flask's test client, roles and the worker on
kombu's in-memory transport, SQLite in the test's tmp dir. No subprocess, no network: a
failure here shows as an assertion, not as a timeout of a multi-process test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from kombu import Connection

from broker_hub import topology
from broker_hub.config import Settings
from broker_hub.messages import Message, from_body
from broker_hub.messaging import Messaging
from broker_hub.metrics import Metrics
from broker_hub.services import Services
from broker_hub.storage import Storage
from web import create_app


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'hub.sqlite3'}",
        namespace=f"bhi_{uuid.uuid4().hex[:8]}",
        allow_private_addresses=True,
        rate_limit_per_minute=0,
    )


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    storage = Storage.from_url(settings.database_url)
    storage.create_schema()
    messaging = Messaging("memory://", namespace=settings.namespace)
    services = Services(settings, storage, messaging, Metrics())
    yield services
    services.close()


@pytest.fixture
def client(services: Services) -> FlaskClient:
    """The web front on these services, through Flask's test client."""
    return create_app(services=services).test_client()


def take(services: Services, target: str, limit: int = 100) -> list[tuple[Message, dict]]:
    """Every message waiting on a target's queue (acked), with its headers."""
    got = []
    with Connection(services.messaging.url) as conn:
        bound = topology.queue(services.messaging.namespace, target)(conn.default_channel)
        bound.declare()
        for _ in range(limit):
            raw = bound.get(no_ack=True)
            if raw is None:
                break
            got.append((from_body(raw.body), dict(raw.headers or {})))
    return got
