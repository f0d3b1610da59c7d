"""Security tests run against real ``broker-hub`` processes started here.

Each module asks :func:`hub_factory` for a hub with the settings its rules need; a hub is
started once per configuration for the whole session (``broker-hub run``: memory transport,
SQLite), so the suite stays fast. Its log is kept so tests can look for leaked secrets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from broker_hub.storage import Storage
from tests.security.helpers import Hub
from tests.support.processes import free_port, start_hub


@pytest.fixture(scope="session")
def hub_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Hub]]:
    """``hub_factory(**HUB_overrides) -> Hub``: one embedded hub per distinct configuration."""
    hubs: dict[tuple[tuple[str, str], ...], Hub] = {}

    def get(**overrides: object) -> Hub:
        key = tuple(sorted((k, str(v)) for k, v in overrides.items()))
        if key in hubs and hubs[key].process.alive():
            return hubs[key]
        tmp = tmp_path_factory.mktemp("hub")
        env = {
            "HUB_BIND": f"127.0.0.1:{free_port()}",
            "HUB_DATABASE_URL": f"sqlite:///{tmp / 'hub.sqlite3'}",
            "HUB_ALLOW_PRIVATE_ADDRESSES": "false",
            "HUB_DELIVERY_BACKOFF_BASE": "0.2",
            "HUB_DELIVERY_MAX_ATTEMPTS": "3",
            "HUB_HTTP_TIMEOUT": "2",
            "HUB_LEASE_MIN": "1",
            # all test traffic comes from loopback: the rate limits are on only where tested
            "HUB_RATE_LIMIT_PER_MINUTE": "0",
            "HUB_VERIFY_RATE_PER_HOST": "0",
            "HUB_FETCH_RATE_PER_HOST": "0",
            **{k: str(v) for k, v in overrides.items()},
        }
        url = f"http://{env['HUB_BIND']}/"
        process = start_hub("run", env, wait_health_url=url + "healthz", log_dir=tmp)
        hubs[key] = Hub(url, process, Storage.from_url(env["HUB_DATABASE_URL"]))
        return hubs[key]

    yield get
    for hub in hubs.values():
        hub.process.stop()
        hub.storage.close()
