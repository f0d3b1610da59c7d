"""What an operator sees: one :class:`Snapshot` of the hub's state, read from storage and the
broker, behind ``/status``, ``/status.json``, ``broker-hub status`` and the state gauges of
``/metrics``. Nothing here shows a secret, a userinfo, a callback URL or a response body:
mirrors are host[:port], topics lose their userinfo and their query string.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from broker_hub import topology
from broker_hub.breaker import DEFAULT_POLICY, BreakerPolicy, mirror_state
from broker_hub.config import Settings
from broker_hub.pypi.topics import source_of
from broker_hub.storage.api import Store

logger = logging.getLogger(__name__)

QueueDepths = dict[tuple[str, str], int]  # (target, "ready" | "retrying" | "consumers") -> n


@dataclass(frozen=True)
class MirrorView:
    mirror: str
    subscriptions: int
    state: str
    consecutive_failures: int
    last_status: int | None
    last_error_class: str | None
    last_failure_at: float | None
    last_success_at: float | None
    backlog_oldest: float  # seconds (0: nothing waits)


@dataclass(frozen=True)
class TopicView:
    topic: str  # shown form: no userinfo, no query string
    subscriptions: int
    last_fetch_at: float | None
    pending_pings: int


@dataclass(frozen=True)
class SourceView:
    """A source index the hub watches (the PyPI bridge): how far it has read, how far behind."""

    source: str
    serial: int | None  # the newest journal serial published (None: not polled yet)
    lag_seconds: float  # 0 when the last poll was caught up; else since it last was
    caught_up_at: float | None
    failing_since: float | None
    last_error: str | None


@dataclass(frozen=True)
class Snapshot:
    taken_at: float
    subscriptions: dict[str, int]
    topics: int
    backlog_oldest: float
    fetch_lag: float
    parked: int
    queues: dict[tuple[str, str], int]
    broker_ok: bool
    mirrors: list[MirrorView] = field(default_factory=list)
    failures: list[MirrorView] = field(default_factory=list)
    topic_rows: list[TopicView] = field(default_factory=list)
    sources: list[SourceView] = field(default_factory=list)

    def mirrors_by_state(self) -> dict[str, int]:
        counts = {"healthy": 0, "failing": 0, "paused": 0}
        for m in self.mirrors:
            counts[m.state] = counts.get(m.state, 0) + 1
        return counts

    def as_json(self) -> dict[str, Any]:
        """The ``/status.json`` document."""
        return {
            "taken_at": self.taken_at,
            "subscriptions": self.subscriptions,
            "topics": self.topics,
            "backlog_oldest_seconds": self.backlog_oldest,
            "fetch_lag_seconds": self.fetch_lag,
            "parked": self.parked,
            "broker_ok": self.broker_ok,
            "queues": [{"target": t, "state": s, "messages": n}
                       for (t, s), n in sorted(self.queues.items())],
            "mirrors_by_state": self.mirrors_by_state(),
            "mirrors": [dataclasses.asdict(m) for m in self.mirrors],
            "recent_failures": [dataclasses.asdict(m) for m in self.failures],
            "topic_list": [dataclasses.asdict(t) for t in self.topic_rows],
            "sources": [dataclasses.asdict(v) for v in self.sources],
        }


def shown_url(url: str) -> str:
    """A topic URL as pages, logs and metrics may show it: no userinfo (the fetcher sends it
    as Basic credentials), no query string (it may carry a token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "<unparsable url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def error_class(status: int | None, error: str | None) -> str:
    """A bounded error class for a failed delivery: ``http_<code>`` for 4xx/5xx answers (429
    and 503 by themselves, others by hundred), else what the transport said."""
    if status is not None:
        if status in (408, 410, 429, 503):
            return f"http_{status}"
        return f"http_{status // 100}xx"
    text = (error or "").lower()
    for needle, name in (("timeout", "timeout"), ("timed out", "timeout"), ("refused", "refused"),
                         ("ssl", "tls"), ("tls", "tls"), ("certificate", "tls"),
                         ("resolve", "dns"), ("name or service", "dns"), ("dns", "dns"),
                         ("reset", "reset"), ("connect", "connect"), ("private", "forbidden"),
                         ("forbidden", "forbidden"), ("too large", "too_large")):
        if needle in text:
            return name
    return "other"


def take_snapshot(
    storage: Store,
    now: float,
    *,
    queue_depths: Callable[[], QueueDepths] | None = None,
    mirror_limit: int = 50,
    policy: BreakerPolicy = DEFAULT_POLICY,
    sources: tuple[str, ...] = (),
) -> Snapshot:
    """Read everything once. ``mirror_limit`` bounds the mirrors shown and labelled."""
    backlog = storage.backlog_oldest(now)
    health = storage.mirrors_health(now, mirror_limit)
    views = [_mirror_view(h, now, backlog, policy) for h in health]
    failures = [_mirror_view(h, now, backlog, policy) for h in storage.recent_failures(now, 20)]
    topics = [TopicView(shown_url(t.url), t.subscriptions, t.fetched_at, t.pending_pings)
              for t in storage.topics_status(now)]
    pending = storage.fetch_pending_since()
    queues: QueueDepths = {}
    broker_ok = True
    if queue_depths is not None:
        try:
            queues = queue_depths()
        except Exception as exc:  # noqa: BLE001 - the page still shows what storage knows
            logger.warning("queue depths unavailable: %s", exc)
            broker_ok = False
    return Snapshot(
        taken_at=now,
        subscriptions=storage.count_subscriptions(now),
        topics=storage.count_active_topics(now),
        backlog_oldest=max((now - t for t in backlog.values()), default=0.0),
        fetch_lag=0.0 if pending is None else max(0.0, now - pending),
        parked=queues.get((topology.PARKED, "ready"), 0),
        queues=queues,
        broker_ok=broker_ok,
        mirrors=views,
        failures=failures,
        topic_rows=topics,
        sources=[_source_view(storage, name, now) for name in sources],
    )


def watched_sources(settings: Settings) -> tuple[str, ...]:
    """The source indexes this hub's poller watches (the PyPI bridge's, when it is on)."""
    return (source_of(settings.pypi_url),) if settings.pypi_enabled else ()


def _source_view(storage: Store, name: str, now: float) -> SourceView:
    state = storage.source_state(name)
    if state is None:
        return SourceView(name, None, 0.0, None, None, None)
    behind = state.failing_since is not None and state.caught_up_at is not None
    return SourceView(
        source=name,
        serial=state.last_serial,
        lag_seconds=max(0.0, now - state.caught_up_at) if behind and state.caught_up_at else 0.0,
        caught_up_at=state.caught_up_at,
        failing_since=state.failing_since,
        last_error=state.last_error,
    )


def _mirror_view(h: Any, now: float, backlog: dict[str, float],
                 policy: BreakerPolicy) -> MirrorView:
    oldest = backlog.get(h.mirror)
    return MirrorView(
        mirror=h.mirror,
        subscriptions=h.subscriptions,
        state=mirror_state(h.consecutive_failures, h.last_failure_at, now, policy),
        consecutive_failures=h.consecutive_failures,
        last_status=h.last_status,
        last_error_class=h.last_error_class,
        last_failure_at=h.last_failure_at,
        last_success_at=h.last_success_at,
        backlog_oldest=0.0 if oldest is None else max(0.0, now - oldest),
    )


def read_queue_depths(messaging: Any) -> QueueDepths:
    """Message and consumer counts of every hub queue, by passive ``queue_declare`` (never
    creates a queue). Delay queues not declared yet count as empty."""
    namespace = messaging.namespace
    depths: QueueDepths = {}
    with messaging.connection() as conn:
        channel = conn.channel()

        def declare(name: str) -> tuple[int, int] | None:
            nonlocal channel
            try:
                _, count, consumers = channel.queue_declare(name, passive=True)
                return int(count), int(consumers)
            except conn.channel_errors:
                channel = conn.channel()  # the broker closed it on NOT_FOUND
                return None

        for target in topology.TARGETS:
            found = declare(topology.queue_name(namespace, target))
            ready, consumers = found or (0, 0)
            depths[(target, "ready")] = ready
            depths[(target, "consumers")] = consumers
            if target == topology.PARKED or messaging.is_memory:
                continue
            retrying = 0
            for rung in topology.DELAY_LADDER_MS:
                delayed = declare(topology.delay_queue_name(namespace, target, rung))
                retrying += delayed[0] if delayed else 0
            depths[(target, "retrying")] = retrying
    return depths
