"""Prometheus metrics, built on an injected registry (each test gets a fresh one).

Labels stay bounded: ``mirror`` is a callback's host[:port], never a URL, and only for the
mirrors a :class:`MirrorLabels` admits (the top N by subscriptions, the rest count as
``other``; children of mirrors that left the set are removed). State gauges (backlog, queue
depths, mirror health) are not kept in the process: :class:`SnapshotCollector` reads them
from the latest :class:`broker_hub.opsview.Snapshot` at scrape time, so every process that
serves them agrees with the database and no stale child outlives its mirror.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from broker_hub import __version__

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600)
FETCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
OTHER = "other"
MIRROR_STATES = ("healthy", "failing", "paused")

# name -> help of the gauges SnapshotCollector exports (documented here, tested by scrapes)
SNAPSHOT_GAUGES = {
    "broker_hub_backlog_oldest_seconds": "Age of the oldest notification a subscriber has not "
    "received yet (0 when none).",
    "broker_hub_mirror_backlog_oldest_seconds": "Age of a mirror's oldest undelivered "
    "notification.",
    "broker_hub_queue_messages": "Messages in the hub's queues by target and state "
    "(ready: waiting for a worker; retrying: waiting in a delay queue).",
    "broker_hub_parked_messages": "Messages in the parking queue now.",
    "broker_hub_queue_consumers": "Consumers attached to a hub work queue, by target.",
    "broker_hub_mirror_consecutive_failures": "Failed deliveries to a mirror since its last "
    "success.",
    "broker_hub_mirror_last_success_timestamp_seconds": "When a mirror last answered 2xx.",
    "broker_hub_mirror_state": "1 for a mirror's current state (healthy, failing, paused).",
    "broker_hub_fetch_lag_seconds": "Age of the oldest ping whose fetch has not finished.",
    "broker_hub_topics": "Topics with at least one active subscription.",
}


class Metrics:
    """Every metric the hub exports."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: str = "hub"):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.process = process
        self.delivery_latency = Histogram(
            "broker_hub_delivery_latency_seconds",
            "Time from the ping's arrival to the mirror's 2xx.",
            ["mirror"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.deliveries = Counter(
            "broker_hub_deliveries_total",
            "Delivery attempts by outcome (delivered, failed, gone, retried, parked, refused).",
            ["mirror", "outcome"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "broker_hub_delivery_failures_total",
            "Failed delivery attempts by error class (http_4xx, http_5xx, timeout, connect...).",
            ["mirror", "error_class"],
            registry=r,
        )
        self.pings = Counter("broker_hub_pings_total", "Publish pings accepted.", registry=r)
        self.fetches = Counter(
            "broker_hub_fetches_total",
            "Topic fetches by outcome: changed, unchanged, not_modified, coalesced, failed...",
            ["outcome"],
            registry=r,
        )
        self.fetch_duration = Histogram(
            "broker_hub_fetch_duration_seconds",
            "Duration of topic fetches.",
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self.verifications = Counter(
            "broker_hub_verifications_total",
            "Verifications of intent by mode and outcome.",
            ["mode", "outcome"],
            registry=r,
        )
        self.subscriptions = Gauge(
            "broker_hub_subscriptions",
            "Subscriptions by state.",
            ["state"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.requests = Counter(
            "broker_hub_hub_requests_total",
            "Requests to the hub endpoint by mode and HTTP status.",
            ["mode", "status"],
            registry=r,
        )
        self.parked = Counter(
            "broker_hub_parked_total",
            "Messages parked, by reason kind.",
            ["reason"],
            registry=r,
        )
        self.up = Gauge(
            "broker_hub_up", "1 while a hub process runs, by role.", ["process"],
            registry=r, multiprocess_mode="livemax",
        )
        self.build_info = Gauge(
            "broker_hub_build_info", "The running version, by role.", ["process", "version"],
            registry=r, multiprocess_mode="livemax",
        )
        self.web_workers = Gauge(
            "broker_hub_web_workers", "Live web worker processes (summed over them).",
            registry=r, multiprocess_mode="livesum",
        )
        self.handler_errors = Counter(
            "broker_hub_handler_errors_total",
            "Unexpected errors of a role's message handler or periodic task.",
            ["role"],
            registry=r,
        )
        self.source_serial = Gauge(
            "broker_hub_source_serial",
            "The newest journal serial of the source index the hub has published.",
            ["source"],
            registry=r,
            multiprocess_mode="max",
        )
        self.source_lag = Gauge(
            "broker_hub_source_lag_seconds",
            "Seconds between the newest change the source index has and the hub having it.",
            ["source"],
            registry=r,
            multiprocess_mode="max",
        )
        self.polls = Counter(
            "broker_hub_polls_total",
            "Polls of a source index by outcome (changed, unchanged, failed, rate_limited, ...).",
            ["source", "outcome"],
            registry=r,
        )
        self.source_entries = Counter(
            "broker_hub_source_entries_total",
            "Journal entries read from a source index, by outcome (published, invalid).",
            ["source", "outcome"],
            registry=r,
        )
        self.up.labels(process).set(1)
        self.build_info.labels(process, __version__).set(1)
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes

    def prune_mirrors(self, mirrors: Iterable[str]) -> None:
        """Remove every child labelled with one of ``mirrors`` (they left the bounded set)."""
        gone = set(mirrors)
        if not gone:
            return
        for metric in (self.delivery_latency, self.deliveries, self.delivery_failures):
            for mirror in gone:
                metric.remove_by_labels({"mirror": mirror})

    def render(self, *, multiprocess_dir: str | None = None,
               extra: Iterable[Any] = ()) -> bytes:
        """The exposition text; with ``multiprocess_dir``, summed over every process that
        writes there (web workers (Granian processes), through ``PROMETHEUS_MULTIPROC_DIR``).
        ``extra`` collectors (e.g. a :class:`SnapshotCollector`) are added to the page."""
        registry = self.registry
        if multiprocess_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
            ProcessCollector(registry=registry)
        body = generate_latest(registry)
        for collector in extra:
            one = CollectorRegistry()
            one.register(collector)
            body += generate_latest(one)
        return body


class MirrorLabels:
    """The bounded set of ``mirror`` label values: at most ``limit`` hosts, the rest ``other``.

    :meth:`refresh` takes the hosts ranked by volume (active subscriptions, most first) and
    keeps the top ``limit``; hosts that dropped out are returned so their children can be
    removed. Between refreshes a new host takes a free slot, if any.
    """

    def __init__(self, limit: int = 50):
        self.limit = max(0, limit)
        self.allowed: set[str] = set()

    def label(self, mirror: str) -> str:
        if mirror in self.allowed:
            return mirror
        if len(self.allowed) < self.limit:
            self.allowed.add(mirror)
            return mirror
        return OTHER

    def refresh(self, ranked: Iterable[str]) -> set[str]:
        """Keep the top ``limit`` of ``ranked``; return the hosts that left the set."""
        top: list[str] = []
        for host in ranked:
            if len(top) >= self.limit:
                break
            if host not in top:
                top.append(host)
        removed = self.allowed - set(top)
        self.allowed = set(top)
        return removed


class SnapshotCollector:
    """Exports the state gauges of the latest snapshot that ``read()`` returns (or none)."""

    def __init__(self, read: Callable[[], Any]):
        self.read = read

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.read()
        if snap is None:
            return
        h = SNAPSHOT_GAUGES
        yield _gauge("broker_hub_backlog_oldest_seconds", h, [], [([], snap.backlog_oldest)])
        yield _gauge("broker_hub_fetch_lag_seconds", h, [], [([], snap.fetch_lag)])
        yield _gauge("broker_hub_topics", h, [], [([], snap.topics)])
        yield _gauge("broker_hub_parked_messages", h, [], [([], snap.parked)])
        queues = sorted(snap.queues.items())
        yield _gauge("broker_hub_queue_messages", h, ["target", "state"],
                     [([t, s], v) for (t, s), v in queues if s != "consumers"])
        yield _gauge("broker_hub_queue_consumers", h, ["target"],
                     [([t], v) for (t, s), v in queues if s == "consumers"])
        mirrors = snap.mirrors
        yield _gauge("broker_hub_mirror_backlog_oldest_seconds", h, ["mirror"],
                     [([m.mirror], m.backlog_oldest) for m in mirrors])
        yield _gauge("broker_hub_mirror_consecutive_failures", h, ["mirror"],
                     [([m.mirror], m.consecutive_failures) for m in mirrors])
        yield _gauge("broker_hub_mirror_last_success_timestamp_seconds", h, ["mirror"],
                     [([m.mirror], m.last_success_at) for m in mirrors
                      if m.last_success_at is not None])
        yield _gauge("broker_hub_mirror_state", h, ["mirror", "state"],
                     [([m.mirror, s], 1.0 if m.state == s else 0.0)
                      for m in mirrors for s in MIRROR_STATES])


def _gauge(name: str, helps: dict[str, str], labels: list[str],
           samples: list[tuple[list[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, helps[name], labels=labels)
    for label_values, value in samples:
        family.add_metric(label_values, float(value))
    return family
