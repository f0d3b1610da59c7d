"""Serving the Flask front: Granian for ``broker-hub web``, a threaded server for ``run``."""

from __future__ import annotations

import threading

from werkzeug.serving import make_server

from broker_hub.config import Settings
from broker_hub.services import Services


def serve_granian(settings: Settings) -> None:
    """Run the web front under Granian: a production server whose HTTP handling is native
    code (Rust), with ``HUB_WEB_WORKERS`` processes of ``HUB_WEB_THREADS`` Flask threads each.

    Granian speaks RSGI to :mod:`web.rsgi`, which reads each request body on the event loop
    (within ``HUB_WEB_BODY_TIMEOUT``) before it takes a thread: slow bodies cannot starve the
    threads. HTTP/1.1 only: with h2c, one connection could carry hundreds of slow streams.
    Each worker builds the app with ``web.rsgi.create_front()``, reading the ``HUB_*``
    environment.
    """
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces

    Granian(
        "web.rsgi:create_front",
        factory=True,
        interface=Interfaces.RSGI,
        http=HTTPModes.http1,
        address=settings.host,
        port=settings.port,
        workers=settings.web_workers,
        backlog=2048,
        log_access=False,  # a bodiless POST may carry hub.secret in its query string
        respawn_failed_workers=True,
    ).serve()


class EmbeddedWebServer:
    """The Flask front on a thread of the embedded process."""

    def __init__(self, services: Services):
        from web import create_app

        app = create_app(services=services)
        settings = services.settings
        self.server = make_server(settings.host, settings.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, name="web", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
