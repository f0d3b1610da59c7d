"""Shared by the orchestrator and the servers: secrets, URLs (no third-party imports)."""

from __future__ import annotations

import hashlib
import hmac


def callback_path(topic_id: str, index: int) -> str:
    return f"/cb/{topic_id}/{index}"


def secret_for(seed: str, path: str) -> str:
    """Each subscriber's secret, derived so the subscriber server needs no table."""
    return hmac.new(seed.encode(), path.encode(), hashlib.sha256).hexdigest()[:32]
