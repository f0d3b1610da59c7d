"""Building a process from the settings: services, the roles' workers, a metrics endpoint."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

from broker_hub.services import Services

logger = logging.getLogger(__name__)


def serve_metrics(services: Services, process: str, default_port: int) -> None:
    """Serve ``/metrics`` for a worker on HUB_METRICS_PORT (its default when 0; off when < 0)."""
    settings = services.settings
    port = settings.metrics_port or default_port
    if port < 0:
        return
    start_http_server(port, addr=settings.host, registry=services.metrics.registry)
    logger.info("%s metrics on http://%s:%d/metrics", process, settings.host, port)
