"""The Flask front: the hub endpoint, health, metrics and a status page."""

from web.app import create_app

__all__ = ["create_app"]
