"""The application factory."""

from __future__ import annotations

import logging
import os
import re

from flask import Flask, Response
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from broker_hub.config import Settings
from broker_hub.metrics import Metrics
from broker_hub.ratelimit import RateLimiter
from broker_hub.services import Services
from web import catchup, hub, pages, pypi_topics
from web.state import EXTENSION, WebState

logger = logging.getLogger(__name__)
_QUERY = re.compile(r"\?[^\s\"]*")


class RedactQueryStrings(logging.Filter):
    """Drop query strings from access-log lines: a bodiless POST may carry hub.secret there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(
                _QUERY.sub("?<redacted>", a) if isinstance(a, str) else a for a in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = _QUERY.sub("?<redacted>", record.msg)
        return True


def _redact_access_log() -> None:
    werkzeug_logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactQueryStrings) for f in werkzeug_logger.filters):
        werkzeug_logger.addFilter(RedactQueryStrings())


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Flask:
    """Build the web front. Without ``services``, open those the settings (by default the
    ``HUB_*`` environment) describe; the schema is made by the process that starts the web
    front (``broker-hub web``) or by the embedded mode."""
    if services is None:
        settings = settings or Settings.from_env(os.environ)
        services = Services.from_settings(
            settings, metrics=Metrics(process="web"), create_schema=False
        )
    settings = services.settings
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    if settings.trusted_proxies > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    _redact_access_log()
    app.extensions[EXTENSION] = WebState(services, RateLimiter(settings.rate_limit_per_minute))
    app.register_blueprint(hub.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(pypi_topics.blueprint)
    app.register_blueprint(catchup.blueprint)

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
