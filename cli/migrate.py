"""``broker-hub migrate``: bring the database schema up to date, then exit (the one-shot step
a deployment runs before the roles start)."""

from __future__ import annotations

import sys

from broker_hub.config import Settings
from broker_hub.storage import Storage
from broker_hub.storage.migrations import current_version

EXIT_OK = 0
EXIT_UNAVAILABLE = 3


def migrate_command(settings: Settings) -> int:
    try:
        storage = Storage.from_url(settings.database_url)
        applied = storage.migrate()
        version = current_version(storage.backend)
        storage.close()
    except Exception as exc:  # noqa: BLE001 - reported as a clear failure
        print(f"broker-hub: migration failed: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    done = ", ".join(str(v) for v in applied) if applied else "none (up to date)"
    print(f"schema version {version}; steps applied: {done}")
    return EXIT_OK
