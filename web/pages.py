"""Health, metrics and the status page (HTML and JSON). Secrets, userinfo, callback URLs and
response bodies are never shown: the status views come from :mod:`broker_hub.opsview`."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from broker_hub import metrics as metrics_module
from broker_hub.breaker import BreakerPolicy
from broker_hub.metrics_multiprocess import clean_dead_processes
from broker_hub.opsview import Snapshot, read_queue_depths, take_snapshot, watched_sources
from web import status_page
from web.state import EXTENSION, WebState, web_state

blueprint = Blueprint("pages", __name__)

SNAPSHOT_TTL = 5.0  # seconds a snapshot is reused: scrapes and page loads read the DB that often
_CACHE = "broker_hub_status"


@blueprint.record_once
def _count_web_worker(setup: Any) -> None:
    state = setup.app.extensions.get(EXTENSION)
    if isinstance(state, WebState):
        state.services.metrics.web_workers.set(1)


@blueprint.route("/healthz")
def healthz() -> Response:
    storage = web_state().services.storage
    try:
        storage.check()
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return Response("database unavailable\n", status=503, mimetype="text/plain")
    return Response("ok\n", mimetype="text/plain")


@blueprint.route("/metrics")
def metrics() -> Response:
    services = web_state().services
    counts = services.storage.count_subscriptions(time.time())
    for state, value in counts.items():
        services.metrics.subscriptions.labels(state).set(value)
    # several web processes: PROMETHEUS_MULTIPROC_DIR (set by `broker-hub web`) sums their values
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        clean_dead_processes(directory)  # workers Granian restarted
    collector = metrics_module.SnapshotCollector(_snapshot)
    body = services.metrics.render(multiprocess_dir=directory, extra=[collector])
    return Response(body, mimetype="text/plain; version=0.0.4")


@blueprint.route("/status")
def status() -> Response:
    return Response(status_page.render(_snapshot(), time.time()), mimetype="text/html")


@blueprint.route("/status.json")
def status_json() -> Response:
    return jsonify(_snapshot().as_json())


def _snapshot() -> Snapshot:
    """The latest snapshot of this process, taken again when older than SNAPSHOT_TTL."""
    cache: dict[str, Any] = current_app.extensions.setdefault(_CACHE, {"lock": threading.Lock()})
    services = web_state().services
    with cache["lock"]:
        snap: Snapshot | None = cache.get("snapshot")
        now = time.time()
        if snap is None or now - snap.taken_at > SNAPSHOT_TTL:
            messaging = services.messaging
            snap = cache["snapshot"] = take_snapshot(
                services.storage,
                now,
                queue_depths=lambda: read_queue_depths(messaging),
                mirror_limit=services.settings.mirror_labels_max,
                policy=BreakerPolicy.for_backoff(services.settings.delivery_backoff_base),
                sources=watched_sources(services.settings),
            )
        return snap
