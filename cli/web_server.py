"""Serving the Flask front: gunicorn for ``broker-hub web``, a threaded server for ``run``."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import make_server

from broker_hub.config import Settings
from cli.components import Core


def serve_gunicorn(settings: Settings) -> None:
    """Run the web front under gunicorn (gthread workers), the production WSGI server."""
    from gunicorn.app.base import BaseApplication

    class HubApplication(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": settings.bind,
                "workers": settings.web_workers,
                "worker_class": "gthread",
                "threads": settings.web_threads,
                "keepalive": 5,
                "graceful_timeout": 20,
                "accesslog": None,
                "control_socket_disable": True,
                "limit_request_line": settings.max_url_length * 3 + 100,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from web import create_app

            return create_app(settings)

    HubApplication().run()


class EmbeddedWebServer:
    """The Flask front on a thread of the embedded process."""

    def __init__(self, core: Core):
        from web import create_app

        app = create_app(
            core.settings, storage=core.storage, messaging=core.messaging, metrics=core.metrics
        )
        self.server = make_server(core.settings.host, core.settings.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, name="web", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
