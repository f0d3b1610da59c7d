"""The one interface every part of the hub publishes through (web front and workers alike)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from broker_hub.messages import Message

Headers = Mapping[str, Any]


class Publisher(Protocol):
    """Publishes hub messages persistently; every call returns once the broker has them.

    Raises :class:`broker_hub.errors.Unavailable` when the broker cannot take a message:
    the caller answers 503 or leaves its own message unacked, so nothing is lost.
    """

    def publish(self, message: Message, target: str, *, headers: Headers | None = None) -> None:
        """Publish to a target's work queue."""

    def publish_many(self, items: Sequence[tuple[Message, str]]) -> None:
        """Publish several messages; returns once every one is confirmed."""

    def publish_delayed(
        self, message: Message, target: str, delay: float, *, headers: Headers | None = None
    ) -> None:
        """Publish so that the message reaches ``target`` after ``delay`` seconds."""

    def close(self) -> None:
        """Release connections and threads."""
