"""Unit tests for broker_hub.leases.clamp_lease."""

from __future__ import annotations

import pytest

from broker_hub.config import Settings
from broker_hub.leases import clamp_lease

SETTINGS = Settings(lease_min=100, lease_default=1000, lease_max=5000)


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        (None, 1000),
        (100, 100),
        (101, 101),
        (4999, 4999),
        (5000, 5000),
        (99, 100),
        (1, 100),
        (0, 100),
        (-50, 100),
        (5001, 5000),
        (10**12, 5000),
    ],
)
def test_clamp_lease(requested: int | None, granted: int) -> None:
    assert clamp_lease(requested, SETTINGS) == granted


def test_clamp_lease_uses_settings_defaults() -> None:
    s = Settings()
    assert clamp_lease(None, s) == 864000
    assert clamp_lease(1, s) == 60
    assert clamp_lease(10**9, s) == 2592000
