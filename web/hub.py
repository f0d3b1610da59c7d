"""The hub endpoint: one URL, form-encoded POSTs told apart by ``hub.mode``."""

from __future__ import annotations

import hmac
import logging
import time

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from broker_hub import topology
from broker_hub.config import Settings
from broker_hub.errors import BadRequest, Unavailable
from broker_hub.messages import FetchTopic, VerifyIntent
from broker_hub.protocol import PublishRequest, parse_form, parse_hub_request
from broker_hub.ratelimit import RateLimiter, client_key, retry_after_header
from web.state import web_state

logger = logging.getLogger(__name__)
blueprint = Blueprint("hub", __name__)

INFO = """broker-hub: a WebSub hub.

POST form-encoded requests to this URL:
  hub.mode=subscribe|unsubscribe  hub.topic=<url>  hub.callback=<url>
                                  [hub.secret]  [hub.lease_seconds]
  hub.mode=publish                hub.url=<topic url> (repeatable; hub.topic is accepted too)
                                  (with "Authorization: Bearer <token>" when the hub sets one)
See https://www.w3.org/TR/websub/
"""


def _text(body: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body if body.endswith("\n") else body + "\n",
        status=status,
        mimetype="text/plain",
        headers=headers,
    )


@blueprint.route("/", methods=["GET", "HEAD"])
def info() -> Response:
    return _text(INFO, 200)


@blueprint.route("/", methods=["POST"])
def hub_endpoint() -> Response:
    state = web_state()
    settings, metrics = state.services.settings, state.services.metrics
    mode = "unknown"
    try:
        _check_rate(state.rate_limiter, settings)
        body = _read_body(settings.max_request_bytes)
        pairs = parse_form(request.content_type, body, request.query_string)
        if ("hub.mode", "publish") in pairs:
            _check_publish_token(settings.publish_token, pairs)
        parsed = parse_hub_request(pairs, settings)
        if isinstance(parsed, PublishRequest):
            mode = "publish"
            _accept_publish(parsed.topics)
            response = Response(status=204)
            del response.headers["Content-Type"]  # no content, no type
        else:
            mode = parsed.mode
            state.services.publisher.publish(
                VerifyIntent(
                    mode=parsed.mode,
                    topic=parsed.topic,
                    callback=parsed.callback,
                    requested_at=time.time(),
                    secret=parsed.secret,
                    lease_seconds=parsed.lease_seconds,
                ),
                topology.VERIFY,
            )
            response = _text("Accepted: the hub will verify the intent with the callback.", 202)
    except BadRequest as exc:
        response = _text(f"{exc.status} {exc}", exc.status, exc.headers)
    except Unavailable as exc:
        response = _text(f"503 {exc}; retry later", 503, {"Retry-After": "5"})
    metrics.requests.labels(mode, str(response.status_code)).inc()
    return response


def _read_body(limit: int) -> bytes:
    """The whole request body, or 413 when it is longer than ``limit`` (HUB_MAX_REQUEST_BYTES).

    A chunked body has no Content-Length to check up front; werkzeug's stream stops at the
    app's MAX_CONTENT_LENGTH (``limit + 1``) without saying so, which would cut a form after
    the limit (a subscribe would lose its ``hub.secret``): whatever reaches ``limit + 1``
    bytes is refused, never cut.
    """
    too_large = BadRequest(f"the request body is longer than {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= limit:
            chunk = request.stream.read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except RequestEntityTooLarge:
        raise too_large from None
    if size > limit:
        raise too_large
    return b"".join(chunks)


def _check_rate(limiter: RateLimiter, settings: Settings) -> None:
    """429 when this client address is over HUB_RATE_LIMIT_PER_MINUTE (token holders exempt)."""
    if not limiter.enabled or _has_publish_token(settings.publish_token):
        return
    wait = limiter.acquire(client_key(request.remote_addr))
    if wait > 0:
        retry_after = retry_after_header(wait)
        raise BadRequest(
            f"too many hub requests from your address (at most "
            f"{settings.rate_limit_per_minute} a minute); retry after {retry_after} s",
            status=429,
            headers={"Retry-After": retry_after},
        )


def _has_publish_token(token: str, pairs: list[tuple[str, str]] | None = None) -> bool:
    """True when the request carries the publisher token (Authorization header or hub.token)."""
    if not token:
        return False
    given = request.headers.get("Authorization", "")
    scheme, _, credentials = given.partition(" ")
    given = credentials.strip() if scheme.lower() == "bearer" else ""
    if not given and pairs is not None:
        given = next((value for name, value in pairs if name == "hub.token"), "")
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def _check_publish_token(token: str, pairs: list[tuple[str, str]]) -> None:
    if token and not _has_publish_token(token, pairs):
        raise BadRequest(
            "publishing needs the publisher token (Authorization: Bearer <token>)",
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="broker-hub"'},
        )


def _accept_publish(topics: tuple[str, ...]) -> None:
    """Count the ping and queue a fetch for each topic, unless one is queued and not started
    yet: pings that arrive before the fetch ran are coalesced into it. A topic nobody
    subscribes is neither counted nor fetched (record_ping decides it in the same statement):
    anonymous pings cannot make the hub fetch and store any URL. Still 204, as WebSub says."""
    services = web_state().services
    storage, publisher, metrics = services.storage, services.publisher, services.metrics
    now = time.time()
    for topic in topics:
        try:
            seq, queue = storage.record_ping(topic, now)
        except Exception as exc:  # a database that does not answer: refuse, lose nothing
            logger.warning("could not record ping: %s", exc.__class__.__name__)
            raise Unavailable("storage unavailable") from exc
        if queue:
            try:
                publisher.publish(FetchTopic(topic=topic, seq=seq, pinged_at=now), topology.FETCH)
            except BaseException:  # not queued after all: the next ping must queue one
                storage.unqueue(topic, seq)
                raise
        metrics.pings.inc()
