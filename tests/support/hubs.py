"""The one hub launcher of the multi-process tests.

- :func:`build_env`: the env of ``broker-hub`` processes (loopback, rate limits off unless a
  test turns them on, short backoffs and leases).
- :func:`launch`: one ``broker-hub <command>``, waited for (``/healthz`` for ``run``/``web``,
  its metrics port for a role).
- :class:`RunningHub`: a hub under test: URL, env, processes by role, storage, form helpers,
  start/stop/kill of a role, the metrics of every process.
- :func:`embedded` (``broker-hub run``, memory transport, SQLite) and :func:`split` (``web`` plus
  roles on RabbitMQ and a fresh PostgreSQL database); :class:`HubCache`: one embedded hub per
  configuration for a whole session (the security tests' ``hub_factory``).
- :func:`poll`, :func:`wait_posts`, :func:`quiet_period` (from :mod:`tests.support.waits`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from broker_hub.storage import Storage, Subscription
from tests.support import rabbit
from tests.support.postgres import fresh_database
from tests.support.processes import HUB_SCRIPT, HubProcess, free_port, start_hub, wait_for
from tests.support.waits import poll, quiet_period, wait_posts

__all__ = [
    "DEFAULTS", "Hub", "HubCache", "RunningHub", "build_env", "embedded", "launch", "poll",
    "quiet_period", "split", "wait_posts",
]

FRONTS = ("run", "web")  # the commands that serve the hub endpoint (and its /metrics)
SPLIT_ROLES = ("fetcher", "deliverer")  # what ``split`` starts by default besides ``web``
DEFAULTS: dict[str, str] = {
    "HUB_ALLOW_PRIVATE_ADDRESSES": "true",
    "HUB_DELIVERY_BACKOFF_BASE": "0.2",
    "HUB_DELIVERY_MAX_ATTEMPTS": "4",
    "HUB_HTTP_TIMEOUT": "5",
    "HUB_LEASE_MIN": "1",
    "HUB_LOG_LEVEL": "INFO",
    # every test client and server is on 127.0.0.1: the per-address limits only where tested
    "HUB_RATE_LIMIT_PER_MINUTE": "0",
    "HUB_VERIFY_RATE_PER_HOST": "0",
    "HUB_FETCH_RATE_PER_HOST": "0",
}


def build_env(
    *,
    database_url: str,
    bind: str | None = None,
    broker_url: str = "memory://",
    namespace: str | None = None,
    **overrides: Any,
) -> dict[str, str]:
    """The env of a hub's processes: :data:`DEFAULTS`, then ``overrides`` (``None`` removes).

    ``bind`` defaults to a free loopback port, ``namespace`` to a fresh ``bht_<hex>``; each call
    gets a fresh ``HUB_METRICS_PORT``.
    """
    env = {
        "HUB_BIND": bind or f"127.0.0.1:{free_port()}",
        "HUB_BROKER_URL": broker_url,
        "HUB_DATABASE_URL": database_url,
        "HUB_NAMESPACE": namespace or f"bht_{uuid.uuid4().hex[:8]}",
        "HUB_METRICS_PORT": str(free_port()),
        **DEFAULTS,
    }
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def launch(
    command: str, env: Mapping[str, str], *, log_dir: Path | None, wait: bool = True,
    timeout: float = 30.0, **kwargs: Any,
) -> HubProcess:
    """``broker-hub <command>``; unless ``wait`` is false, waited for (bounded): ``/healthz``
    of a front (``run``, ``web``), the ``HUB_METRICS_PORT`` of a role."""
    if wait and "wait_health_url" not in kwargs and "wait_metrics_port" not in kwargs:
        if command in FRONTS:
            kwargs["wait_health_url"] = f"http://{env.get('HUB_BIND', '127.0.0.1:8080')}/healthz"
        elif env.get("HUB_METRICS_PORT"):
            kwargs["wait_metrics_port"] = int(env["HUB_METRICS_PORT"])
    return start_hub(command, env, log_dir=log_dir, timeout=timeout, **kwargs)


@dataclass(eq=False)
class RunningHub:
    """A hub under test: its endpoint URL (with ``/``), env, processes by role, database.

    With ``check_status`` (the default) ``subscribe`` asserts 202 and ``publish`` 204; the
    security tests' :class:`Hub` leaves the status to the test.
    """

    mode: str
    url: str
    env: dict[str, str]
    processes: dict[str, HubProcess] = field(default_factory=dict)
    storage: Storage | None = None
    log_dir: Path | None = None
    retired: list[HubProcess] = field(default_factory=list)
    check_status: bool = True

    # --- the hub endpoint ---------------------------------------------------------------------

    def post(
        self, data: Any = None, *, headers: Mapping[str, str] | None = None,
        timeout: float = 10, **params: Any,
    ) -> requests.Response:
        """POST ``data`` as is, or ``params`` as ``hub.<name>`` form fields (or both)."""
        if params:
            pairs = [(f"hub.{k}", v) for k, v in params.items()]
            if data is not None:
                pairs = [*(data.items() if isinstance(data, Mapping) else data), *pairs]
            data = pairs
        return requests.post(self.url, data=data, headers=headers, timeout=timeout)

    def subscribe(self, topic: str, callback: str, **extra: Any) -> requests.Response:
        response = self.post(mode="subscribe", topic=topic, callback=callback, **extra)
        return self._checked(response, 202)

    def unsubscribe(self, topic: str, callback: str, **extra: Any) -> requests.Response:
        response = self.post(mode="unsubscribe", topic=topic, callback=callback, **extra)
        return self._checked(response, 202)

    def publish(self, *topics: str, **kwargs: Any) -> requests.Response:
        """``hub.mode=publish`` with one ``hub.url`` per topic (``headers=``, ``timeout=``)."""
        data = [("hub.mode", "publish")] + [("hub.url", t) for t in topics]
        return self._checked(self.post(data, **kwargs), 204)

    def _checked(self, response: requests.Response, status: int) -> requests.Response:
        if self.check_status:
            assert response.status_code == status, response.text
        return response

    def healthy(self) -> bool:
        return requests.get(self.url + "healthz", timeout=10).status_code == 200

    # --- the database -------------------------------------------------------------------------

    def subscription(self, topic: str, callback: str) -> Subscription | None:
        assert self.storage is not None
        return self.storage.find_subscription(topic, callback)

    def subscribed(self, topic: str, callback: str, timeout: float = 10.0) -> Subscription:
        """Wait until the subscription is active in the hub's database."""
        found = wait_for(lambda: self.subscription(topic, callback), timeout=timeout,
                         message=f"subscription of {callback} to {topic}")
        assert found is not None
        return found

    # --- metrics ------------------------------------------------------------------------------

    def metrics(self) -> str:
        """The front's ``/metrics`` (everything, for an embedded hub)."""
        return requests.get(self.url + "metrics", timeout=10).text

    def metrics_urls(self) -> dict[str, str]:
        """``/metrics`` of the front and of every running role, by role (a replaced process
        that still runs as ``<role>-<pid>``)."""
        urls = {"front": self.url + "metrics"}
        running = [*self.processes.items(), *((f"{p.command}-{p.pid}", p) for p in self.retired)]
        for name, proc in running:
            if proc.command not in FRONTS and proc.alive():
                urls[name] = f"http://127.0.0.1:{proc.env['HUB_METRICS_PORT']}/metrics"
        return urls

    def metrics_pages(self) -> dict[str, str]:
        """The metrics page of the front and of every running role, by role."""
        return {k: requests.get(u, timeout=10).text for k, u in self.metrics_urls().items()}

    def metrics_text(self) -> str:
        """Every metrics page of the hub's running processes, concatenated."""
        return "\n".join(self.metrics_pages().values())

    def metric(self, name: str, **labels: str) -> float:
        """The sum over all processes of the samples ``name`` whose labels include ``labels``
        (any label order); 0 when there is none."""
        return sum(
            sample.value
            for page in self.metrics_pages().values()
            for family in text_string_to_metric_families(page)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    # --- processes ----------------------------------------------------------------------------

    @property
    def process(self) -> HubProcess:
        """The front process (``run`` or ``web``)."""
        for name in FRONTS:
            if name in self.processes:
                return self.processes[name]
        return next(iter(self.processes.values()))

    def start(self, role: str, **overrides: Any) -> HubProcess:
        """Start (again) one role's process (``fetcher``, ``deliverer``, ``verifier``,
        ``janitor``, ``poller``) with a fresh metrics port, waited for; an earlier process of
        that role keeps running (stop or kill it first), it is only no longer ``processes[role]``.
        """
        port = free_port()
        env = {**self.env, "HUB_METRICS_PORT": str(port),
               **{k: str(v) for k, v in overrides.items()}}
        if role == "poller":
            assert env.get("HUB_PYPI_URL"), "the poller needs HUB_PYPI_URL (a fake_pypi's URL)"
        proc = launch(role, env, log_dir=self.log_dir)
        self._retire(role)
        self.processes[role] = proc
        return proc

    def stop(self, role: str, timeout: float = 10.0) -> int | None:
        """SIGTERM the role's process, wait (then SIGKILL); returns its exit code."""
        proc = self.processes[role]
        code = proc.stop(timeout)
        self._retire(role)
        return code

    def kill(self, role: str) -> None:
        """SIGKILL the role's process group (a crash)."""
        self.processes[role].kill()
        self._retire(role)

    def _retire(self, role: str) -> None:
        old = self.processes.pop(role, None)
        if old is not None:
            self.retired.append(old)

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``broker-hub <args>`` with the hub's environment (e.g. ``parked list``)."""
        return subprocess.run(
            [str(HUB_SCRIPT), *args], env={**os.environ, **self.env}, capture_output=True,
            text=True, timeout=timeout, check=False,
        )

    def log(self) -> str:
        """The output of every process the hub ran, the front's first."""
        return "\n".join(p.log() for p in [*self.processes.values(), *self.retired])

    def close(self, *, print_logs: bool = True) -> None:
        """Stop every process (roles first), print their log tails, close the storage."""
        procs = [*self.processes.items(), *(("retired", p) for p in self.retired)]
        for _, proc in sorted(procs, key=lambda item: item[1].command in FRONTS):
            proc.stop()
        if print_logs:
            for name, proc in procs:
                print(f"--- broker-hub {name} (exit {proc.returncode}) {proc.log_path} ---")
                print(proc.log_tail(80))
        if self.storage is not None:
            self.storage.close()


class Hub(RunningHub):
    """A running hub whose helpers leave the status to the test: ``Hub(url, process, storage)``."""

    def __init__(self, url: str, process: HubProcess, storage: Storage,
                 log_dir: Path | None = None) -> None:
        mode = "embedded" if process.command == "run" else "split"
        super().__init__(mode, url, dict(process.env), {process.command: process}, storage,
                         log_dir, check_status=False)


@contextlib.contextmanager
def embedded(tmp: Path, **overrides: Any) -> Iterator[RunningHub]:
    """``broker-hub run``: memory transport, SQLite in ``tmp`` (``HUB_DATABASE_URL`` overrides)."""
    env = build_env(database_url=f"sqlite:///{tmp / 'hub.sqlite3'}", **overrides)
    hub = RunningHub("embedded", f"http://{env['HUB_BIND']}/", env, log_dir=tmp)
    try:
        hub.processes["run"] = launch("run", env, log_dir=tmp)
        hub.storage = Storage.from_url(env["HUB_DATABASE_URL"])
        yield hub
    finally:
        hub.close()


@contextlib.contextmanager
def split(
    tmp: Path, roles: tuple[str, ...] = SPLIT_ROLES, **overrides: Any
) -> Iterator[RunningHub]:
    """``broker-hub web`` (``HUB_WEB_WORKERS=2``) and ``roles`` on RabbitMQ (a fresh namespace,
    deleted after) and a fresh PostgreSQL database (unless ``HUB_DATABASE_URL`` is given).

    A ``poller`` in ``roles`` needs ``HUB_PYPI_URL``; more roles start with ``hub.start``.
    """
    rabbit.require_rabbitmq()
    with contextlib.ExitStack() as stack:
        database_url = overrides.pop("HUB_DATABASE_URL", None)
        if database_url is None:
            database_url = stack.enter_context(fresh_database())
        namespace = f"bht_{uuid.uuid4().hex[:8]}"
        stack.callback(rabbit.delete_namespace, namespace)
        env = build_env(database_url=str(database_url), broker_url=rabbit.AMQP_URL,
                        namespace=namespace, **{"HUB_WEB_WORKERS": "2", **overrides})
        hub = RunningHub("split", f"http://{env['HUB_BIND']}/", env, log_dir=tmp)
        stack.callback(hub.close)
        hub.processes["web"] = launch("web", env, log_dir=tmp)
        hub.storage = Storage.from_url(env["HUB_DATABASE_URL"])
        for role in roles:
            hub.start(role)
        yield hub


class HubCache:
    """One embedded hub per distinct configuration, started on first use, restarted if dead.

    ``HubCache(make_dir, **defaults).get(**overrides) -> Hub``; ``close()`` stops them all.
    """

    def __init__(self, make_dir: Callable[[], Path], **defaults: Any) -> None:
        self._make_dir = make_dir
        self._defaults = defaults
        self._hubs: dict[tuple[tuple[str, str], ...], Hub] = {}

    def get(self, **overrides: Any) -> Hub:
        key = tuple(sorted((k, str(v)) for k, v in overrides.items()))
        hub = self._hubs.get(key)
        if hub is not None and hub.process.alive():
            return hub
        if hub is not None:
            hub.close(print_logs=False)
        tmp = self._make_dir()
        env = build_env(database_url=f"sqlite:///{tmp / 'hub.sqlite3'}",
                        **{**self._defaults, **overrides})
        process = launch("run", env, log_dir=tmp)
        self._hubs[key] = Hub(f"http://{env['HUB_BIND']}/", process,
                              Storage.from_url(env["HUB_DATABASE_URL"]), tmp)
        return self._hubs[key]

    def close(self) -> None:
        for hub in self._hubs.values():
            hub.close(print_logs=False)
        self._hubs.clear()
