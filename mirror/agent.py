"""The running agent: its callback server and two loops (reader, syncer), stopped by a flag."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import requests
from werkzeug.serving import BaseWSGIServer, make_server

from mirror.adapters import Adapter
from mirror.callback import create_app
from mirror.leases import Leases
from mirror.metrics import MirrorMetrics
from mirror.names import NameFilter
from mirror.reader import Reader
from mirror.state import State
from mirror.syncer import Syncer

logger = logging.getLogger(__name__)

DELIVERY_IDS_KEPT = 7 * 86400.0  # a replay older than a week is not expected from a hub


@dataclass
class AgentConfig:
    """What ``broker-hub mirror`` was told (see ``mirror/cli.py`` for each option)."""

    hub_url: str
    callback_url: str
    topics: list[str]
    index_url: str
    state_path: str
    host: str = "127.0.0.1"
    port: int = 8390
    lease_seconds: int | None = None
    coalesce_seconds: float = 1.0
    fresh_timeout: float = 60.0
    max_attempts: int = 8
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    full_sync: str | None = None
    user_agent: str = "broker-hub-mirror"


class Agent:
    def __init__(self, config: AgentConfig, adapters: list[Adapter], *,
                 session: requests.Session | None = None, metrics: MirrorMetrics | None = None):
        self.config = config
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = config.user_agent
        self.metrics = metrics or MirrorMetrics()
        self.state = State(config.state_path)
        self.metrics.watch(self.state.count)
        self._stop = threading.Event()
        self._wake_reader = threading.Event()
        self._wake_syncer = threading.Event()
        allowed = NameFilter(config.allow, config.deny)
        self.leases = Leases(self.state, hub_url=config.hub_url, callback_base=config.callback_url,
                             session=self.session, lease_seconds=config.lease_seconds)
        self.reader = Reader(self.state, session=self.session, metrics=self.metrics,
                             allowed=allowed, full_sync=config.full_sync)
        self.syncer = Syncer(self.state, adapters, index_url=config.index_url,
                             session=self.session, metrics=self.metrics,
                             coalesce_seconds=config.coalesce_seconds,
                             fresh_timeout=config.fresh_timeout, max_attempts=config.max_attempts)
        app = create_app(self.state, self.metrics, wake=self._wake_reader)
        self.server: BaseWSGIServer = make_server(config.host, config.port, app, threaded=True)
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return self.server.server_port

    def start(self) -> None:
        """Serve the callback first (the hub verifies at once), then subscribe and read."""
        self.state.want_topics(self.config.topics)
        self.state.catch_up_all()
        self._threads = [
            threading.Thread(target=self.server.serve_forever, name="callback", daemon=True),
            threading.Thread(target=self._reader_loop, name="reader", daemon=True),
            threading.Thread(target=self._syncer_loop, name="syncer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        logger.info("mirror agent: callback on %s:%d, %d topic(s)", self.config.host, self.port,
                    len(self.config.topics))

    def _guarded(self, what: str, step) -> float | None:
        try:
            return step()
        except Exception:  # a loop that dies silently would stop the mirror
            logger.exception("%s failed; trying again shortly", what)
            return 2.0

    def _reader_loop(self) -> None:
        pruned = 0.0
        while not self._stop.is_set():
            self._wake_reader.clear()
            self._guarded("subscription renewal", self.leases.run_once)
            busy = self._guarded("reading pushes", self.reader.run_once)
            self._wake_syncer.set()
            if time.time() - pruned > 3600:
                self.state.prune_deliveries(time.time() - DELIVERY_IDS_KEPT)
                pruned = time.time()
            if busy is not True:
                self._wake_reader.wait(1.0)

    def _syncer_loop(self) -> None:
        while not self._stop.is_set():
            wait = self._guarded("syncing", self.syncer.run_once)
            if wait:
                self._wake_syncer.wait(wait)
            self._wake_syncer.clear()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake_reader.set()
        self._wake_syncer.set()
        self.server.shutdown()
        for thread in self._threads:
            thread.join(timeout)
        if not any(thread.is_alive() for thread in self._threads):
            self.state.close()  # else a sync still runs: the process exit ends it
