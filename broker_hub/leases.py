"""Lease arithmetic."""

from __future__ import annotations

from broker_hub.config import Settings


def clamp_lease(requested: int | None, settings: Settings) -> int:
    """The lease the hub grants: the default when absent, else clamped to [min, max]."""
    if requested is None:
        return settings.lease_default
    return max(settings.lease_min, min(settings.lease_max, requested))
