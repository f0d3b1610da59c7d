"""The hub's services, built once per process from the settings and passed down."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from broker_hub.config import Settings
from broker_hub.messaging import Messaging, Publisher
from broker_hub.metrics import Metrics
from broker_hub.storage import Storage
from broker_hub.storage.api import Store


@dataclass(frozen=True)
class Services:
    """Settings, storage, the broker and metrics: what every part of the hub is given."""

    settings: Settings
    storage: Store
    messaging: Messaging
    metrics: Metrics
    clock: Callable[[], float] = field(default=time.time, repr=False)

    @property
    def publisher(self) -> Publisher:
        return self.messaging.publisher

    @classmethod
    def from_settings(
        cls, settings: Settings, *, metrics: Metrics | None = None, create_schema: bool = True
    ) -> Services:
        """Open the storage (creating what is missing) and the broker the settings name."""
        storage = Storage.from_url(settings.database_url)
        if create_schema:
            storage.create_schema()
        messaging = Messaging(settings.broker_url, namespace=settings.namespace,
                              queue_type=settings.queue_type,
                              delivery_limit=settings.queue_delivery_limit)
        return cls(settings, storage, messaging, metrics or Metrics())

    def close(self) -> None:
        self.messaging.close()
        self.storage.close()
