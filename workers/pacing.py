"""Per-mirror pacing for the deliverer: the bounded ``mirror`` label set with the metrics
children of each label, and the circuit breaker (a mirror that keeps failing is paused and
probed, never dropped; see :mod:`broker_hub.breaker` and docs/monitoring.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from broker_hub.breaker import Breaker, BreakerPolicy
from broker_hub.metrics import Metrics, MirrorLabels
from broker_hub.storage import Subscription
from broker_hub.storage.api import Store


class Pacing:
    """What the deliverer asks per mirror: its label, whether to deliver now, how long to wait."""

    def __init__(self, storage: Store, metrics: Metrics, *, labels_max: int, backoff_base: float,
                 clock: Callable[[], float]):
        self.storage = storage
        self.metrics = metrics
        self.clock = clock
        self.labels = MirrorLabels(labels_max)
        self.breaker = Breaker(BreakerPolicy.for_backoff(backoff_base))
        self._latency: dict[str, Any] = {}  # label -> its delivery_latency child
        # (label, outcome) -> deliveries since the last count_outcomes(): one labels() call
        # per tick instead of per delivery (~1.5 µs each)
        self.outcomes: Counter[tuple[str, str]] = Counter()

    def label(self, mirror: str) -> str:
        return self.labels.label(mirror)

    def latency(self, mirror: str) -> Any:
        """The mirror's ``delivery_latency`` child (looked up once per label)."""
        label = self.labels.label(mirror)
        child = self._latency.get(label)
        if child is None:
            child = self._latency[label] = self.metrics.delivery_latency.labels(label)
        return child

    def count_outcomes(self) -> None:
        for (label, outcome), count in self.outcomes.items():
            self.metrics.deliveries.labels(label, outcome).inc(count)
        self.outcomes.clear()

    def split(self, subs: list[Subscription]) -> tuple[list[Subscription],
                                                       list[tuple[Subscription, float]]]:
        """(deliver now, [(held back, seconds to wait)]): a paused mirror gets one probe."""
        now = self.clock()
        ready, held = [], []
        for sub in subs:
            if self.breaker.allow(sub.mirror, now):
                ready.append(sub)
            else:
                held.append((sub, max(1.0, self.breaker.wait(sub.mirror, now))))
        return ready, held

    def record(self, mirror: str, ok: bool) -> None:
        self.breaker.record(mirror, ok, self.clock())

    def refresh(self) -> set[str]:
        """Keep the label set on the mirrors that matter (failing first, then by
        subscriptions); drop the children and breaker state of those that left."""
        health = self.storage.mirrors_health(self.clock(), self.labels.limit)
        current = {h.mirror for h in health}
        removed = self.labels.refresh(h.mirror for h in health)
        self.metrics.prune_mirrors(removed)
        for label in removed:
            self._latency.pop(label, None)
        self.breaker.forget(removed - current)
        return removed
