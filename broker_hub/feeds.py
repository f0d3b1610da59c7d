"""Atom/RSS diffing: find the new or changed entries and cut the others out, byte for byte.

The document is parsed with expat (no entity declarations, no external entities) only to
locate each entry's exact byte span; the delivered body is the original bytes minus the
spans of unchanged entries, so every feed-level byte stays as published.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM03_NS = "http://purl.org/atom/ns#"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RSS1_NSS = ("http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/")

_XML_TYPES = frozenset({
    "application/atom+xml", "application/rss+xml", "application/rdf+xml",
    "application/xml", "text/xml",
})  # fmt: skip
_WHITESPACE = b" \t\r\n"
# child elements of an entry that carry its key: expat name -> key part
_KEY_FIELDS = {
    f"{ATOM_NS} id": "id", f"{ATOM03_NS} id": "id", "guid": "guid", "link": "link",
    **{f"{ns} link": "link" for ns in RSS1_NSS},
}  # fmt: skip


DEFAULT_MAX_ENTRIES = 10_000  # HUB_FEED_MAX_ENTRIES


class HostileXML(ValueError):
    """The document declares entities or a DTD subset the hub refuses (billion laughs, XXE)."""


class TooManyEntries(HostileXML):
    """The feed has more entries than HUB_FEED_MAX_ENTRIES: refused like hostile XML
    (logged, counted as refused, nothing stored or delivered), and parsing stops there."""


@dataclass(frozen=True)
class FeedDiff:
    """The outcome of diffing one fetched feed against the previous fetch."""

    kind: str  # "atom", "rss" (<rss><channel><item>), "rdf" (RSS 1.0 rdf:RDF/item)
    entries: dict[str, str]  # entry key -> sha256 hex of the entry's raw bytes (all entries)
    changed: tuple[str, ...]  # keys of new-or-changed entries, in document order
    body: bytes  # the new document with every unchanged entry removed


class _NotAFeed(Exception):
    """Raised inside the parser to stop early when the root is not a feed."""


@dataclass
class _Entry:
    start: int
    end: int = -1
    key_parts: dict[str, str] | None = None


def _is_candidate(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in _XML_TYPES or media.endswith("+xml")


def _refuse(*_args: Any) -> None:
    raise HostileXML("the document declares entities or references an external entity")


class _Scanner:
    """One expat pass: the feed kind and every entry's byte span and key material."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.kind: str | None = None
        self.entries: list[_Entry] = []
        self._stack: list[str] = []
        self._entry: _Entry | None = None
        self._entry_depth = 0
        self._pending: _Entry | None = None  # entry whose end is the next event's index
        self._field: str | None = None
        self._text: list[str] = []
        p = self.parser = expat.ParserCreate(namespace_separator=" ")
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.EntityDeclHandler = _refuse
        p.UnparsedEntityDeclHandler = _refuse
        p.ExternalEntityRefHandler = _refuse  # type: ignore[assignment]
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._chars
        p.CommentHandler = self._mark
        p.ProcessingInstructionHandler = self._mark
        p.StartCdataSectionHandler = self._mark
        p.EndCdataSectionHandler = self._mark
        p.DefaultHandlerExpand = self._mark

    def scan(self, body: bytes) -> None:
        self.parser.Parse(body, True)

    def _mark(self, *_args: Any) -> None:
        """Every event starts where the previous token ended: close a pending entry span."""
        if self._pending is not None:
            self._pending.end = self.parser.CurrentByteIndex
            self._pending = None

    def _is_entry(self, name: str) -> bool:
        depth = len(self._stack)
        if self.kind == "atom":
            return depth == 1 and name in (f"{ATOM_NS} entry", f"{ATOM03_NS} entry")
        if self.kind == "rss":
            return depth == 2 and name == "item" and self._stack[1] == "channel"
        return depth == 1 and name in tuple(f"{ns} item" for ns in RSS1_NSS)

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self._mark()
        if not self._stack:
            self.kind = {
                f"{ATOM_NS} feed": "atom", f"{ATOM03_NS} feed": "atom",
                "rss": "rss", f"{RDF_NS} RDF": "rdf",
            }.get(name)  # fmt: skip
            if self.kind is None:
                raise _NotAFeed(name)
        elif self._entry is None and self._is_entry(name):
            parts: dict[str, str] = {}
            self._entry = _Entry(self.parser.CurrentByteIndex, key_parts=parts)
            self._entry_depth = len(self._stack)
            about = attrs.get(f"{RDF_NS} about")
            if about:
                parts["about"] = about
        elif self._entry is not None and len(self._stack) == self._entry_depth + 1:
            field = _KEY_FIELDS.get(name)
            if field is not None and self._field is None:
                self._field = field
                self._text = []
        self._stack.append(name)

    def _end(self, name: str) -> None:
        self._mark()
        self._stack.pop()
        entry = self._entry
        if entry is None or entry.key_parts is None:
            return
        depth = len(self._stack)
        if self._field is not None and depth == self._entry_depth + 1:
            text = "".join(self._text).strip()
            if text:
                entry.key_parts.setdefault(self._field, text)
            self._field = None
        elif depth == self._entry_depth:
            if len(self.entries) >= self.max_entries > 0:
                raise TooManyEntries(
                    f"the feed has more than {self.max_entries} entries (HUB_FEED_MAX_ENTRIES)"
                )
            self.entries.append(entry)
            self._pending = entry
            self._entry = None

    def _chars(self, data: str) -> None:
        self._mark()
        if self._field is not None:
            self._text.append(data)


def _scan(
    body: bytes, content_type: str, max_entries: int = DEFAULT_MAX_ENTRIES
) -> _Scanner | None:
    if not _is_candidate(content_type):
        return None
    scanner = _Scanner(max_entries)
    try:
        scanner.scan(body)
    except (_NotAFeed, expat.ExpatError):
        return None
    if scanner.kind is None or any(e.end < 0 for e in scanner.entries):
        return None
    return scanner


def feed_kind(body: bytes, content_type: str) -> str | None:
    """'atom' / 'rss' / 'rdf' when the body is such a feed, else None.

    Never raises for non-XML; raises HostileXML for entity declarations/external entities.
    """
    scanner = _scan(body, content_type, 0)
    return scanner.kind if scanner is not None else None


def _entry_key(kind: str, parts: dict[str, str], raw: bytes) -> str:
    order = {"atom": ("id",), "rss": ("guid", "link"), "rdf": ("about", "link")}[kind]
    for part in order:
        if parts.get(part):
            return parts[part]
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _ascii_compatible(body: bytes) -> bool:
    head = body[:4]
    return not (head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head)


def diff_feed(
    body: bytes,
    content_type: str,
    previous: Mapping[str, str] | None,
    *,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> FeedDiff | None:
    """None when the body is not an Atom/RSS feed (deliver it whole).

    ``previous`` is the ``entries`` map of the last fetch (None = first fetch: every entry
    counts as new). Linear in the number of entries. Raises HostileXML, and TooManyEntries
    (a HostileXML) when the feed has more than ``max_entries`` entries (0: no limit).
    """
    scanner = _scan(body, content_type, max_entries)
    if scanner is None or scanner.kind is None:
        return None
    kind = scanner.kind
    entries: dict[str, str] = {}
    changed: list[str] = []
    cuts: list[tuple[int, int]] = []
    tidy = _ascii_compatible(body)
    suffix: dict[str, int] = {}  # key -> the last "#n" given to a duplicate of it
    for entry in scanner.entries:
        raw = body[entry.start : entry.end]
        base = _entry_key(kind, entry.key_parts or {}, raw)
        key = base
        if key in entries:  # duplicates: base#2, base#3, ... never counting from 2 again
            n = suffix.get(base, 1)
            while key in entries:  # skips a literal "base#n" once: linear overall
                n += 1
                key = f"{base}#{n}"
            suffix[base] = n
        digest = hashlib.sha256(raw).hexdigest()
        entries[key] = digest
        if previous is None or previous.get(key) != digest:
            changed.append(key)
            continue
        start = entry.start
        while tidy and start > 0 and body[start - 1] in _WHITESPACE:
            start -= 1
        cuts.append((start, entry.end))
    out: list[bytes] = []
    pos = 0
    for start, end in cuts:
        out.append(body[pos:start])
        pos = end
    out.append(body[pos:])
    return FeedDiff(kind=kind, entries=entries, changed=tuple(changed), body=b"".join(out))
