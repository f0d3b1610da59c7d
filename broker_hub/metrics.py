"""Prometheus metrics, built on an injected registry (each test gets a fresh one).

Labels stay bounded: ``mirror`` is a callback's host[:port], never a URL.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600)
FETCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric the hub exports."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
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

    def render(self, *, multiprocess_dir: str | None = None) -> bytes:
        """The exposition text; with ``multiprocess_dir``, summed over every process that
        writes there (web workers (Granian processes), through ``PROMETHEUS_MULTIPROC_DIR``)."""
        if multiprocess_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
            return generate_latest(registry)
        return generate_latest(self.registry)
