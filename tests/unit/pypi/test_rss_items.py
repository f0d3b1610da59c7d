from __future__ import annotations

from broker_hub.pypi.rss import SEEN_LIMIT, RssFallback, release_from_link


def test_release_from_link_and_title() -> None:
    assert release_from_link("https://pypi.org/project/Foo_Bar/1.2/", "x") == ("Foo_Bar", "1.2")
    assert release_from_link("https://pypi.org/elsewhere", "Foo_Bar 1.2") == ("Foo_Bar", "1.2")
    assert release_from_link("https://pypi.org/elsewhere", "nothing") is None


def test_state_round_trips_and_tolerates_junk() -> None:
    rss = RssFallback("https://pypi.org", user_agent="test/1",
                      state={"etag": '"abc"', "last_modified": 5, "seen": ["a", 3, "b"]})
    assert rss.export_state() == {"version": 1, "etag": '"abc"', "last_modified": None,
                                  "primed": True, "seen": ["a", "b"]}
    assert RssFallback("https://pypi.org", user_agent="t/1", state={"seen": []}).primed is False
    assert RssFallback("https://pypi.org", user_agent="t/1", state={"primed": True}).primed
    rss.import_state({"seen": [str(i) for i in range(SEEN_LIMIT + 50)]})
    assert len(rss.export_state()["seen"]) == SEEN_LIMIT
    assert rss.url == "https://pypi.org/rss/updates.xml"

