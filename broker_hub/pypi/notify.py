"""The JSON bodies of PyPI notifications and catch-up pages (compact UTF-8 JSON bytes).

One poll round gives one firehose body and one body per changed project; see
``/work/coord/pypi-interface.md`` (and the README) for the fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from broker_hub.pypi.changes import Change

EntryLike = Change | Mapping[str, Any]


@dataclass(frozen=True)
class Round:
    """What one poll round saw: changes in (``since``, ``until``] of the journal.

    Degraded rounds (RSS) keep ``since == until`` = the last journal serial known.
    """

    source: str
    since: int
    until: int
    changes: tuple[Change, ...]
    degraded: bool = False

    def __post_init__(self) -> None:
        if self.until < self.since:
            raise ValueError(f"until {self.until} is before since {self.since}")
        if self.degraded and self.since != self.until:
            raise ValueError("a degraded round keeps since == until (no journal progress)")
        serials = [c.serial for c in self.changes]
        if not self.degraded and any(
            s is None or not self.since < s <= self.until for s in serials
        ):
            raise ValueError("every change of a journal round has a serial in (since, until]")


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _entry(entry: EntryLike) -> Mapping[str, Any]:
    return entry.to_json() if isinstance(entry, Change) else entry


def by_project(changes: Iterable[Change]) -> dict[str, list[Change]]:
    """Changes grouped by normalized name, each group in journal order."""
    groups: dict[str, list[Change]] = {}
    for change in changes:
        groups.setdefault(change.normalized, []).append(change)
    return groups


def firehose_body(round_: Round, topic: str, *, previous_serial: int | None = None) -> bytes:
    """The firehose notification: every change of the round.

    ``previous_serial`` defaults to ``since`` (the index's newest serial before the round).
    """
    return dumps({
        "source": round_.source, "topic": topic, "since": round_.since, "until": round_.until,
        "degraded": round_.degraded,
        "previous_serial": round_.since if previous_serial is None else previous_serial,
        "entries": [c.to_json() for c in round_.changes],
    })


def project_bodies(
    round_: Round,
    topic_for: Callable[[str], str],
    *,
    last_until: Mapping[str, int] | None = None,
    previous_serial: Mapping[str, int | None] | None = None,
) -> dict[str, bytes]:
    """One body per changed project, keyed by normalized name.

    ``since`` is the ``until`` of that project topic's previous notification
    (``last_until[name]``; the round's ``since`` when unknown), ``until`` is the round's
    ``until``, so the chain of one project topic has no hole. ``previous_serial`` is the
    project's newest serial before this round (``previous_serial[name]``; null when unknown).
    """
    last_until = last_until or {}
    previous_serial = previous_serial or {}
    bodies = {}
    for name, changes in by_project(round_.changes).items():
        since = last_until.get(name, round_.since)
        bodies[name] = dumps({
            "source": round_.source, "topic": topic_for(name),
            "since": min(since, round_.until), "until": round_.until,
            "degraded": round_.degraded, "previous_serial": previous_serial.get(name),
            "entries": [c.to_json() for c in changes],
        })
    return bodies


def newest_serials(changes: Iterable[Change]) -> dict[str, int]:
    """Each project's newest serial among ``changes`` (to remember as its next previous_serial)."""
    newest: dict[str, int] = {}
    for change in changes:
        if change.serial is not None:
            newest[change.normalized] = max(change.serial, newest.get(change.normalized, 0))
    return newest


def catchup_body(
    *,
    source: str,
    topic: str,
    since: int,
    until: int,
    entries: Iterable[EntryLike],
    next_url: str | None,
) -> bytes:
    """The catch-up page answered to ``GET <topic>?since=<serial>``: entries oldest first."""
    return dumps({
        "source": source, "topic": topic, "since": since, "until": until,
        "entries": [dict(_entry(e)) for e in entries], "next": next_url,
    })
