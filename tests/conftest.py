"""Shared fixtures: real fake-servers, unique broker namespaces, databases, hub processes.

Nothing here skips: when RabbitMQ or PostgreSQL is down, the fixtures that need it fail the
test loudly (run ``make rabbitmq`` / ``bash scripts/ensure-rabbitmq.sh``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import rabbit
from tests.support.processes import (
    HubProcess,
    Server,
    free_port,
    hub_base_url,
    start_hub,
    start_server,
)
from tests.support.publisher import PublisherClient
from tests.support.subscriber import SubscriberClient

POSTGRES_ADMIN_URL = os.environ.get(
    "BROKER_HUB_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test"
)
POSTGRES_BASE = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]


# --- fake subscriber and publisher (one process per test module, reset per test) -----------------


@pytest.fixture(scope="module")
def subscriber_server() -> Iterator[Server]:
    server = start_server("tests.support.subscriber")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def publisher_server() -> Iterator[Server]:
    server = start_server("tests.support.publisher")
    yield server
    server.stop()


@pytest.fixture
def subscriber(subscriber_server: Server) -> SubscriberClient:
    """A fake mirror (real HTTP server in its own process), cleared before the test."""
    client = SubscriberClient(subscriber_server.url(""))
    client.server = subscriber_server
    client.reset()
    return client


@pytest.fixture
def publisher(publisher_server: Server) -> PublisherClient:
    """A fake topic server (real HTTP server in its own process), cleared before the test."""
    client = PublisherClient(publisher_server.url(""))
    client.server = publisher_server
    client.reset()
    return client


# --- RabbitMQ ------------------------------------------------------------------------------------


def _require_rabbitmq() -> None:
    if not rabbit.rabbitmq_available():
        pytest.fail(
            f"RabbitMQ is not answering on {rabbit.HOST}:{rabbit.PORT}. These tests never skip: "
            "start it with `make rabbitmq` (scripts/ensure-rabbitmq.sh).",
            pytrace=False,
        )


@pytest.fixture
def rabbitmq_url() -> str:
    """The real RabbitMQ's AMQP URL; fails the test if RabbitMQ is down."""
    _require_rabbitmq()
    return rabbit.AMQP_URL


@pytest.fixture
def namespace() -> Iterator[str]:
    """A unique ``HUB_NAMESPACE`` (``bht_<8 hex>``); its queues and exchanges are deleted after."""
    name = f"bht_{uuid.uuid4().hex[:8]}"
    yield name
    rabbit.delete_namespace(name)


# --- databases -----------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """``sqlite:////abs/path`` of a fresh file in the test's tmp dir."""
    return f"sqlite:///{tmp_path / 'hub.sqlite3'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database ``bh_<hex>`` on the real PostgreSQL, dropped after the test."""
    import psycopg

    dbname = f"bh_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({exc}). These tests never "
            "skip: start it (scripts/ensure-rabbitmq.sh tries) and run again.",
            pytrace=False,
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
        try:
            yield f"{POSTGRES_BASE}/{dbname}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


# --- hub processes -------------------------------------------------------------------------------


class HubEnv:
    """Builds env dicts for ``broker-hub`` processes of one test.

    All calls in a test share one ``HUB_BIND`` (so ``HUB_PUBLIC_URL`` agrees between the web
    front and the workers), the test's SQLite file unless ``database_url`` is given, and, for
    an ``amqp://`` broker, the test's ``namespace``. Each call gets a fresh ``HUB_METRICS_PORT``.
    """

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self._request = request
        self.port = free_port()
        self.bind = f"127.0.0.1:{self.port}"
        self.default_database_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://{self.bind}"

    @property
    def hub_url(self) -> str:
        """The hub endpoint, ``http://127.0.0.1:<port>/``."""
        return self.base_url + "/"

    def __call__(
        self,
        broker_url: str = "memory://",
        database_url: str | None = None,
        namespace: str | None = None,
        **overrides: Any,
    ) -> dict[str, str]:
        if broker_url.startswith("amqp"):
            _require_rabbitmq()
            if namespace is None:
                namespace = self._request.getfixturevalue("namespace")
        env = {
            "HUB_BIND": self.bind,
            "HUB_BROKER_URL": broker_url,
            "HUB_DATABASE_URL": database_url or self.default_database_url,
            "HUB_NAMESPACE": namespace or f"bht_{uuid.uuid4().hex[:8]}",
            "HUB_ALLOW_PRIVATE_ADDRESSES": "true",
            "HUB_METRICS_PORT": str(free_port()),
            "HUB_DELIVERY_BACKOFF_BASE": "0.2",
            "HUB_HTTP_TIMEOUT": "5",
            # every test client and server is on 127.0.0.1: rate limits only where tested
            "HUB_RATE_LIMIT_PER_MINUTE": "0",
            "HUB_VERIFY_RATE_PER_HOST": "0",
            "HUB_FETCH_RATE_PER_HOST": "0",
        }
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = str(value)
        return env


@pytest.fixture
def hub_env(request: pytest.FixtureRequest, tmp_path: Path) -> HubEnv:
    """``hub_env(broker_url="memory://", database_url=None, namespace=None, **HUB_overrides)``."""
    return HubEnv(request, tmp_path)


@pytest.fixture
def spawn_hub(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """``spawn_hub(command, env, *, wait=True, **start_hub_kwargs) -> HubProcess``.

    By default waits for ``/healthz`` (``run``, ``web``) or the metrics port (``fetcher``,
    ``deliverer``). Every process is stopped after the test; their log tails are printed then
    (pytest shows them for failed tests).
    """
    started: list[HubProcess] = []

    def spawn(command: str, env: dict[str, str], *, wait: bool = True, **kwargs: Any) -> HubProcess:
        if wait and "wait_health_url" not in kwargs and "wait_metrics_port" not in kwargs:
            if command in ("run", "web"):
                kwargs["wait_health_url"] = hub_base_url(env) + "/healthz"
            elif env.get("HUB_METRICS_PORT"):
                kwargs["wait_metrics_port"] = int(env["HUB_METRICS_PORT"])
        kwargs.setdefault("log_dir", tmp_path / "logs")
        hub = start_hub(command, env, **kwargs)
        started.append(hub)
        return hub

    yield spawn
    for hub in reversed(started):
        hub.stop()
    for hub in started:
        print(f"--- broker-hub {hub.command} (exit {hub.returncode}) {hub.log_path} ---")
        print(hub.log_tail(40))
