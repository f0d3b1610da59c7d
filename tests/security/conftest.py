"""Security tests run against real ``broker-hub`` processes started here.

Each module asks :func:`hub_factory` for a hub with the settings its rules need; a hub is
started once per configuration for the whole session (:class:`tests.support.hubs.HubCache`:
``broker-hub run``, memory transport, SQLite), so the suite stays fast. Its log is kept so
tests can look for leaked secrets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.hubs import Hub, HubCache

# What these tests assume unless a module asks otherwise: private addresses refused (the
# product's default), few and fast retries.
SECURITY_DEFAULTS = {
    "HUB_ALLOW_PRIVATE_ADDRESSES": "false",
    "HUB_DELIVERY_MAX_ATTEMPTS": "3",
    "HUB_HTTP_TIMEOUT": "2",
}


@pytest.fixture(scope="session")
def hub_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Hub]]:
    """``hub_factory(**HUB_overrides) -> Hub``: one embedded hub per distinct configuration."""
    cache = HubCache(lambda: tmp_path_factory.mktemp("hub"), **SECURITY_DEFAULTS)
    yield cache.get
    cache.close()
