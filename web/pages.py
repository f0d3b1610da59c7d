"""Health, metrics and a status page. Secrets and callback URLs are never shown."""

from __future__ import annotations

import html
import os
import time

from flask import Blueprint, Response

from web.state import web_state

blueprint = Blueprint("pages", __name__)


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
    body = services.metrics.render(multiprocess_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    return Response(body, mimetype="text/plain; version=0.0.4")


@blueprint.route("/status")
def status() -> Response:
    storage = web_state().services.storage
    counts = storage.count_subscriptions(time.time())
    rows = "".join(
        f"<tr><td>{html.escape(t.url)}</td><td>{t.subscriptions}</td>"
        f"<td>{_ago(t.fetched_at)}</td></tr>"
        for t in storage.topics_summary()
    )
    body = (
        "<!doctype html><title>broker-hub status</title><h1>broker-hub</h1>"
        f"<p>{counts['active']} active subscriptions, {counts['expired']} expired.</p>"
        "<table><tr><th>topic</th><th>subscriptions</th><th>last fetch</th></tr>"
        f"{rows}</table>"
    )
    return Response(body, mimetype="text/html")


def _ago(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return f"{max(0, int(time.time() - timestamp))} s ago"
