"""The agent's HTTP side: the callback (verification, pushes), ``/metrics`` and ``/status``."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker_hub.signing import verify_signature
from mirror.metrics import MirrorMetrics
from mirror.notifications import BadNotification, parse
from mirror.state import State
from mirror.status import status_line

logger = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024


def _text(body: str, status: int) -> Response:
    return Response(body + "\n", status=status, mimetype="text/plain")


def create_app(state: State, metrics: MirrorMetrics, *, wake: threading.Event | None = None,
               clock: Callable[[], float] = time.time) -> Flask:
    app = Flask("mirror")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    @app.get("/callback/<token>")
    def verify(token: str) -> Response:
        sub = state.by_token(token)
        mode = request.args.get("hub.mode", "")
        topic = request.args.get("hub.topic", "")
        if mode == "denied":
            logger.error("the hub denied the subscription to %s: %s", topic,
                         request.args.get("hub.reason", "(no reason)"))
            return _text("noted", 200)
        challenge = request.args.get("hub.challenge")
        if sub is None or sub.topic != topic or sub.wanted != mode or not challenge:
            logger.warning("verification refused: mode=%r topic=%r is not a request of ours",
                           mode, topic)
            return _text("not a subscription this mirror asked for", 404)
        lease = request.args.get("hub.lease_seconds", "")
        state.verified(topic, mode, int(lease) if lease.isdigit() else None, clock())
        logger.info("the hub verified %s %s (lease %s s)", mode, topic, lease or "none")
        return Response(challenge, status=200, mimetype="text/plain")

    @app.post("/callback/<token>")
    def push(token: str) -> Response:
        sub = state.by_token(token)
        if sub is None:  # 410 Gone: the hub ends a subscription we no longer have
            metrics.notifications.labels("unknown").inc()
            return _text("no such subscription", 410)
        body = request.get_data(cache=False)
        header = request.headers.get("X-Hub-Signature", "")
        if not header or not verify_signature(sub.secret, body, header):
            metrics.notifications.labels("forged").inc()
            logger.warning("push to %s from %s with a %s X-Hub-Signature: refused", sub.topic,
                           request.remote_addr, "bad" if header else "missing")
            return _text("X-Hub-Signature is missing or wrong", 403)
        try:
            parse(body)
        except BadNotification as exc:
            metrics.notifications.labels("invalid").inc()
            logger.warning("push to %s that is not a notification: %s", sub.topic, exc)
            return _text(f"not a notification: {exc}", 400)
        raw_sequence = request.headers.get("X-Hub-Sequence", "")
        sequence = int(raw_sequence) if raw_sequence.isdigit() else None
        delivery = request.headers.get("X-Hub-Delivery-Id") or None
        # A retry repeats the id and the body; a hub that lost its database reuses ids with
        # other bodies, which are new notifications.
        key = f"{delivery}:{hashlib.sha256(body).hexdigest()[:16]}" if delivery else None
        if not state.accept(key, sub.topic, sequence, body, clock()):
            metrics.notifications.labels("duplicate").inc()
            logger.info("delivery %s already received: dropped", delivery)
            return _text("duplicate delivery, already queued", 200)
        metrics.notifications.labels("accepted").inc()
        if wake is not None:
            wake.set()
        return _text("queued", 202)

    @app.get("/metrics")
    def metrics_page() -> Response:
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/status")
    def status() -> Response:
        return _text(status_line(state), 200)

    @app.get("/healthz")
    def healthz() -> Response:
        return _text("ok", 200)

    return app
