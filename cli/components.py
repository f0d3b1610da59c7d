"""Building the hub's parts from the settings, shared by every process type."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from prometheus_client import start_http_server

from broker_hub import topology as topology
from broker_hub.bus import Messaging
from broker_hub.config import Settings
from broker_hub.metrics import Metrics
from broker_hub.storage import Storage
from workers.consumer import ConsumerLoop, Subscription
from workers.deliverer import Deliverer
from workers.fetcher import Fetcher
from workers.http_engine import HttpEngine
from workers.verifier import Verifier

logger = logging.getLogger(__name__)

DEFAULT_METRICS_PORTS = {"fetcher": 9101, "deliverer": 9102}
JANITOR_INTERVAL = 60.0


@dataclass
class Core:
    settings: Settings
    storage: Storage
    messaging: Messaging
    metrics: Metrics


def build_core(settings: Settings, metrics: Metrics | None = None) -> Core:
    storage = Storage.from_url(settings.database_url)
    storage.create_schema()
    messaging = Messaging(settings.broker_url, namespace=settings.namespace)
    return Core(settings, storage, messaging, metrics or Metrics())


def serve_metrics(core: Core, process: str) -> None:
    """Serve ``/metrics`` for a worker on HUB_METRICS_PORT (its default when 0; off when < 0)."""
    port = core.settings.metrics_port or DEFAULT_METRICS_PORTS[process]
    if port < 0:
        return
    start_http_server(port, addr=core.settings.host, registry=core.metrics.registry)
    logger.info("%s metrics on http://%s:%d/metrics", process, core.settings.host, port)


def fetcher_loop(core: Core) -> ConsumerLoop:
    fetcher = Fetcher(
        settings=core.settings, storage=core.storage, messaging=core.messaging, metrics=core.metrics
    )
    last = [0.0]

    def janitor() -> None:
        if time.monotonic() - last[0] > JANITOR_INTERVAL:
            last[0] = time.monotonic()
            try:
                fetcher.janitor()
            except Exception:
                logger.exception("janitor failed")

    return ConsumerLoop(
        core.messaging,
        [Subscription(topology.FETCH, core.settings.prefetch, fetcher.on_message)],
        tick=janitor,
        tick_interval=0.2,
        name="fetcher",
    )


def deliverer_loop(core: Core) -> tuple[ConsumerLoop, HttpEngine]:
    """Verification and distribution share one process, one event loop, one consume loop."""
    engine = HttpEngine(core.settings)
    engine.start()
    parts = dict(
        settings=core.settings,
        storage=core.storage,
        messaging=core.messaging,
        metrics=core.metrics,
        engine=engine,
    )
    verifier, deliverer = Verifier(**parts), Deliverer(**parts)

    def tick() -> None:
        verifier.tick()
        deliverer.tick()

    def drain(timeout: float) -> None:
        """Wait (bounded) for in-flight work of both to finish and be recorded."""
        deadline = time.monotonic() + timeout
        while verifier.in_flight + deliverer.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
            tick()
        left = verifier.in_flight + deliverer.in_flight
        if left:
            logger.warning("stopping with %d messages in flight; the broker redelivers them", left)

    loop = ConsumerLoop(
        core.messaging,
        [
            Subscription(topology.VERIFY, core.settings.verify_prefetch, verifier.on_verify),
            Subscription(topology.DELIVER, core.settings.prefetch, deliverer.on_deliver),
        ],
        tick=tick,
        drain=drain,
        tick_interval=0.01,
        name="deliverer",
    )
    return loop, engine
