"""Writing verified subscriptions under HUB_MAX_SUBSCRIPTIONS_PER_TOPIC / _PER_HOST.

The limits are enforced where a subscription is written, atomically: the counts are read in
the INSERT that creates it, and the writers that count the same topic or address are
serialized (PostgreSQL: advisory transaction locks; SQLite: BEGIN IMMEDIATE), so concurrent
subscribes can never overshoot a limit. The per-host limit counts the address a callback
reaches (:func:`broker_hub.ratelimit.address_key`), whatever its spelling or port.
"""

from __future__ import annotations

from collections.abc import Callable

from broker_hub.ratelimit import address_key
from broker_hub.storage.backends import Backend
from broker_hub.storage.records import (
    SUB_COLUMNS,
    Subscription,
    SubscriptionLimits,
    VerifiedChange,
    subscription_from_row,
)
from broker_hub.urls import host_label

_NO_LIMITS = SubscriptionLimits()
# A new subscription is written only while its topic and its callback's address are under
# their limits (an active re-subscribe always is); the counts are read in the same statement.
_ACTIVATE = (
    "INSERT INTO subscriptions (topic, callback, callback_host, callback_address, secret, "
    "lease_seconds, expires_at, created_at) SELECT ?, ?, ?, ?, ?, ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM subscriptions WHERE topic = ? AND callback = ? "
    "AND expires_at > ?) OR ((? = 0 OR (SELECT COUNT(*) FROM subscriptions WHERE topic = ? "
    "AND expires_at > ?) < ?) AND (? = 0 OR (SELECT COUNT(*) FROM subscriptions "
    "WHERE callback_address = ? AND expires_at > ?) < ?)) "
    "ON CONFLICT (topic, callback) DO UPDATE SET secret = excluded.secret, "
    "lease_seconds = excluded.lease_seconds, expires_at = excluded.expires_at, "
    "callback_address = excluded.callback_address "
    f"RETURNING {SUB_COLUMNS}"
)




class SubscriptionWrites:
    """Activating subscriptions, mixed into :class:`broker_hub.storage.Storage`."""

    backend: Backend
    remove: Callable[[str, str], bool]  # Storage's

    def activate(
        self,
        topic: str,
        callback: str,
        secret: str | None,
        lease_seconds: int,
        now: float,
        *,
        limits: SubscriptionLimits = _NO_LIMITS,
        address: str | None = None,
    ) -> Subscription | None:
        """Create the subscription, or replace its secret and lease (a verified re-subscribe).

        None: a new subscription refused because its topic or its callback's address
        (``address``, default :func:`address_key` of the callback) is at its limit.
        """
        if not limits.enabled:
            return self._activate(topic, callback, secret, lease_seconds, now, limits, address)
        address = address or address_key(callback)
        with self.backend.transaction():
            self._lock_for_limits([(topic, address)])
            return self._activate(topic, callback, secret, lease_seconds, now, limits, address)

    def _activate(
        self,
        topic: str,
        callback: str,
        secret: str | None,
        lease_seconds: int,
        now: float,
        limits: SubscriptionLimits,
        address: str | None,
    ) -> Subscription | None:
        address = address or address_key(callback)
        row = self.backend.execute(
            _ACTIVATE,
            (
                topic, callback, host_label(callback), address, secret, lease_seconds,
                now + lease_seconds, now,
                topic, callback, now,
                limits.per_topic, topic, now, limits.per_topic,
                limits.per_address, address, now, limits.per_address,
            ),
        ).fetchone()  # fmt: skip
        if row is None:
            return None
        return subscription_from_row(row)

    def _lock_for_limits(self, pairs: list[tuple[str, str]]) -> None:
        """PostgreSQL: serialize, until the transaction ends, the writers that count one topic
        or one address (SQLite's BEGIN IMMEDIATE already serializes every writer). Locks are
        taken in one global order, so two batches never deadlock."""
        if self.backend.dialect != "postgresql":
            return
        keys = sorted({f"t:{t}" for t, _ in pairs} | {f"a:{a}" for _, a in pairs})
        for key in keys:
            self.backend.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,)).fetchone()

    def apply_verified(
        self,
        changes: list[VerifiedChange],
        now: float,
        *,
        limits: SubscriptionLimits = _NO_LIMITS,
    ) -> list[VerifiedChange]:
        """Apply verified intents in one transaction.

        Returns the subscribes refused by ``limits`` (their subscriber is sent a denial)."""
        subscribes = [c for c in changes if c.mode == "subscribe"]
        addresses = {c.callback: address_key(c.callback) for c in subscribes}
        refused: list[VerifiedChange] = []
        with self.backend.transaction():
            if limits.enabled:
                self._lock_for_limits([(c.topic, addresses[c.callback]) for c in subscribes])
            for change in changes:
                if change.mode != "subscribe":
                    self.remove(change.topic, change.callback)
                    continue
                sub = self._activate(
                    change.topic, change.callback, change.secret, change.lease_seconds, now,
                    limits, addresses[change.callback],
                )  # fmt: skip
                if sub is None:
                    refused.append(change)
        return refused

    def count_for_address(self, address: str, now: float) -> int:
        """Active subscriptions whose callbacks reach ``address`` (an address_key)."""
        row = self.backend.execute(
            "SELECT COUNT(*) FROM subscriptions WHERE callback_address = ? AND expires_at > ?",
            (address, now),
        ).fetchone()
        return int(row[0])

