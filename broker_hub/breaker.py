"""A per-mirror circuit breaker: a mirror that keeps failing is paced, probed, never dropped.

WebSub requires delivery until a lease ends (only 410 ends it early), so an open breaker
never unsubscribes and never discards: the deliverer holds a paused mirror's deliveries back
(publishes them to the delay queue for :meth:`Breaker.wait`) instead of spending an HTTP
timeout and a consumer slot on each. After the pause one probe delivery is let through
(half-open); its success closes the breaker, its failure doubles the pause (up to a cap).

States, as metrics and ``/status`` show them: ``healthy`` (no failure since the last
success), ``failing`` (failures below the threshold), ``paused`` (breaker open).
Pure logic, no clock of its own: every call takes ``now``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

HEALTHY = "healthy"
FAILING = "failing"
PAUSED = "paused"


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = 5  # consecutive failures that open the breaker
    base_pause: float = 30.0  # first pause, seconds
    max_pause: float = 1800.0  # the pause never grows past this

    @classmethod
    def for_backoff(cls, backoff_base: float) -> BreakerPolicy:
        """The policy of a hub whose first retry waits ``backoff_base`` seconds
        (``HUB_DELIVERY_BACKOFF_BASE``): the first pause is that long, at most 60 times it."""
        return cls(base_pause=backoff_base, max_pause=min(1800.0, 60 * backoff_base))

    def pause(self, consecutive_failures: int) -> float:
        """How long a mirror with this many consecutive failures is paused (0: not paused)."""
        over = consecutive_failures - self.failure_threshold
        if over < 0:
            return 0.0
        return min(self.max_pause, self.base_pause * (2 ** min(over, 30)))


DEFAULT_POLICY = BreakerPolicy()


def mirror_state(consecutive_failures: int, last_failure_at: float | None, now: float,
                 policy: BreakerPolicy = DEFAULT_POLICY) -> str:
    """healthy / failing / paused, from what storage records about a mirror."""
    if consecutive_failures <= 0:
        return HEALTHY
    pause = policy.pause(consecutive_failures)
    if pause > 0 and last_failure_at is not None and now < last_failure_at + pause:
        return PAUSED
    return FAILING


@dataclass
class _Mirror:
    failures: int = 0
    last_failure_at: float = 0.0
    probing: bool = False


class Breaker:
    """In-process breaker state per mirror (thread-safe). ``allow`` before a delivery,
    ``record`` after it; ``wait`` says how long to hold back a delivery that was refused."""

    def __init__(self, policy: BreakerPolicy = DEFAULT_POLICY):
        self.policy = policy
        self._mirrors: dict[str, _Mirror] = {}
        self._lock = threading.Lock()

    def allow(self, mirror: str, now: float) -> bool:
        """True: deliver now (closed, or the one half-open probe). False: hold it back."""
        with self._lock:
            m = self._mirrors.get(mirror)
            if m is None or m.failures < self.policy.failure_threshold:
                return True
            if now < m.last_failure_at + self.policy.pause(m.failures) or m.probing:
                return False
            m.probing = True
            return True

    def wait(self, mirror: str, now: float) -> float:
        """Seconds until the mirror may be tried again (0 when it may be now)."""
        with self._lock:
            m = self._mirrors.get(mirror)
            if m is None:
                return 0.0
            until = m.last_failure_at + self.policy.pause(m.failures)
            return max(0.0, until - now) if not m.probing else self.policy.base_pause

    def record(self, mirror: str, ok: bool, now: float) -> None:
        with self._lock:
            if ok:
                self._mirrors.pop(mirror, None)
                return
            m = self._mirrors.setdefault(mirror, _Mirror())
            m.failures += 1
            m.last_failure_at = now
            m.probing = False

    def state(self, mirror: str, now: float) -> str:
        with self._lock:
            m = self._mirrors.get(mirror)
            if m is None:
                return HEALTHY
            return mirror_state(m.failures, m.last_failure_at, now, self.policy)

    def forget(self, mirrors: set[str]) -> None:
        """Drop mirrors that have no subscription any more (bounded memory)."""
        with self._lock:
            for mirror in mirrors:
                self._mirrors.pop(mirror, None)
