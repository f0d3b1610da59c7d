"""Shared fixtures: real fake-servers, unique broker namespaces, databases, hub processes.

Nothing here skips: when RabbitMQ or PostgreSQL is down, the fixtures that need it fail the
test loudly (run ``make rabbitmq`` / ``bash scripts/ensure-rabbitmq.sh``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import rabbit
from tests.support.hubs import build_env, launch
from tests.support.postgres import fresh_database
from tests.support.processes import HubProcess, Server, free_port, start_server
from tests.support.publisher import PublisherClient
from tests.support.subscriber import SubscriberClient

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


@pytest.fixture
def rabbitmq_url() -> str:
    """The real RabbitMQ's AMQP URL; fails the test if RabbitMQ is down."""
    rabbit.require_rabbitmq()
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
    with fresh_database() as url:
        yield url


# --- hub processes -------------------------------------------------------------------------------


class HubEnv:
    """Builds env dicts (:func:`tests.support.hubs.build_env`) for the processes of one test.

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
            rabbit.require_rabbitmq()
            if namespace is None:
                namespace = self._request.getfixturevalue("namespace")
        return build_env(
            database_url=database_url or self.default_database_url,
            bind=self.bind,
            broker_url=broker_url,
            namespace=namespace,
            **overrides,
        )


@pytest.fixture
def hub_env(request: pytest.FixtureRequest, tmp_path: Path) -> HubEnv:
    """``hub_env(broker_url="memory://", database_url=None, namespace=None, **HUB_overrides)``."""
    return HubEnv(request, tmp_path)


@pytest.fixture
def spawn_hub(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """``spawn_hub(command, env, *, wait=True, **start_hub_kwargs) -> HubProcess``.

    :func:`tests.support.hubs.launch`: by default waits for ``/healthz`` (``run``, ``web``) or
    the metrics port (a role). Every process is stopped after the test; their log tails are
    printed then (pytest shows them for failed tests).
    """
    started: list[HubProcess] = []

    def spawn(command: str, env: dict[str, str], *, wait: bool = True, **kwargs: Any) -> HubProcess:
        kwargs.setdefault("log_dir", tmp_path / "logs")
        hub = launch(command, env, wait=wait, **kwargs)
        started.append(hub)
        return hub

    yield spawn
    for hub in reversed(started):
        hub.stop()
    for hub in started:
        print(f"--- broker-hub {hub.command} (exit {hub.returncode}) {hub.log_path} ---")
        print(hub.log_tail(40))
