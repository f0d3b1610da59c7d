"""Unit tests for broker_hub.feeds (Atom/RSS diffing)."""

from __future__ import annotations

import hashlib
import time

import feedparser
import pytest

from broker_hub.feeds import FeedDiff, HostileXML, TooManyEntries, diff_feed, feed_kind
from tests.support.hostile_xml import billion_laughs

ATOM = "application/atom+xml"
RSS = "application/rss+xml"


def atom(*entries: tuple[str, str], title: str = "Example Feed") -> bytes:
    body = "".join(
        f"\n  <entry>\n    <id>{eid}</id>\n    <title>{t}</title>\n"
        f"    <updated>2024-01-01T00:00:00Z</updated>\n  </entry>"
        for eid, t in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom">\n'
        f"  <title>{title}</title>\n  <id>urn:feed:1</id>\n"
        '  <link rel="self" href="http://example.com/feed"/>\n'
        f"  <updated>2024-01-01T00:00:00Z</updated>{body}\n</feed>\n"
    ).encode()


def rss(*items: str, encoding: str = "utf-8", doctype: str = "") -> bytes:
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n{doctype}'
        '<rss version="2.0"><channel>\n  <title>Chan</title>\n'
        "  <link>http://example.com/</link>\n  <description>d</description>\n"
        + "".join(f"  {item}\n" for item in items)
        + "</channel></rss>\n"
    )
    return text.encode(encoding)


def item(guid: str | None, link: str, title: str) -> str:
    g = f"<guid>{guid}</guid>" if guid is not None else ""
    return f"<item><title>{title}</title><link>{link}</link>{g}</item>"


def parsed(diff: FeedDiff) -> feedparser.FeedParserDict:
    result = feedparser.parse(diff.body)
    assert not result.bozo, result.get("bozo_exception")
    return result


def test_atom_first_fetch_everything_new() -> None:
    body = atom(("urn:a", "A"), ("urn:b", "B"))
    diff = diff_feed(body, ATOM, None)
    assert diff is not None and diff.kind == "atom"
    assert diff.changed == ("urn:a", "urn:b")
    assert diff.body == body
    raw_a = body[body.index(b"<entry>") : body.index(b"</entry>") + len(b"</entry>")]
    assert diff.entries["urn:a"] == hashlib.sha256(raw_a).hexdigest()


def test_atom_unchanged_gives_zero_entries() -> None:
    body = atom(("urn:a", "A"), ("urn:b", "B"))
    first = diff_feed(body, ATOM, None)
    assert first is not None
    diff = diff_feed(body, ATOM, first.entries)
    assert diff is not None
    assert diff.changed == ()
    assert b"<entry" not in diff.body
    out = parsed(diff)
    assert out.version == "atom10" and out.entries == []
    assert out.feed.title == "Example Feed" and out.feed.id == "urn:feed:1"
    assert diff.body.endswith(b"<updated>2024-01-01T00:00:00Z</updated>\n</feed>\n")


def test_atom_one_changed_one_new_in_order() -> None:
    old = atom(("urn:a", "A"), ("urn:b", "B"), ("urn:c", "C"))
    prev = diff_feed(old, ATOM, None)
    assert prev is not None
    new = atom(("urn:new", "N"), ("urn:a", "A"), ("urn:b", "B changed"), ("urn:c", "C"))
    diff = diff_feed(new, ATOM, prev.entries)
    assert diff is not None
    assert diff.changed == ("urn:new", "urn:b")
    assert list(diff.entries) == ["urn:new", "urn:a", "urn:b", "urn:c"]
    out = parsed(diff)
    assert out.version == "atom10"
    assert [e.id for e in out.entries] == ["urn:new", "urn:b"]
    assert out.entries[1].title == "B changed"
    assert out.feed.title == "Example Feed" and out.feed.id == "urn:feed:1"
    # feed-level bytes are kept exactly
    head = new[: new.index(b"<updated>") + len(b"<updated>2024-01-01T00:00:00Z</updated>")]
    assert diff.body.startswith(head)


def test_rss_with_guid() -> None:
    old = rss(item("g1", "http://e/1", "one"), item("g2", "http://e/2", "two"))
    prev = diff_feed(old, RSS, None)
    assert prev is not None and prev.kind == "rss"
    assert list(prev.entries) == ["g1", "g2"]
    new = rss(
        item("g3", "http://e/3", "three"),
        item("g1", "http://e/1", "one"),
        item("g2", "http://e/2", "two!"),
    )
    diff = diff_feed(new, "application/rss+xml; charset=utf-8", prev.entries)
    assert diff is not None and diff.changed == ("g3", "g2")
    out = parsed(diff)
    assert out.version == "rss20"
    assert [e.id for e in out.entries] == ["g3", "g2"]
    assert out.feed.title == "Chan"


def test_rss_without_guid_uses_link() -> None:
    old = rss(item(None, "http://e/1", "one"), item(None, "http://e/2", "two"))
    prev = diff_feed(old, "text/xml", None)
    assert prev is not None and list(prev.entries) == ["http://e/1", "http://e/2"]
    new = rss(item(None, "http://e/1", "one"), item(None, "http://e/2", "two (edited)"))
    diff = diff_feed(new, "text/xml", prev.entries)
    assert diff is not None and diff.changed == ("http://e/2",)
    assert [e.link for e in parsed(diff).entries] == ["http://e/2"]


def test_rss_without_guid_or_link_hashes_bytes_and_duplicates_suffixed() -> None:
    body = rss("<item><title>x</title></item>", item("g", "l", "a"), item("g", "l", "b"))
    diff = diff_feed(body, RSS, None)
    assert diff is not None
    keys = list(diff.entries)
    assert keys[0].startswith("sha256:") and keys[1:] == ["g", "g#2"]


def test_rss_plain_doctype_is_fine() -> None:
    doctype = (
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        '"http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
    )
    body = rss(item("g1", "http://e/1", "one"), doctype=doctype)
    assert feed_kind(body, RSS) == "rss"
    assert feed_kind(rss(doctype="<!DOCTYPE rss>\n"), RSS) == "rss"


RDF_DOC = """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns="http://purl.org/rss/1.0/">
  <channel rdf:about="http://example.com/">
    <title>RDF Chan</title><link>http://example.com/</link><description>d</description>
    <items><rdf:Seq><rdf:li resource="http://e/1"/><rdf:li resource="http://e/2"/></rdf:Seq></items>
  </channel>
  <item rdf:about="http://e/1"><title>one</title><link>http://e/1</link></item>
  <item rdf:about="http://e/2"><title>{two}</title><link>http://e/2</link></item>
</rdf:RDF>
"""


def test_rss10_rdf() -> None:
    old = RDF_DOC.format(two="two").encode()
    prev = diff_feed(old, "application/rdf+xml", None)
    assert prev is not None and prev.kind == "rdf"
    assert list(prev.entries) == ["http://e/1", "http://e/2"]
    diff = diff_feed(RDF_DOC.format(two="TWO").encode(), "application/xml", prev.entries)
    assert diff is not None and diff.changed == ("http://e/2",)
    out = parsed(diff)
    assert out.version == "rss10"
    assert [e.title for e in out.entries] == ["TWO"]
    assert out.feed.title == "RDF Chan"


def test_self_closing_entries() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>urn:f</id>'
        b'<entry/><entry a="x&gt;y&apos;/>"/><entry><id>urn:z</id></entry></feed>'
    )
    first = diff_feed(body, ATOM, None)
    assert first is not None and len(first.entries) == 3
    diff = diff_feed(body, ATOM, first.entries)
    assert diff is not None and diff.changed == ()
    assert diff.body == (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>urn:f</id></feed>'
    )
    keys = list(first.entries)
    only_z = {k: v for k, v in first.entries.items() if k != "urn:z"}
    diff = diff_feed(body, ATOM, only_z)
    assert diff is not None and diff.changed == ("urn:z",)
    assert diff.body.endswith(b"<id>urn:f</id><entry><id>urn:z</id></entry></feed>")
    assert keys[0] != keys[1]


def test_iso_8859_1_feed() -> None:
    old = rss(item("g1", "http://e/1", "caf\u00e9"), encoding="iso-8859-1")
    assert b"caf\xe9" in old
    prev = diff_feed(old, RSS, None)
    assert prev is not None
    new = rss(
        item("g\u00e9", "http://e/2", "na\u00efve \u00bd"),
        item("g1", "http://e/1", "caf\u00e9"),
        encoding="iso-8859-1",
    )
    diff = diff_feed(new, RSS, prev.entries)
    assert diff is not None and diff.changed == ("g\u00e9",)
    assert diff.body.startswith(b'<?xml version="1.0" encoding="iso-8859-1"?>')
    out = parsed(diff)
    assert [e.title for e in out.entries] == ["na\u00efve \u00bd"]


BILLION_LAUGHS = billion_laughs(
    '<rss version="2.0"><channel><title>&lol9;</title></channel></rss>\n'
).encode()


@pytest.mark.parametrize(
    "doc",
    [
        BILLION_LAUGHS,
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<rss><channel><title>&x;</title></channel></rss>",
        b'<!DOCTYPE rss [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><rss/>',
        b'<!DOCTYPE feed [<!ENTITY u SYSTEM "http://x/" NDATA gif>]>'
        b'<feed xmlns="http://www.w3.org/2005/Atom"/>',
    ],
    ids=["billion-laughs", "xxe", "param-entity", "unparsed-entity"],
)
def test_hostile_xml_refused_fast(doc: bytes) -> None:
    t0 = time.monotonic()
    with pytest.raises(HostileXML):
        diff_feed(doc, RSS, None)
    with pytest.raises(HostileXML):
        feed_kind(doc, "text/xml")
    assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize("ctype", ["text/plain", "application/json", "text/html", ""])
def test_non_xml_content_types_are_not_parsed(ctype: str) -> None:
    assert diff_feed(atom(("urn:a", "A")), ctype, None) is None
    assert feed_kind(BILLION_LAUGHS, ctype) is None  # not even parsed


@pytest.mark.parametrize(
    "body",
    [
        b"<feed xmlns='http://www.w3.org/2005/Atom'><entry><id>x</id></feed>",
        b"not xml at all",
        b"",
        b"<rss><channel><item><media:content/></item></channel></rss>",  # unbound prefix
    ],
)
def test_malformed_xml_is_delivered_whole(body: bytes) -> None:
    assert diff_feed(body, ATOM, None) is None
    assert feed_kind(body, ATOM) is None


def test_other_xml_is_not_a_feed() -> None:
    assert diff_feed(b"<html><body/></html>", "application/xhtml+xml", None) is None
    assert feed_kind(b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml") is None


def test_feed_kind() -> None:
    assert feed_kind(atom(), "application/atom+xml;charset=utf-8") == "atom"
    assert feed_kind(rss(), "application/rss+xml") == "rss"
    assert feed_kind(RDF_DOC.format(two="x").encode(), "text/xml") == "rdf"


def test_utf16_feed() -> None:
    text = atom(("urn:a", "A"), ("urn:b", "B")).decode().replace("utf-8", "utf-16")
    body = text.encode("utf-16")
    prev = diff_feed(body, ATOM, None)
    assert prev is not None and list(prev.entries) == ["urn:a", "urn:b"]
    diff = diff_feed(body, ATOM, {"urn:a": prev.entries["urn:a"]})
    assert diff is not None and diff.changed == ("urn:b",)
    assert [e.id for e in feedparser.parse(diff.body).entries] == ["urn:b"]


# -- issue 15: duplicate keys are numbered in linear time; the entry count is bounded --------


def _duplicates(n: int) -> bytes:
    return b'<feed xmlns="http://www.w3.org/2005/Atom">' + b"<entry/>" * n + b"</feed>"


def test_duplicate_keys_are_numbered_in_linear_time() -> None:
    # Counting up from 2 for every duplicate took 20 s for 16,000 entries here and grows with
    # the square: 80,000 would take about 8 minutes, far past the test timeout. Linear: < 1 s.
    n = 80_000
    diff = diff_feed(_duplicates(n), ATOM, None, max_entries=n)
    assert diff is not None and len(diff.entries) == n
    base = next(iter(diff.entries))
    assert f"{base}#2" in diff.entries and f"{base}#{n}" in diff.entries


def test_duplicate_numbering_skips_literal_suffixed_keys() -> None:
    body = atom(("x#2", "literal"), ("x", "a"), ("x", "b"), ("x#3", "literal too"), ("x", "c"))
    diff = diff_feed(body, ATOM, None)
    assert diff is not None
    # same keys as before the fix: the smallest free "#n" from 2 up
    assert list(diff.entries) == ["x#2", "x", "x#3", "x#3#2", "x#4"]


def test_a_feed_over_the_entry_limit_is_refused() -> None:
    with pytest.raises(TooManyEntries, match="more than 100 entries"):
        diff_feed(_duplicates(101), ATOM, None, max_entries=100)
    assert isinstance(TooManyEntries("x"), HostileXML)  # the fetcher refuses it like a bomb
    diff = diff_feed(_duplicates(100), ATOM, None, max_entries=100)
    assert diff is not None and len(diff.entries) == 100
    assert feed_kind(_duplicates(20_000), ATOM) == "atom"  # sniffing is not limited
