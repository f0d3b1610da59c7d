"""One journal entry of PyPI's changelog as a typed ``Change``, and what kind of change it is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from broker_hub.pypi.names import is_valid_name, normalize

KINDS = (
    "project_created", "release_created", "file_added", "file_removed", "release_removed",
    "project_removed", "yanked", "unyanked", "quarantined", "quarantine_cleared",
    "roles_changed", "other",
)
_EXACT = {
    "create": "project_created",
    "new release": "release_created",
    "remove release": "release_removed",
    "remove project": "project_removed",
    "yank release": "yanked",
    "unyank release": "unyanked",
    "project quarantined": "quarantined",
    "project quarantine cleared": "quarantine_cleared",
}
_ADD_FILE = re.compile(r"^add (\S+) file (\S+)$")
_REMOVE_FILE = re.compile(r"^remove file (\S+)$")
_ROLE = re.compile(
    r"^(?:(?:add|remove|accepted|invite|revoke invite) (?:Owner|Maintainer) \S+"
    r"|change (?:Owner|Maintainer) \S+ to (?:Owner|Maintainer))$"
)
MAX_ACTION_LENGTH = 1000
MAX_VERSION_LENGTH = 200


class BadEntry(ValueError):
    """A journal entry that is not ``[name, version|None, timestamp, action, serial]``."""


@dataclass(frozen=True)
class Change:
    """One change on the index. ``serial`` is None only for changes seen through RSS."""

    serial: int | None
    project: str
    normalized: str
    version: str | None
    action: str
    kind: str
    filename: str | None
    timestamp: int

    def to_json(self) -> dict[str, Any]:
        """The entry object of the notification and catch-up bodies."""
        return {
            "serial": self.serial, "project": self.project, "normalized": self.normalized,
            "version": self.version, "action": self.action, "kind": self.kind,
            "filename": self.filename, "timestamp": self.timestamp,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        """The inverse of ``to_json`` (for entries the hub stored); raises ``BadEntry``."""
        try:
            return cls(**{key: data[key] for key in _FIELDS})
        except (KeyError, TypeError) as exc:
            raise BadEntry(f"not a stored change: {exc}") from None


_FIELDS = ("serial", "project", "normalized", "version", "action", "kind", "filename", "timestamp")


def classify(action: str) -> tuple[str, str | None]:
    """``(kind, filename)`` of a journal action; unknown actions are ``("other", None)``."""
    kind = _EXACT.get(action)
    if kind is not None:
        return kind, None
    if match := _ADD_FILE.match(action):
        return "file_added", match.group(2)
    if match := _REMOVE_FILE.match(action):
        return "file_removed", match.group(1)
    if _ROLE.match(action):
        return "roles_changed", None
    return "other", None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_entry(raw: object) -> Change:
    """A ``Change`` from one raw XML-RPC entry; ``BadEntry`` says what is wrong with it."""
    if not isinstance(raw, list | tuple) or len(raw) != 5:
        raise BadEntry("an entry must be a list of 5 items [name, version, timestamp, action, "
                       f"serial], got {type(raw).__name__}"
                       + (f" of {len(raw)}" if isinstance(raw, list | tuple) else ""))
    name, version, timestamp, action, serial = raw
    if not _is_int(serial) or serial < 0:
        raise BadEntry(f"serial must be a non-negative integer, got {serial!r:.50}")
    if not isinstance(name, str):
        raise BadEntry(f"serial {serial}: the name must be a string, got {type(name).__name__}")
    if not is_valid_name(name):
        raise BadEntry(f"serial {serial}: {name!r:.100} is not a valid project name")
    if version is not None and (
        not isinstance(version, str) or not version or len(version) > MAX_VERSION_LENGTH
        or any(ch.isspace() for ch in version)
    ):
        raise BadEntry(f"serial {serial}: unusable version {version!r:.100}")
    if not _is_int(timestamp) or timestamp < 0:
        raise BadEntry(f"serial {serial}: timestamp must be a non-negative integer")
    if not isinstance(action, str) or not action or len(action) > MAX_ACTION_LENGTH:
        raise BadEntry(f"serial {serial}: the action must be a string of 1 to "
                       f"{MAX_ACTION_LENGTH} characters")
    if not action.isprintable():
        raise BadEntry(f"serial {serial}: the action contains control characters")
    kind, filename = classify(action)
    return Change(serial, name, normalize(name), version, action, kind, filename, timestamp)
