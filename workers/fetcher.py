"""The fetcher: on a ping, fetch the topic, find what is new, store it once and fan out batches."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
import urllib3
from kombu.message import Message as KombuMessage

from broker_hub import feeds, netguard, topology
from broker_hub.bus import Messaging
from broker_hub.config import Settings
from broker_hub.errors import PermanentError, TransientError, Unavailable
from broker_hub.messages import DeliverBatch, FetchTopic, Message, Parked, as_record, to_body
from broker_hub.metrics import Metrics
from broker_hub.ratelimit import Pacer, host_key
from broker_hub.retry import backoff_delay
from broker_hub.storage import Storage, TopicState
from broker_hub.urls import host_label
from workers.consumer import park

logger = logging.getLogger(__name__)

STALE_QUEUED_SECONDS = 120.0  # a queued fetch not started by then is queued again
BUSY_RECHECK_SECONDS = 0.25  # a fetch of a topic another fetcher is fetching waits this long


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None


class Fetcher:
    """Handles FetchTopic messages."""

    def __init__(
        self,
        *,
        settings: Settings,
        storage: Storage,
        messaging: Messaging,
        metrics: Metrics,
        http: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.storage = storage
        self.messaging = messaging
        self.metrics = metrics
        self.http = http or netguard.guarded_session(allow_private=settings.allow_private_addresses)
        self.http.max_redirects = settings.fetch_max_redirects
        self.pacer = Pacer(settings.fetch_rate_per_host)
        # a fetch lasts at most: connect and head (http_timeout), body (3 x http_timeout)
        self.fetch_lease = settings.http_timeout * 4 + 5
        self.clock = clock

    def on_message(self, message: Message, raw: KombuMessage) -> None:
        """Consumer entry point: handle, retry or park, then ack."""
        if not isinstance(message, FetchTopic):
            self._park(message, raw, "the fetch queue got a message of another type")
            return
        try:
            self.handle(message, redelivered=bool(raw.delivery_info.get("redelivered")))
        except TransientError as exc:
            self._retry(message, str(exc))
        except Unavailable:
            raw.reject(requeue=True)  # broker or database gone: let another try
            return
        raw.ack()

    def handle(self, msg: FetchTopic, *, redelivered: bool = False) -> None:
        if self._covered(msg, self.storage.topic_state(msg.topic)):
            return
        wait = self.pacer.delay(host_key(msg.topic), to_body(msg))
        if wait > 0:  # HUB_FETCH_RATE_PER_HOST: come back later, never dropped
            self.messaging.bus().publish_delayed(msg, topology.FETCH, wait)
            self.metrics.fetches.labels("deferred").inc()
            return
        # One fetch of a topic at a time: two fetchers diffing the same change against the
        # same state would both notify it. A redelivered message takes the lease over: the
        # fetcher that held it most likely died (at worst, a duplicate notification).
        lease = self.storage.claim_fetch(
            msg.topic, self.clock(), self.fetch_lease, force=redelivered
        )
        if lease.busy:
            self.messaging.bus().publish_delayed(msg, topology.FETCH, BUSY_RECHECK_SECONDS)
            self.metrics.fetches.labels("deferred").inc()
            return
        try:
            # read under the lease: the state the last fetch left, which may cover this ping
            state = self.storage.topic_state(msg.topic)
            if not self._covered(msg, state):
                self._fetch(msg, lease.seq or msg.seq, state)
        finally:
            if lease.until:
                self.storage.release_fetch(msg.topic, lease.until)

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
        save = dict(
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
            diff = feeds.diff_feed(fetched.body, fetched.content_type, previous_entries)
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
        notification_id = self.storage.add_notification(
            msg.topic, fetched.content_type, body, msg.pinged_at, now
        )
        bus = self.messaging.bus()
        ranges = self.storage.id_ranges(msg.topic, now, self.settings.delivery_batch_size)
        for first_id, last_id in ranges:
            bus.publish(
                DeliverBatch(notification_id, msg.topic, first_id, last_id, msg.pinged_at),
                topology.DELIVER,
            )
        # Only now, with every batch confirmed by the broker, is the new state recorded.
        self.storage.save_fetch(msg.topic, entries=entries, **save)
        self.metrics.fetches.labels("changed").inc()
        logger.debug(
            "notification %d: %d bytes, every batch queued %.1f ms after the ping",
            notification_id,
            len(body),
            (self.clock() - msg.pinged_at) * 1000,
        )

    def _retry(self, msg: FetchTopic, error: str) -> None:
        self.metrics.fetches.labels("failed").inc()
        if msg.attempt >= self.settings.delivery_max_attempts:
            self.messaging.bus().publish(
                Parked(
                    reason=f"fetch failed: {error}",
                    original=as_record(msg),
                    parked_at=self.clock(),
                    topic=msg.topic,
                    attempts=msg.attempt,
                ),
                topology.PARKED,
            )
            self.metrics.parked.labels("fetch").inc()
            return
        delay = backoff_delay(msg.attempt, self.settings.delivery_backoff_base)
        logger.info(
            "fetch of %s failed (%s); retry %d in %.1fs",
            host_label(msg.topic),
            error,
            msg.attempt + 1,
            delay,
        )
        self.messaging.bus().publish_delayed(
            dataclasses.replace(msg, attempt=msg.attempt + 1), topology.FETCH, delay
        )

    def _park(self, message: Message, raw: KombuMessage, reason: str) -> None:
        park(
            self.messaging,
            raw,
            Parked(reason=reason, original=as_record(message), parked_at=self.clock()),
        )

    def janitor(self) -> None:
        """Purge expired subscriptions and notifications past retention; queue again the
        fetches whose message a dying web process never published."""
        now = self.clock()
        for topic, seq, queued_at in self.storage.stale_queued(now - STALE_QUEUED_SECONDS):
            logger.warning("re-queueing a fetch of %s left unqueued", host_label(topic))
            self.messaging.bus().publish(FetchTopic(topic, seq, queued_at), topology.FETCH)
            self.storage.touch_queued(topic, now)
        purged = self.storage.purge_expired(now)
        old = self.storage.delete_notifications_before(now - self.settings.notification_retention)
        if purged or old:
            logger.info("purged %d expired subscriptions, %d old notifications", purged, old)
