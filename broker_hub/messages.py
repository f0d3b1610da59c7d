"""Typed JSON broker messages: frozen dataclasses with a schema version. Never pickle."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

SCHEMA_VERSION = 1


class MessageError(ValueError):
    """A broker message that cannot be decoded into a known type."""


@dataclass(frozen=True)
class FetchTopic:
    """A topic was pinged: fetch it unless a fetch that started after ``seq`` already ran."""

    kind: ClassVar[str] = "fetch"
    topic: str
    seq: int
    pinged_at: float
    attempt: int = 1


@dataclass(frozen=True)
class VerifyIntent:
    """Verify a subscribe/unsubscribe request with the subscriber (or tell it it was denied)."""

    kind: ClassVar[str] = "verify"
    mode: str
    topic: str
    callback: str
    requested_at: float
    secret: str | None = field(default=None, repr=False)
    lease_seconds: int | None = None
    reason: str = ""  # for mode "denied"
    attempt: int = 1


@dataclass(frozen=True)
class DeliverBatch:
    """Deliver notification ``notification_id`` to the topic's subscriptions with ids in a range."""

    kind: ClassVar[str] = "deliver_batch"
    notification_id: int
    topic: str
    first_id: int
    last_id: int
    pinged_at: float


@dataclass(frozen=True)
class DeliverOne:
    """A retry of one delivery."""

    kind: ClassVar[str] = "deliver_one"
    notification_id: int
    subscription_id: int
    pinged_at: float
    attempt: int
    last_error: str = ""


@dataclass(frozen=True)
class Parked:
    """A message that gave up (attempts exhausted) or could not be read, with the reason."""

    kind: ClassVar[str] = "parked"
    reason: str
    original: dict[str, Any]
    parked_at: float
    mirror: str = ""
    topic: str = ""
    attempts: int = 0


Message = FetchTopic | VerifyIntent | DeliverBatch | DeliverOne | Parked
_TYPES: dict[str, type] = {
    cls.kind: cls for cls in (FetchTopic, VerifyIntent, DeliverBatch, DeliverOne, Parked)
}


def to_body(message: Message) -> str:
    """Serialize to the JSON text sent to the broker."""
    payload = dataclasses.asdict(message)
    payload["type"] = message.kind
    payload["v"] = SCHEMA_VERSION
    return json.dumps(payload, separators=(",", ":"))


def as_record(message: Message) -> dict[str, Any]:
    """The message as a dict for parking and display: its type kept, any secret left out."""
    payload = dataclasses.asdict(message)
    payload["type"] = message.kind
    payload.pop("secret", None)
    return payload


def from_body(body: Any) -> Message:
    """Decode a message body (JSON text, bytes or an already-decoded dict); raise MessageError."""
    try:
        payload = json.loads(body) if isinstance(body, str | bytes | bytearray) else body
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MessageError("not a JSON object")
    if payload.get("v") != SCHEMA_VERSION:
        raise MessageError(f"unknown schema version {payload.get('v')!r}")
    kind = payload.get("type")
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MessageError(f"unknown message type {payload.get('type')!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in payload.items() if k in names})
    except TypeError as exc:
        raise MessageError(f"bad {kind} message: {exc}") from None
