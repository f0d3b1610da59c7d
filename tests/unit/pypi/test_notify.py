from __future__ import annotations

import json

import pytest

from broker_hub.pypi.changes import Change, parse_entry
from broker_hub.pypi.notify import (
    Round,
    catchup_body,
    firehose_body,
    newest_serials,
    project_bodies,
)

HUB = "https://hub.example.org/"
FIREHOSE = HUB + "pypi/changes"


def topic_for(name: str) -> str:
    return HUB + "pypi/project/" + name


def changes() -> tuple[Change, ...]:
    return (
        parse_entry(["Foo_Bar", "1.2", 1733230000, "new release", 1001]),
        parse_entry(["other", None, 1733230001, "create", 1002]),
        parse_entry(["foo.bar", "1.2", 1733230002, "add py3 file foo_bar-1.2-py3-none-any.whl",
                     1003]),
    )


def test_firehose_body_matches_the_interface() -> None:
    body = firehose_body(Round("pypi.org", 1000, 1004, changes()), FIREHOSE)
    assert b'": ' not in body and b", " not in body  # compact separators
    data = json.loads(body)
    assert data == {
        "source": "pypi.org", "topic": FIREHOSE, "since": 1000, "until": 1004,
        "degraded": False, "previous_serial": 1000,
        "entries": [c.to_json() for c in changes()],
    }
    assert json.loads(firehose_body(Round("pypi.org", 1000, 1004, ()), FIREHOSE,
                                    previous_serial=990))["previous_serial"] == 990


def test_project_bodies_chain_per_topic() -> None:
    round_ = Round("pypi.org", 1000, 1004, changes())
    bodies = project_bodies(round_, topic_for, last_until={"foo-bar": 950},
                            previous_serial={"foo-bar": 940})
    assert sorted(bodies) == ["foo-bar", "other"]
    foo = json.loads(bodies["foo-bar"])
    assert (foo["topic"], foo["since"], foo["until"], foo["previous_serial"]) == (
        topic_for("foo-bar"), 950, 1004, 940)
    assert [e["serial"] for e in foo["entries"]] == [1001, 1003]
    other = json.loads(bodies["other"])
    assert (other["since"], other["previous_serial"]) == (1000, None)
    assert newest_serials(round_.changes) == {"foo-bar": 1003, "other": 1002}


def test_degraded_round() -> None:
    rss = Change(None, "Foo_Bar", "foo-bar", "2.0", "new release", "release_created", None, 5)
    round_ = Round("pypi.org", 1004, 1004, (rss,), degraded=True)
    data = json.loads(firehose_body(round_, FIREHOSE))
    assert data["degraded"] is True and data["entries"][0]["serial"] is None
    assert json.loads(project_bodies(round_, topic_for)["foo-bar"])["degraded"] is True


@pytest.mark.parametrize(("since", "until", "degraded"), [(10, 5, False), (1000, 1004, True),
                                                          (1001, 1004, False)])
def test_round_refuses_inconsistent_serials(since: int, until: int, degraded: bool) -> None:
    with pytest.raises(ValueError):
        Round("pypi.org", since, until, changes(), degraded=degraded)


def test_catchup_body() -> None:
    entries = [c.to_json() for c in changes()]
    body = catchup_body(source="pypi.org", topic=FIREHOSE, since=1000, until=1003,
                        entries=[changes()[0], *entries[1:]], next_url=FIREHOSE + "?since=1003")
    assert json.loads(body) == {"source": "pypi.org", "topic": FIREHOSE, "since": 1000,
                                "until": 1003, "entries": entries,
                                "next": FIREHOSE + "?since=1003"}
    last = json.loads(catchup_body(source="pypi.org", topic=FIREHOSE, since=1003, until=1003,
                                   entries=[], next_url=None))
    assert last["next"] is None and last["entries"] == []
