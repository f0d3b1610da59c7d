"""Old home of the integration tests' hub launcher: now :mod:`tests.support.hubs`.

Kept as aliases so tests written against it keep working; new tests import from
``tests.support.hubs`` (``embedded``, ``split``, ``RunningHub``, ...).
"""

from __future__ import annotations

from tests.support.hubs import RunningHub, poll, quiet_period, wait_posts
from tests.support.hubs import embedded as embedded_hub
from tests.support.hubs import split as split_hub
from tests.support.postgres import POSTGRES_ADMIN_URL
from tests.support.processes import HUB_SCRIPT, HubProcess, free_port, start_hub, wait_for

__all__ = [
    "HUB_SCRIPT", "POSTGRES_ADMIN_URL", "HubProcess", "RunningHub", "embedded_hub", "free_port",
    "poll", "quiet_period", "split_hub", "start_hub", "wait_for", "wait_posts",
]
