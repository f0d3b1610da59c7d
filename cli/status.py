"""``broker-hub status``: the /status summary in a terminal (``--json``: /status.json)."""

from __future__ import annotations

import json
import sys
import time

from broker_hub.breaker import BreakerPolicy
from broker_hub.config import Settings
from broker_hub.messaging import Messaging
from broker_hub.opsview import read_queue_depths, take_snapshot, watched_sources
from broker_hub.storage import Storage
from web.status_page import render_text

EXIT_OK = 0
EXIT_UNAVAILABLE = 3


def status_command(settings: Settings, as_json: bool = False) -> int:
    try:
        storage = Storage.from_url(settings.database_url)
        storage.check()
    except Exception as exc:  # noqa: BLE001 - reported as a clear failure
        print(f"broker-hub: database unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    messaging = Messaging(settings.broker_url, namespace=settings.namespace,
                          queue_type=settings.queue_type,
                          delivery_limit=settings.queue_delivery_limit)
    read = None if messaging.is_memory else (lambda: read_queue_depths(messaging))
    snap = take_snapshot(storage, time.time(), queue_depths=read,
                         mirror_limit=settings.mirror_labels_max,
                         policy=BreakerPolicy.for_backoff(settings.delivery_backoff_base),
                         sources=watched_sources(settings))
    storage.close()
    if as_json:
        print(json.dumps(snap.as_json(), indent=2, sort_keys=True))
    else:
        sys.stdout.write(render_text(snap))
    return EXIT_OK
