"""The fetcher role: on a ping, fetch the topic, find what is new, store it once, fan it out."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from broker_hub import feeds, netguard, topology
from broker_hub.errors import PermanentError, TransientError
from broker_hub.messages import DeliverBatch, FetchTopic, to_body
from broker_hub.ratelimit import Pacer, host_key
from broker_hub.services import Services
from broker_hub.storage import Notification, TopicState
from broker_hub.urls import host_label
from workers.inbound import Inbound
from workers.role import Consume, RetryPolicy, Role, RoleSpec

logger = logging.getLogger(__name__)

BUSY_RECHECK_SECONDS = 0.25  # a fetch of a topic another fetcher is fetching waits this long


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None


class Fetcher(Role):
    """Consumes the fetch queue."""

    name = "fetcher"

    def __init__(
        self,
        services: Services,
        *,
        http: requests.Session | None = None,
        clock: Callable[[], float] | None = None,
    ):
        self.settings = settings = services.settings
        self.storage = services.storage
        self.publisher = services.publisher
        self.metrics = services.metrics
        self.http = http or netguard.guarded_session(allow_private=settings.allow_private_addresses)
        self.http.max_redirects = settings.fetch_max_redirects
        self.pacer = Pacer(settings.fetch_rate_per_host)
        # a fetch lasts at most: connect and head (http_timeout), body (3 x http_timeout)
        self.fetch_lease = settings.http_timeout * 4 + 5
        self.clock = clock or services.clock

    def consumes(self) -> list[Consume]:
        retry = RetryPolicy(self.settings.fetch_max_attempts, self.settings.fetch_backoff_base)
        return [
            Consume(topology.FETCH, self.settings.prefetch, self.on_fetch, (FetchTopic,), retry)
        ]

    def on_fetch(self, msg: FetchTopic, inbound: Inbound) -> None:
        """Fetch (or defer) and ack; a TransientError goes back to the worker, which retries."""
        later = self.handle(msg, redelivered=inbound.redelivered)
        if later is None:
            inbound.ack()
        else:
            inbound.later(msg, later)

    def handle(self, msg: FetchTopic, *, redelivered: bool = False) -> float | None:
        """Fetch unless covered. None when done; else the seconds after which to come back."""
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
        try:
            # read under the lease: the state the last fetch left, which may cover this ping
            state = self.storage.topic_state(msg.topic)
            if not self._covered(msg, state):
                self._fetch(msg, lease.seq or msg.seq, state)
        except TransientError:
            self.metrics.fetches.labels("failed").inc()
            raise
        finally:
            if lease.until:
                self.storage.release_fetch(msg.topic, lease.until)
        return None

    def _covered(self, msg: FetchTopic, state: TopicState | None) -> bool:
        """True when a fetch that started after this ping has been recorded already."""
        if state is not None and state.fetched_seq >= msg.seq:
            self.metrics.fetches.labels("coalesced").inc()
            return True
        return False

    def _fetch(self, msg: FetchTopic, claim: int, state: TopicState | None) -> None:
        """Fetch, diff against ``state``, record the outcome (under the fetch lease)."""
        started = time.perf_counter()
        try:
            fetched = self._get(msg.topic, state)
        except PermanentError as exc:
            logger.warning("fetch of %s refused: %s", host_label(msg.topic), exc)
            self.metrics.fetches.labels("refused").inc()
            self.storage.mark_fetched(msg.topic, claim)
            return
        finally:
            self.metrics.fetch_duration.observe(time.perf_counter() - started)
        if fetched.status == 304:
            self.metrics.fetches.labels("not_modified").inc()
            self.storage.mark_fetched(msg.topic, claim)
            return
        self._distribute(msg, claim, state, fetched)

    def _get(self, topic: str, state: TopicState | None) -> Fetched:
        headers = {"User-Agent": "broker-hub (WebSub hub)"}
        if state is not None and state.etag:
            headers["If-None-Match"] = state.etag
        if state is not None and state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        try:
            with self.http.get(
                topic, headers=headers, stream=True, timeout=self.settings.http_timeout
            ) as response:
                if response.status_code == 304:
                    return Fetched(304, b"", "", None, None)
                if response.status_code != 200:
                    error = f"HTTP {response.status_code}"
                    if response.status_code >= 500 or response.status_code == 429:
                        raise TransientError(error)
                    raise PermanentError(error)
                body = self._read_capped(response)
                return Fetched(
                    200,
                    body,
                    response.headers.get("Content-Type", "application/octet-stream"),
                    response.headers.get("ETag"),
                    response.headers.get("Last-Modified"),
                )
        except netguard.ForbiddenAddress as exc:
            raise PermanentError(f"forbidden address: {exc}") from None
        except requests.TooManyRedirects:
            raise PermanentError("too many redirects") from None
        except requests.RequestException as exc:
            if isinstance(exc.__context__, netguard.ForbiddenAddress) or "ForbiddenAddress" in str(
                exc
            ):
                raise PermanentError("forbidden address") from None
            raise TransientError(exc.__class__.__name__) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # from raw.read1 in _read_capped
            raise TransientError(exc.__class__.__name__) from None

    def _read_capped(self, response: requests.Response) -> bytes:
        cap = self.settings.fetch_max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise PermanentError(f"body larger than {cap} bytes")
        chunks, size = [], 0
        deadline = time.monotonic() + self.settings.http_timeout * 3
        # read1 returns what has arrived: a server dripping bytes cannot hold the fetch past
        # the deadline (iter_content blocks until a whole chunk is in).
        while chunk := response.raw.read1(65536, decode_content=True):
            size += len(chunk)
            if size > cap:
                raise PermanentError(f"body larger than {cap} bytes")
            if time.monotonic() > deadline:
                raise TransientError("body took too long")
            chunks.append(chunk)
        return b"".join(chunks)

    def _distribute(
        self, msg: FetchTopic, claim: int, state: TopicState | None, fetched: Fetched
    ) -> None:
        now = self.clock()
        digest = hashlib.sha256(fetched.body).hexdigest()
        save: dict[str, Any] = dict(
            fetched_seq=claim,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            content_hash=digest,
            content_type=fetched.content_type,
            now=now,
        )
        previous_entries = json.loads(state.entries) if state and state.entries else None
        if state is not None and state.content_hash == digest:
            self.metrics.fetches.labels("unchanged").inc()
            self.storage.save_fetch(msg.topic, entries=state.entries, **save)
            return
        try:
            diff = feeds.diff_feed(
                fetched.body,
                fetched.content_type,
                previous_entries,
                max_entries=self.settings.feed_max_entries,
            )
        except feeds.HostileXML as exc:
            logger.warning("refusing hostile XML from %s: %s", host_label(msg.topic), exc)
            self.metrics.fetches.labels("refused").inc()
            self.storage.mark_fetched(msg.topic, claim)
            return
        entries = json.dumps(diff.entries) if diff is not None else None
        if diff is not None and not diff.changed:
            self.metrics.fetches.labels("unchanged").inc()
            self.storage.save_fetch(msg.topic, entries=entries, **save)
            return
        body = diff.body if diff is not None else fetched.body
        notification = self.storage.add_notification(
            msg.topic, fetched.content_type, body, msg.pinged_at, now
        )
        assert notification is not None  # no dedupe key: always stored
        fan_out(self.storage, self.publisher, notification, now, self.settings.delivery_batch_size)
        # Only now, with every batch confirmed by the broker, is the new state recorded.
        self.storage.save_fetch(msg.topic, entries=entries, **save)
        self.metrics.fetches.labels("changed").inc()
        logger.debug(
            "notification %d: %d bytes, every batch queued %.1f ms after the ping",
            notification.id,
            len(body),
            (self.clock() - msg.pinged_at) * 1000,
        )



def fan_out(
    storage: Any, publisher: Any, notification: Notification, now: float, batch_size: int
) -> int:
    """Queue a notification's delivery to every active subscription of its topic: one broker
    message per batch of ``batch_size`` subscriptions (never one per delivery), sent page by
    page so the first batch leaves before the last range is known. Returns the batches."""
    batches = 0
    for first_id, last_id in storage.id_ranges(notification.topic, now, batch_size):
        publisher.publish(
            DeliverBatch(
                notification.id, notification.topic, first_id, last_id, notification.pinged_at
            ),
            topology.DELIVER,
        )
        batches += 1
    return batches


SPEC = RoleSpec(
    name="fetcher",
    help="the fetcher: fetch pinged topics, diff, fan out (runs the janitor too)",
    build=lambda context: Fetcher(context.services),
    metrics_port=9101,
    with_roles=("janitor",),
)
