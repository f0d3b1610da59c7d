"""The agent's Prometheus metrics, on an injected registry; labels stay bounded."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 900, 1800, 3600)
PROJECTS_SHOWN = 100  # the per-project gauge keeps the most recently synced projects only


class _RecentProjects(Collector):
    """``broker_hub_mirror_project_push_to_synced_seconds{project}``, the last N projects only."""

    def __init__(self, size: int):
        self._size = size
        self._values: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def set(self, project: str, seconds: float) -> None:
        with self._lock:
            self._values.pop(project, None)
            self._values[project] = seconds
            while len(self._values) > self._size:
                self._values.popitem(last=False)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "broker_hub_mirror_project_push_to_synced_seconds",
            f"push to synced, the latest sync of each of the {self._size} projects synced last",
            labels=["project"],
        )
        with self._lock:
            for project, seconds in self._values.items():
                family.add_metric([project], seconds)
        yield family


class MirrorMetrics:
    """Everything ``/metrics`` of the agent shows."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.notifications = Counter(
            "broker_hub_mirror_notifications", "pushes received, by outcome "
            "(accepted, duplicate, forged, unknown, invalid)", ["outcome"], registry=r)
        self.latency = Histogram(
            "broker_hub_mirror_push_to_synced_seconds",
            "from a push reaching the callback to the mirror serving the change",
            buckets=LATENCY_BUCKETS, registry=r)
        self.recent = _RecentProjects(PROJECTS_SHOWN)
        r.register(self.recent)
        self.gaps = Counter("broker_hub_mirror_gaps", "gaps seen in a topic's serial/sequence "
                            "chain", registry=r)
        self.catchups = Counter("broker_hub_mirror_catchups", "catch-up reads, by outcome "
                                "(ok, error, gone)", ["outcome"], registry=r)
        self.full_syncs = Counter("broker_hub_mirror_full_syncs", "full-sync commands run, by "
                                  "outcome (ok, failed, not_configured)", ["outcome"], registry=r)
        self.syncs = Counter("broker_hub_mirror_syncs", "projects synced", registry=r)
        self.sync_failures = Counter("broker_hub_mirror_sync_failures", "failed sync attempts, "
                                     "by adapter and stage (index, trigger, check)",
                                     ["adapter", "stage"], registry=r)
        self.filtered = Counter("broker_hub_mirror_filtered", "changed projects left out by "
                                "--allow/--deny", registry=r)
        self.gave_up = Counter("broker_hub_mirror_gave_up", "projects that failed every "
                               "attempt (listed in the state's failed table)", registry=r)

    def watch(self, count: Callable[[str], int]) -> None:
        """Gauges read at scrape time from the state file (``State.count``)."""
        for table, text in (("inbox", "pushes accepted, not read yet"),
                            ("pending", "changed projects waiting for their sync"),
                            ("failed", "projects that failed every attempt")):
            gauge = Gauge(f"broker_hub_mirror_{table}", text, registry=self.registry)
            gauge.set_function(functools.partial(count, table))

    def synced(self, project: str, seconds: float) -> None:
        self.syncs.inc()
        self.latency.observe(seconds)
        self.recent.set(project, seconds)
