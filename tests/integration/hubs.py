"""Running the hub for integration tests: embedded (one process) or split (three, on RabbitMQ)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import requests

from broker_hub.storage import Storage, Subscription
from tests.support import rabbit
from tests.support.processes import HUB_SCRIPT, HubProcess, free_port, start_hub, wait_for

T = TypeVar("T")
POSTGRES_ADMIN_URL = "postgresql://127.0.0.1:5432/test"


@dataclass
class RunningHub:
    """A hub under test: its URL, its processes, its database."""

    mode: str
    url: str
    env: dict[str, str]
    processes: dict[str, HubProcess] = field(default_factory=dict)
    storage: Storage | None = None
    log_dir: Path | None = None
    retired: list[HubProcess] = field(default_factory=list)

    def post(self, **params: Any) -> requests.Response:
        data = [(f"hub.{k}", v) for k, v in params.items()]
        return requests.post(self.url, data=data, timeout=10)

    def subscribe(self, topic: str, callback: str, **extra: Any) -> requests.Response:
        response = self.post(mode="subscribe", topic=topic, callback=callback, **extra)
        assert response.status_code == 202, response.text
        return response

    def subscribed(self, topic: str, callback: str, timeout: float = 10.0) -> Subscription:
        """Wait until the subscription is active in the hub's database."""
        assert self.storage is not None
        return wait_for(
            lambda: self.storage.find_subscription(topic, callback),
            timeout=timeout,
            message=f"subscription of {callback} to {topic}",
        )

    def publish(self, *topics: str) -> requests.Response:
        response = requests.post(
            self.url, data=[("hub.mode", "publish")] + [("hub.url", t) for t in topics], timeout=10
        )
        assert response.status_code == 204, response.text
        return response

    def start(self, name: str, **overrides: str) -> HubProcess:
        """Start (again) one worker process of a split hub, e.g. after killing it."""
        port = free_port()
        env = {**self.env, "HUB_METRICS_PORT": str(port), **overrides}
        proc = start_hub(name, env, wait_metrics_port=port, log_dir=self.log_dir)
        old = self.processes.get(name)
        if old is not None:
            self.retired.append(old)
        self.processes[name] = proc
        return proc

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``broker-hub <args>`` with the hub's environment (e.g. ``parked list``)."""
        return subprocess.run(
            [str(HUB_SCRIPT), *args], env={**os.environ, **self.env}, capture_output=True,
            text=True, timeout=timeout, check=False,
        )

    def metrics_text(self) -> str:
        """Every metrics page of the hub's processes, concatenated."""
        pages = [requests.get(self.url + "metrics", timeout=10).text]
        for name in ("fetcher", "deliverer"):
            proc = self.processes.get(name)
            if proc is not None:
                port = proc.env["HUB_METRICS_PORT"]
                pages.append(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        return "\n".join(pages)


def _base_env(tmp: Path, **overrides: str) -> dict[str, str]:
    port = free_port()
    env = {
        "HUB_BIND": f"127.0.0.1:{port}",
        "HUB_ALLOW_PRIVATE_ADDRESSES": "true",
        "HUB_DELIVERY_BACKOFF_BASE": "0.2",
        "HUB_DELIVERY_MAX_ATTEMPTS": "4",
        "HUB_HTTP_TIMEOUT": "5",
        "HUB_LEASE_MIN": "1",
        "HUB_LOG_LEVEL": "INFO",
        # every client and server here is on 127.0.0.1: the per-address limits would bite
        "HUB_RATE_LIMIT_PER_MINUTE": "0",
        "HUB_VERIFY_RATE_PER_HOST": "0",
        "HUB_FETCH_RATE_PER_HOST": "0",
    }
    env.update(overrides)
    return env


@contextlib.contextmanager
def embedded_hub(tmp: Path, **overrides: str) -> Iterator[RunningHub]:
    """``broker-hub run``: memory transport, SQLite."""
    env = _base_env(tmp, HUB_DATABASE_URL=f"sqlite:///{tmp / 'hub.sqlite3'}", **overrides)
    url = f"http://{env['HUB_BIND']}/"
    proc = start_hub("run", env, wait_health_url=url + "healthz", log_dir=tmp)
    hub = RunningHub("embedded", url, env, {"run": proc},
                     Storage.from_url(env["HUB_DATABASE_URL"]))
    try:
        yield hub
    finally:
        proc.stop()
        _print_logs(hub)


@contextlib.contextmanager
def split_hub(tmp: Path, **overrides: str) -> Iterator[RunningHub]:
    """``broker-hub web``, ``fetcher`` and ``deliverer`` on RabbitMQ and PostgreSQL."""
    assert rabbit.rabbitmq_available(), "RabbitMQ must answer on 127.0.0.1:5672 (make rabbitmq)"
    namespace = f"bht_{uuid.uuid4().hex[:8]}"
    dbname = f"bh_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    admin.execute(f'CREATE DATABASE "{dbname}"')
    database_url = f"postgresql://127.0.0.1:5432/{dbname}"
    env = _base_env(
        tmp,
        HUB_BROKER_URL=rabbit.AMQP_URL,
        HUB_NAMESPACE=namespace,
        HUB_DATABASE_URL=database_url,
        HUB_WEB_WORKERS="2",
        **overrides,
    )
    url = f"http://{env['HUB_BIND']}/"
    hub = RunningHub("split", url, env, {}, Storage.from_url(database_url), tmp)
    try:
        hub.processes["web"] = start_hub("web", env, wait_health_url=url + "healthz", log_dir=tmp)
        hub.start("fetcher")
        hub.start("deliverer")
        yield hub
    finally:
        for proc in [*hub.processes.values(), *hub.retired]:
            proc.stop()
        _print_logs(hub)
        assert hub.storage is not None
        hub.storage.close()
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()
        rabbit.delete_namespace(namespace)


def _print_logs(hub: RunningHub) -> None:
    for name, proc in [*hub.processes.items(), *(("retired", p) for p in hub.retired)]:
        print(f"--- broker-hub {name} (exit {proc.returncode}) ---")
        print(proc.log_tail(80))


def poll(read: Callable[[], T], until: Callable[[T], bool], *, timeout: float = 10.0,
         message: str = "") -> T:
    """Call ``read`` until ``until(value)`` holds; return that value."""
    box: list[T] = []

    def check() -> bool:
        box[:] = [read()]
        return until(box[0])

    wait_for(check, timeout=timeout, message=message or None)
    return box[0]


def wait_posts(subscriber: Any, path: str, count: int, timeout: float = 10.0) -> list[dict]:
    """Wait until ``path`` received at least ``count`` POSTs; returns them."""
    return poll(lambda: subscriber.posts(path), lambda posts: len(posts) >= count,
                timeout=timeout, message=f"{count} deliveries to {path}")


def quiet_period(seconds: float = 0.8) -> None:
    """Give the hub time to do something it must not do (a delivery that should not happen)."""
    time.sleep(seconds)
