"""The PyPI bridge end to end: the fake index's journal -> the hub's poller -> signed JSON
pushes to real HTTP subscribers, per project and on the firehose."""

from __future__ import annotations

import itertools

import requests

from tests.pypi.conftest import USER_AGENT, follow, pushes, serials, wait_pushes
from tests.support.fake_pypi import FakePyPIClient
from tests.support.hubs import RunningHub, quiet_period
from tests.support.subscriber import SubscriberClient


def kinds(notification: dict) -> list[str]:
    return [e["kind"] for e in notification["entries"]]


def test_release_late_wheel_yank_removal_reach_the_project_topic(
    bridge: RunningHub, fake_pypi: tuple[str, FakePyPIClient], subscriber: SubscriberClient
) -> None:
    _, pypi = fake_pypi
    follow(bridge, subscriber, "pypi/project/foo-bar", "/foo")
    follow(bridge, subscriber, "pypi/changes", "/all")
    pypi.release("Foo_Bar", "1.0")
    pypi.release("unrelated", "3.0")
    first = wait_pushes(subscriber, "/foo", lambda n: len(n) >= 1)[0]
    assert first["source"].startswith("127.0.0.1:") and first["degraded"] is False
    assert {e["normalized"] for e in first["entries"]} == {"foo-bar"}
    assert "release_created" in kinds(first) and "file_added" in kinds(first)
    assert first["previous_serial"] is None and first["_sequence"] == 1

    pypi.add_file("Foo_Bar", "1.0", kind="wheel", tag="cp311-cp311-manylinux_2_17_x86_64")
    pypi.yank("Foo_Bar", "1.0", "broken")
    pypi.remove_release("Foo_Bar", "1.0")
    got = wait_pushes(
        subscriber, "/foo", lambda n: "release_removed" in [k for x in n for k in kinds(x)]
    )
    assert [k for n in got[1:] for k in kinds(n)] == ["file_added", "yanked", "release_removed"]
    late = got[1]["entries"][0]
    assert late["filename"].endswith("manylinux_2_17_x86_64.whl") and late["version"] == "1.0"
    # the chain: each notification starts where the one before ended, sequences count up
    for before, after in itertools.pairwise(got):
        assert after["since"] == before["until"]
        assert after["previous_serial"] == before["entries"][-1]["serial"]
    assert [n["_sequence"] for n in got] == list(range(1, len(got) + 1))
    # the firehose has everything, once, in journal order; the project topic only its project
    newest = pypi.last_serial()
    everything = wait_pushes(subscriber, "/all", lambda n: max(serials(n), default=0) >= newest)
    assert serials(everything) == sorted(set(serials(everything)))
    assert "unrelated" in {e["normalized"] for n in everything for e in n["entries"]}


def test_topic_page_and_catch_up(
    bridge: RunningHub, fake_pypi: tuple[str, FakePyPIClient], subscriber: SubscriberClient
) -> None:
    _, pypi = fake_pypi
    follow(bridge, subscriber, "pypi/changes", "/all")
    for i in range(5):
        pypi.release(f"proj{i}", "1.0")
    newest = pypi.last_serial()
    wait_pushes(subscriber, "/all", lambda n: max(serials(n), default=0) >= newest)
    page = requests.get(bridge.url + "pypi/project/proj3", timeout=10)
    assert page.status_code == 200 and 'rel="hub"' in page.headers["Link"]
    assert {e["normalized"] for e in page.json()["entries"]} == {"proj3"}
    # catch-up, paged
    seen, url = [], bridge.url + "pypi/changes?since=0&limit=4"
    while url:
        body = requests.get(url, timeout=10).json()
        seen += [e["serial"] for e in body["entries"]]
        url = body["next"]
    assert seen == serials(pushes(subscriber, "/all"))
    assert requests.get(bridge.url + "pypi/changes?since=-1", timeout=10).status_code == 400
    assert set(pypi.stats()["user_agents"]) == {USER_AGENT}  # it says who it is, every call
    # /status and /status.json show how far the hub has read the journal
    [source] = requests.get(bridge.url + "status.json", timeout=10).json()["sources"]
    assert source["serial"] == newest and source["lag_seconds"] == 0 and not source["last_error"]
    assert "Source index (PyPI bridge)" in requests.get(bridge.url + "status", timeout=10).text
    moved = requests.get(bridge.url + "pypi/project/Proj3", timeout=10, allow_redirects=False)
    assert moved.status_code == 301 and moved.headers["Location"].endswith("/pypi/project/proj3")


def test_a_ping_for_a_hub_topic_fetches_nothing(
    bridge: RunningHub, subscriber: SubscriberClient
) -> None:
    follow(bridge, subscriber, "pypi/changes", "/all")
    bridge.publish(bridge.url + "pypi/changes")
    quiet_period(1.0)
    assert subscriber.posts("/all") == []
    bad = bridge.post(mode="subscribe", topic=bridge.url + "pypi/project/Foo_Bar",
                      callback=subscriber.url("/x"))  # fmt: skip
    assert bad.status_code == 400 and "normalized" in bad.text
