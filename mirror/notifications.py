"""The hub's PyPI notifications (see the bridge's interface): parsing and the gap rule, pure."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from mirror.names import is_valid, normalize

logger = logging.getLogger(__name__)

REMOVALS = frozenset({"project_removed", "release_removed", "file_removed"})


class BadNotification(ValueError):
    """A body that is not a notification this agent can read (the message says why)."""


@dataclass(frozen=True)
class Entry:
    """One journal entry, as the hub sends it."""

    serial: int | None
    project: str
    normalized: str
    version: str | None
    kind: str
    filename: str | None


@dataclass(frozen=True)
class Notification:
    """A notification (push or catch-up page): its serial range and entries."""

    since: int | None
    until: int | None
    entries: tuple[Entry, ...]
    degraded: bool = False
    next_url: str | None = None


def _int_or_none(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadNotification(f"{name} must be an integer or null")
    return value


def _entry(raw: object) -> Entry | None:
    if not isinstance(raw, dict):
        return None
    project = raw.get("project")
    if not isinstance(project, str) or not is_valid(project):
        logger.warning("notification entry with an invalid project name %r: skipped", project)
        return None
    try:
        serial = _int_or_none(raw.get("serial"), "serial")
    except BadNotification:
        logger.warning("notification entry for %s with a bad serial: skipped", project)
        return None
    filename = raw.get("filename")
    version = raw.get("version")
    kind = raw.get("kind")
    return Entry(
        serial=serial,
        project=project,
        normalized=normalize(project),
        version=version if isinstance(version, str) else None,
        kind=kind if isinstance(kind, str) else "other",
        filename=filename if isinstance(filename, str) and "/" not in filename else None,
    )


def parse(body: bytes) -> Notification:
    """Read a notification or a catch-up page; ``BadNotification`` when it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadNotification("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadNotification("the body is not a JSON object")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise BadNotification("'entries' must be a list")
    next_url = data.get("next")
    return Notification(
        since=_int_or_none(data.get("since"), "since"),
        until=_int_or_none(data.get("until"), "until"),
        entries=tuple(e for e in map(_entry, entries) if e is not None),
        degraded=bool(data.get("degraded", False)),
        next_url=next_url if isinstance(next_url, str) else None,
    )


def is_gap(
    cursor_until: int | None,
    cursor_sequence: int | None,
    since: int | None,
    sequence: int | None,
) -> bool:
    """True when something was missed between the last notification seen and this one.

    The serial chain (this ``since`` must equal the last ``until``) and the hub's per-topic
    ``X-Hub-Sequence`` (the last one plus 1) are each enough; an older or repeated one is no gap.
    """
    if cursor_until is not None and since is not None and since > cursor_until:
        return True
    return cursor_sequence is not None and sequence is not None and sequence > cursor_sequence + 1
