"""What the web front's views are given: the hub's services and the process's rate limiter."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from broker_hub.ratelimit import RateLimiter
from broker_hub.services import Services

EXTENSION = "broker_hub"


@dataclass(frozen=True)
class WebState:
    services: Services
    rate_limiter: RateLimiter  # per process: each web worker process keeps its own buckets


def web_state() -> WebState:
    """The current app's state (set by :func:`web.app.create_app`)."""
    state: WebState = current_app.extensions[EXTENSION]
    return state
