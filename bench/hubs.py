"""The two hubs under test, each started as separate processes and cleaned up after."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import Proc, free_port, wait_port

RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672//"
PG_ADMIN_URL = "postgresql://127.0.0.1:5432/postgres"


@dataclass
class Context:
    repo: Path
    workdir: Path  # per invocation, under /tmp
    tools_python: str  # runs publisher, subscriber and the peer hub
    run_id: str
    rabbit_url: str = RABBIT_URL
    log: object = print
    extra: dict = field(default_factory=dict)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HUB_", "PROMETHEUS_", "FW_", "CELERY_", "VIRTUAL_ENV"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def delete_queues(prefix: str, rabbit_url: str, log=print) -> int:
    """Delete every queue and the exchange whose names start with ``prefix``."""
    try:
        out = subprocess.run(["rabbitmqctl", "list_queues", "-q", "name"], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"  (could not list queues: {exc}; queues {prefix}* left behind)")
        return 0
    names = [n.strip() for n in out.splitlines() if n.strip().startswith(prefix)]
    from kombu import Connection

    deleted = 0
    with Connection(rabbit_url, connect_timeout=5) as conn:
        channel = conn.channel()
        for name in names:
            with contextlib.suppress(Exception):
                channel.queue_delete(name)
                deleted += 1
        with contextlib.suppress(Exception):
            channel.exchange_delete(prefix.rstrip("."))
    return deleted


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
        return response.read()


class Hub:
    label = ""
    ping_param = "hub.url"

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.procs: dict[str, list[Proc]] = {}
        self.hub_url = ""

    def all_procs(self) -> list[Proc]:
        return [p for ps in self.procs.values() for p in ps]

    def check_alive(self) -> None:
        for proc in self.all_procs():
            if not proc.alive():
                raise RuntimeError(f"{proc.name} died:\n{proc.tail()}")

    def sample_rss(self) -> None:
        for proc in self.all_procs():
            proc.sample_rss()

    def rss(self) -> dict[str, float]:
        """Peak RSS in MB per role (web: gunicorn master + workers summed; several
        deliverers: the largest one)."""
        out: dict[str, float] = {}
        for role, procs in self.procs.items():
            values = [p.peak_rss_mb()["total_mb"] for p in procs]
            out[role] = round(max(values), 1) if values else 0.0
        return out

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far per role (summed over that role's processes)."""
        return {role: sum(p.cpu_seconds() for p in procs) for role, procs in self.procs.items()}

    def stop(self) -> None:
        for proc in reversed(self.all_procs()):
            proc.stop()


class BrokerHub(Hub):
    label = "broker-hub"
    ping_param = "hub.url"

    def __init__(self, ctx: Context, *, name: str, deliverers: int = 1, db: str = "sqlite",
                 tunables: dict[str, str] | None = None, extra_roles: tuple[str, ...] = (),
                 exe: str = ""):
        super().__init__(ctx)
        own = Path(sys.prefix) / "bin" / "broker-hub"  # the default: this checkout's
        self.exe = exe or (str(own) if own.exists() else shutil.which("broker-hub") or "broker-hub")
        self.name = name
        self.extra_roles = extra_roles  # more worker subcommands (e.g. "poller"), one each
        self.namespace = f"bench_{ctx.run_id}_{name}"
        self.deliverers = deliverers
        self.db = db
        self.tunables = tunables or {}
        self.metrics_ports: list[int] = []
        self.db_url = ""
        self._pg_db = ""

    def _database(self) -> str:
        if self.db == "postgres":
            import psycopg

            self._pg_db = self.namespace.lower()
            with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self._pg_db}"')
                conn.execute(f'CREATE DATABASE "{self._pg_db}"')
            return f"postgresql://127.0.0.1:5432/{self._pg_db}"
        return f"sqlite:///{self.ctx.workdir / (self.name + '.db')}"

    def start(self) -> None:
        port = free_port()
        self.hub_url = f"http://127.0.0.1:{port}/"
        self.db_url = self._database()
        base = _clean_env()
        base.update({
            "HUB_BROKER_URL": self.ctx.rabbit_url,
            "HUB_DATABASE_URL": self.db_url,
            "HUB_ALLOW_PRIVATE_ADDRESSES": "true",
            "HUB_BIND": f"127.0.0.1:{port}",
            "HUB_NAMESPACE": self.namespace,
            "HUB_LOG_LEVEL": "INFO",
            # the load comes from one address and all mirrors share one host: limits off
            "HUB_RATE_LIMIT_PER_MINUTE": "0",
            "HUB_VERIFY_RATE_PER_HOST": "0",
            "HUB_FETCH_RATE_PER_HOST": "0",
        })
        base.update(self.tunables)
        logdir = self.ctx.workdir / "logs"

        def spawn(role: str, index: int, extra: dict[str, str]) -> Proc:
            env = dict(base, **extra)
            name = f"{self.name}-{role}{index if index else ''}"
            proc = Proc(name, [self.exe, role], env=env, cwd=str(self.ctx.workdir),
                        logdir=logdir)
            self.procs.setdefault(role, []).append(proc)
            return proc

        # web first: it creates the schema; then the workers, each with its metrics port.
        web = spawn("web", 0, {})
        wait_port(port, 60, web)
        self._wait_health()
        ports = [free_port() for _ in range(self.deliverers + 1)]
        fetcher = spawn("fetcher", 0, {"HUB_METRICS_PORT": str(ports[0])})
        for i in range(self.deliverers):
            spawn("deliverer", i, {"HUB_METRICS_PORT": str(ports[i + 1])})
        self.metrics_ports = ports[1:]
        self.role_ports: dict[str, int] = {}
        for role in self.extra_roles:
            self.role_ports[role] = free_port()
            spawn(role, 0, {"HUB_METRICS_PORT": str(self.role_ports[role])})
        wait_port(ports[0], 60, fetcher)
        for p, proc in zip(self.metrics_ports, self.procs["deliverer"], strict=True):
            wait_port(p, 60, proc)
        for role, p in self.role_ports.items():
            wait_port(p, 60, self.procs[role][0])

    def _wait_health(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                _get(self.hub_url + "healthz", 2)
                return
            time.sleep(0.2)
        raise TimeoutError("broker-hub web /healthz did not answer")

    def verified_count(self) -> int:
        """Sum of broker_hub_verifications_total{mode=subscribe,outcome=verified} on deliverers."""
        total = 0.0
        for port in self.metrics_ports:
            text = _get(f"http://127.0.0.1:{port}/metrics").decode()
            for line in text.splitlines():
                if (line.startswith("broker_hub_verifications_total{")
                        and 'mode="subscribe"' in line and 'outcome="verified"' in line):
                    total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def active_count(self, topic: str) -> int:
        sql = "SELECT COUNT(*) FROM subscriptions WHERE topic = {p} AND expires_at > {p}"
        if self.db == "postgres":
            import psycopg

            with psycopg.connect(self.db_url, connect_timeout=5) as conn:
                return conn.execute(sql.format(p="%s"), (topic, time.time())).fetchone()[0]
        path = self.db_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
            return conn.execute(sql.format(p="?"), (topic, time.time())).fetchone()[0]

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            delete_queues(self.namespace + ".", self.ctx.rabbit_url, self.ctx.log)
        if self._pg_db:
            with contextlib.suppress(Exception):
                import psycopg

                with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self._pg_db}" WITH (FORCE)')


class FlaskWebSub(Hub):
    label = "flask-websub"
    ping_param = "hub.topic"

    def __init__(self, ctx: Context, *, name: str, concurrency: int = 8, web_workers: int = 2,
                 web_threads: int = 8):
        super().__init__(ctx)
        self.name = name
        self.queue = f"bench_{ctx.run_id}_{name}"
        self.concurrency = concurrency
        self.web_workers = web_workers
        self.web_threads = web_threads
        self.db_path = ctx.workdir / f"{name}.db"

    def start(self) -> None:
        bindir = Path(self.ctx.tools_python).parent
        port = free_port()
        self.hub_url = f"http://127.0.0.1:{port}/hub"
        env = _clean_env()
        env.update({
            "FW_BROKER_URL": self.ctx.rabbit_url,
            "FW_QUEUE": self.queue,
            "FW_DB": str(self.db_path),
            "PYTHONPATH": str(self.ctx.repo),
        })
        logdir = self.ctx.workdir / "logs"
        web = Proc(f"{self.name}-web", [
            str(bindir / "gunicorn"), "-k", "gthread", "-w", str(self.web_workers),
            "--threads", str(self.web_threads), "-b", f"127.0.0.1:{port}", "--keep-alive", "5",
            "bench.peers.flask_websub_hub:app",
        ], env=env, cwd=str(self.ctx.repo), logdir=logdir)
        self.procs["web"] = [web]
        wait_port(port, 60, web)
        worker = Proc(f"{self.name}-worker", [
            str(bindir / "celery"), "-A", "bench.peers.flask_websub_hub:celery", "worker",
            "-Q", self.queue, "-c", str(self.concurrency), "-P", "prefork", "--loglevel",
            "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ], env=env, cwd=str(self.ctx.repo), logdir=logdir)
        self.procs["worker"] = [worker]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the worker consumes its queue
            worker.sample_rss()
            if not worker.alive():
                raise RuntimeError(f"celery worker died:\n{worker.tail()}")
            if self._consumers() > 0:
                return
            time.sleep(0.5)
        raise TimeoutError("the flask-websub celery worker did not start consuming")

    def _consumers(self) -> int:
        with contextlib.suppress(Exception):
            out = subprocess.run(["rabbitmqctl", "list_queues", "-q", "name", "consumers"],
                                 capture_output=True, text=True, timeout=30).stdout
            for line in out.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == self.queue:
                    return int(parts[1])
        return 0

    def verified_count(self) -> int | None:
        return None

    def active_count(self, topic: str) -> int:
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=10)) as conn:
            try:
                return conn.execute(
                    "SELECT COUNT(*) FROM hub WHERE topic_url = ? "
                    "AND expiration_time > strftime('%s', 'now')", (topic,)).fetchone()[0]
            except sqlite3.OperationalError:
                return 0

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            delete_queues(self.queue, self.ctx.rabbit_url, self.ctx.log)
