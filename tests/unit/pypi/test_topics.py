from __future__ import annotations

import pytest

from broker_hub.pypi.topics import firehose_topic, parse_topic, project_topic, source_of

HUB = "https://hub.example.org/"


def test_topic_urls() -> None:
    assert firehose_topic(HUB) == "https://hub.example.org/pypi/changes"
    assert firehose_topic("https://hub.example.org") == "https://hub.example.org/pypi/changes"
    assert project_topic(HUB, "Foo_Bar") == "https://hub.example.org/pypi/project/foo-bar"
    with pytest.raises(ValueError):
        project_topic(HUB, "not valid!")


@pytest.mark.parametrize(("topic", "parsed"), [
    ("https://hub.example.org/pypi/changes", ("firehose", None)),
    ("https://hub.example.org/pypi/changes?since=10", ("firehose", None)),
    ("https://hub.example.org/pypi/project/foo-bar", ("project", "foo-bar")),
    ("https://hub.example.org/pypi/project/Foo_Bar", None),
    ("https://hub.example.org/pypi/project/", None),
    ("https://hub.example.org/pypi/project/a/b", None),
    ("https://other.example.org/pypi/changes", None),
    ("https://hub.example.org/feed.xml", None),
])
def test_parse_topic(topic: str, parsed: object) -> None:
    assert parse_topic(HUB, topic) == parsed


def test_source_is_the_index_host() -> None:
    assert source_of("https://pypi.org") == "pypi.org"
    assert source_of("http://127.0.0.1:8100/") == "127.0.0.1:8100"
