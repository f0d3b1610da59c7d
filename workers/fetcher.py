"""The fetcher role: on a ping, fetch the topic, find what is new, store it once, fan it out.

Fetches run concurrently on the process's event loop (``HttpEngine.fetch``: conditional GET,
bounded redirects each checked against the SSRF policy, a body cap, one total deadline, at
most ``HUB_FETCH_PER_HOST`` per host and ``HUB_FETCH_CONCURRENCY`` in all), so a slow topic
server holds one slot of its own host, never the only fetch slot. The consumer thread decides
what to fetch (coalescing, pacing, the fetch lease) and records the outcomes in ``tick``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker_hub import topology
from broker_hub.errors import PermanentError, TransientError
from broker_hub.messages import FetchTopic, to_body
from broker_hub.ratelimit import Pacer, host_key
from broker_hub.services import Services
from broker_hub.storage import FetchClaim, TopicState
from broker_hub.urls import host_label
from workers.fetch_record import Fetched, FetchPlan, covered_only, plan_fetch, record_fetches
from workers.http_engine import FetchError, HttpEngine
from workers.inbound import Inbound
from workers.policy import settle_failure
from workers.role import Consume, RetryPolicy, Role, RoleSpec

logger = logging.getLogger(__name__)

BUSY_RECHECK_SECONDS = 0.25  # a fetch of a topic another fetcher is fetching waits this long


@dataclass(frozen=True)
class _Started:
    """A fetch under way: the topic's lease and the state it started from."""

    msg: FetchTopic
    lease: FetchClaim
    state: TopicState | None
    started: float


class Fetcher(Role):
    """Consumes the fetch queue."""

    name = "fetcher"

    def __init__(
        self, services: Services, *, engine: HttpEngine, clock: Callable[[], float] | None = None
    ):
        self.services = services
        self.settings = settings = services.settings
        self.storage = services.storage
        self.metrics = services.metrics
        self.engine = engine
        self.pacer = Pacer(settings.fetch_rate_per_host)
        # the lease outlives the fetch's one deadline (HUB_HTTP_TIMEOUT) with a margin
        self.fetch_lease = settings.http_timeout * 4 + 5
        self.clock = clock or services.clock
        self.retry = RetryPolicy(settings.fetch_max_attempts, settings.fetch_backoff_base)
        self.pending = 0
        self._done: queue.SimpleQueue[tuple[_Started, Inbound, concurrent.futures.Future]] = (
            queue.SimpleQueue()
        )

    def consumes(self) -> list[Consume]:
        return [
            Consume(
                topology.FETCH, self.settings.fetch_prefetch, self.on_fetch, (FetchTopic,),
                self.retry,
            )
        ]  # fmt: skip

    def in_flight(self) -> int:
        return self.pending

    # -- the consumer thread ------------------------------------------------------------------

    def on_fetch(self, msg: FetchTopic, inbound: Inbound) -> None:
        """Start the fetch on the event loop (or defer, or ack a covered ping)."""
        started = self._begin(msg, redelivered=inbound.redelivered)
        if started is None:
            inbound.ack()
        elif isinstance(started, float):
            inbound.later(msg, started)
        else:
            self.pending += 1
            future = self.engine.submit(self._get(msg.topic, started.state))
            future.add_done_callback(lambda f: self._done.put((started, inbound, f)))

    def tick(self) -> None:
        """Record the fetches that finished since the last tick, together (three transactions
        and one broker confirm for all of them), then ack each; a failed one is settled by the
        one failure policy."""
        finished: list[tuple[_Started, Inbound, concurrent.futures.Future]] = []
        while True:
            try:
                finished.append(self._done.get_nowait())
            except queue.Empty:
                break
        if not finished:
            return
        plans, done = [], []
        for started, inbound, future in finished:
            try:
                plans.append(self._plan(started, future))
                done.append((started, inbound))
            except Exception as exc:  # noqa: BLE001 - the one policy settles it
                self._release(started.msg.topic, started.lease)
                self._failed(started, inbound, exc)
        try:
            record_fetches(self.services, plans)
        except Exception as exc:  # noqa: BLE001 - broker or database gone: all go back
            for started, inbound in done:
                self._failed(started, inbound, exc)
            return
        finally:
            self.pending -= len(finished)
        for plan, (_, inbound) in zip(plans, done, strict=True):
            self.metrics.fetches.labels(plan.outcome).inc()
            inbound.ack()

    def _failed(self, started: _Started, inbound: Inbound, exc: Exception) -> None:
        if isinstance(exc, TransientError):
            self.metrics.fetches.labels("failed").inc()
        settle_failure(
            inbound, started.msg, exc, role=self.name, retry=self.retry, metrics=self.metrics
        )

    def handle(self, msg: FetchTopic, *, redelivered: bool = False) -> float | None:
        """The whole fetch, waiting for it (for direct calls: tests, tools). None when done;
        else the seconds after which to come back. Raises Transient/PermanentError."""
        started = self._begin(msg, redelivered=redelivered)
        if started is None or isinstance(started, float):
            return started
        try:
            plan = self._plan(started, self.engine.submit(self._get(msg.topic, started.state)))
        except BaseException:
            self._release(msg.topic, started.lease)
            raise
        record_fetches(self.services, [plan])
        self.metrics.fetches.labels(plan.outcome).inc()
        return None

    def _begin(self, msg: FetchTopic, *, redelivered: bool) -> _Started | float | None:
        if self._covered(msg, self.storage.topic_state(msg.topic)):
            return None
        if not self.storage.has_subscribers(msg.topic, self.clock()):
            # nobody subscribes (any more): fetch and store nothing; a later ping queues anew
            self.storage.unqueue(msg.topic, msg.seq)
            self.metrics.fetches.labels("unsubscribed").inc()
            return None
        wait = self.pacer.delay(host_key(msg.topic), to_body(msg))
        if wait > 0:  # HUB_FETCH_RATE_PER_HOST: come back later, never dropped
            self.metrics.fetches.labels("deferred").inc()
            return wait
        # One fetch of a topic at a time: two fetchers diffing the same change against the
        # same state would both notify it. A redelivered message takes the lease over: the
        # fetcher that held it most likely died (at worst, a duplicate notification).
        lease = self.storage.claim_fetch(
            msg.topic, self.clock(), self.fetch_lease, force=redelivered
        )
        if lease.busy:
            self.metrics.fetches.labels("deferred").inc()
            return BUSY_RECHECK_SECONDS
        # read under the lease: the state the last fetch left, which may cover this ping
        state = self.storage.topic_state(msg.topic)
        if self._covered(msg, state):
            self._release(msg.topic, lease)
            return None
        return _Started(msg, lease, state, time.perf_counter())

    def _plan(self, started: _Started, future: concurrent.futures.Future) -> FetchPlan:
        """The finished fetch's plan; a PermanentError is a refusal (pings covered, content
        state kept); a TransientError goes to the caller (retried)."""
        msg, claim = started.msg, started.lease.seq or started.msg.seq
        try:
            fetched = future.result()
        except PermanentError as exc:
            logger.warning("fetch of %s refused: %s", host_label(msg.topic), exc)
            return covered_only(msg.topic, claim, started.lease.until, "refused")
        finally:
            self.metrics.fetch_duration.observe(time.perf_counter() - started.started)
        return plan_fetch(
            msg, claim, started.lease.until, started.state, fetched,
            max_entries=self.settings.feed_max_entries,
        )  # fmt: skip

    def _release(self, topic: str, lease: FetchClaim) -> None:
        if lease.until:
            self.storage.release_fetch(topic, lease.until)

    def _covered(self, msg: FetchTopic, state: TopicState | None) -> bool:
        """True when a fetch that started after this ping has been recorded already."""
        if state is not None and state.fetched_seq >= msg.seq:
            self.metrics.fetches.labels("coalesced").inc()
            return True
        return False

    # -- the event loop -----------------------------------------------------------------------

    async def _get(self, topic: str, state: TopicState | None) -> Fetched:
        """Conditional GET; a non-200 answer becomes Transient (5xx, 429) or PermanentError."""
        headers = {}
        if state is not None and state.etag:
            headers["If-None-Match"] = state.etag
        if state is not None and state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        try:
            r = await self.engine.fetch(topic, headers=headers)
        except FetchError as exc:
            raise (PermanentError if exc.permanent else TransientError)(exc.reason) from None
        if r.status == 304:
            return Fetched(304, b"", "", None, None)
        if r.status != 200:
            error = f"HTTP {r.status}"
            raise (TransientError if r.status >= 500 or r.status == 429 else PermanentError)(error)
        return Fetched(
            200,
            r.body,
            r.headers.get("content-type", "application/octet-stream"),
            r.headers.get("etag"),
            r.headers.get("last-modified"),
        )


SPEC = RoleSpec(
    name="fetcher",
    help="the fetcher: fetch pinged topics, diff, fan out (runs the janitor too)",
    build=lambda context: Fetcher(context.services, engine=context.engine()),
    metrics_port=9101,
    with_roles=("janitor",),
    tick_interval=0.005,
    busy_tick_interval=0.001,  # 19 -> 15 ms from ping to first delivery (1,000 subscribers)
)
