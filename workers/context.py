"""What the roles of one worker process share: the hub's services and one HTTP engine."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from broker_hub.services import Services
from workers.http_engine import HttpEngine


@dataclass
class WorkerContext:
    """The services, plus the process's asyncio HTTP engine (started on first use)."""

    services: Services
    _engine: HttpEngine | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def engine(self) -> HttpEngine:
        with self._lock:
            if self._engine is None:
                self._engine = HttpEngine(self.services.settings)
                self._engine.start()
            return self._engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.stop()
                self._engine = None
