"""Asking the hub for our subscriptions and renewing each lease before it ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import requests

from mirror import hubclient
from mirror.state import State, Subscription

logger = logging.getLogger(__name__)

RETRY_SECONDS = 60.0  # a request the hub has not verified by then is sent again


def renew_margin(lease: float) -> float:
    """Renew this long before the lease ends: a tenth of it, at least a minute, at most a day."""
    return min(max(60.0, lease / 10), 86400.0)


class Leases:
    def __init__(self, state: State, *, hub_url: str, callback_base: str,
                 session: requests.Session, lease_seconds: int | None,
                 clock: Callable[[], float] = time.time):
        self.state = state
        self.hub_url = hub_url
        self.callback_base = callback_base.rstrip("/") + "/"
        self.session = session
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._started = False  # the first round asks again for every subscription

    def callback(self, sub: Subscription) -> str:
        return f"{self.callback_base}callback/{sub.token}"

    def needs_request(self, sub: Subscription, now: float) -> bool:
        if sub.requested_at is not None and now - sub.requested_at < RETRY_SECONDS:
            return False  # asked recently: the hub's verification is on its way
        if sub.wanted == "unsubscribe" or sub.verified_at is None:
            return True
        if sub.expires_at is None:
            return False  # the hub gave no lease: nothing to renew
        return sub.expires_at - now < renew_margin(sub.expires_at - sub.verified_at)

    def run_once(self) -> None:
        """Send what is due. On start, every subscription is asked for again: the hub may have
        lost it while we were down (a renewal is harmless: the hub verifies and extends it)."""
        now = self.clock()
        first, self._started = not self._started, True
        for sub in self.state.subscriptions():
            if not (first or self.needs_request(sub, now)):
                continue
            try:
                hubclient.request(self.session, self.hub_url, mode=sub.wanted, topic=sub.topic,
                                  callback=self.callback(sub), secret=sub.secret,
                                  lease_seconds=self.lease_seconds)
            except hubclient.HubError as exc:
                logger.warning("%s to %s: %s", sub.wanted, sub.topic, exc)
            else:
                logger.info("asked the hub to %s %s", sub.wanted, sub.topic)
            self.state.requested(sub.topic, now)
