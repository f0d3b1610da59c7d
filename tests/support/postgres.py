"""Fresh PostgreSQL databases for tests, on the server named by ``BROKER_HUB_TEST_POSTGRES_URL``.

The admin URL (default ``postgresql://127.0.0.1:5432/test``, trust auth) is read here and only
here: the ``postgres_url`` fixture and the split hub of :mod:`tests.support.hubs` both use it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "BROKER_HUB_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test"
)
POSTGRES_BASE = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """Create ``bh_<hex>`` on the admin URL's server, yield its URL, drop it (FORCE) after.

    Fails the test loudly (never skips) when PostgreSQL does not answer.
    """
    import psycopg

    dbname = f"bh_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({exc}). These tests never "
            "skip: start it (scripts/ensure-rabbitmq.sh tries) and run again.",
            pytrace=False,
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
        try:
            yield f"{POSTGRES_BASE}/{dbname}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
