"""The application factory."""

from __future__ import annotations

import logging
import os

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from broker_hub.bus import Messaging
from broker_hub.config import Settings
from broker_hub.metrics import Metrics
from broker_hub.storage import Storage
from web import hub, pages

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    storage: Storage | None = None,
    messaging: Messaging | None = None,
    metrics: Metrics | None = None,
) -> Flask:
    """Build the web front. Collaborators default to those the settings describe."""
    settings = settings or Settings.from_env(os.environ)
    storage = storage or Storage.from_url(settings.database_url)
    messaging = messaging or Messaging(settings.broker_url, namespace=settings.namespace)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.extensions["broker_hub"] = {
        "settings": settings,
        "storage": storage,
        "messaging": messaging,
        "metrics": metrics or Metrics(),
    }
    app.register_blueprint(hub.blueprint)
    app.register_blueprint(pages.blueprint)

    @app.errorhandler(HTTPException)
    def plain_http_error(exc: HTTPException) -> Response:
        response = Response(
            f"{exc.code} {exc.name}: {exc.description}\n", status=exc.code, mimetype="text/plain"
        )
        if exc.code == 405:
            response.headers["Allow"] = "GET, POST"
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        logger.exception("unexpected error in the web front")
        return Response(
            "503 Service Unavailable: the hub could not process the request; retry later\n",
            status=503,
            mimetype="text/plain",
            headers={"Retry-After": "5"},
        )

    return app
