"""The bridge in split mode on the real RabbitMQ and PostgreSQL: a 60,000-entry backlog, the
poller killed with SIGKILL mid-backlog, two pollers at once."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pypi.conftest import bridge_env, follow, serials, wait_pushes
from tests.support.fake_pypi import FakePyPIClient
from tests.support.hubs import RunningHub, split
from tests.support.processes import wait_for
from tests.support.subscriber import SubscriberClient

BACKLOG = 60_000


@pytest.fixture
def split_bridge(tmp_path: Path, fake_pypi: tuple[str, FakePyPIClient]) -> Iterator[RunningHub]:
    env = bridge_env(fake_pypi[0], HUB_PYPI_START_SERIAL="0", HUB_DELIVERY_MAX_ATTEMPTS="8")
    with split(tmp_path, **env) as hub:
        yield hub


def journal(pypi: FakePyPIClient, index_url: str) -> list[int]:
    """Every serial the fake index's journal holds, from its own XML-RPC API."""
    import xmlrpc.client

    proxy = xmlrpc.client.ServerProxy(index_url + "/pypi")
    out: list[int] = []
    while True:
        page = proxy.changelog_since_serial(out[-1] if out else 0)
        if not page:
            return out
        out += [entry[4] for entry in page]


def test_backlog_is_paged_chained_and_complete(
    split_bridge: RunningHub, fake_pypi: tuple[str, FakePyPIClient], subscriber: SubscriberClient
) -> None:
    index_url, pypi = fake_pypi
    follow(split_bridge, subscriber, "pypi/changes", "/all")
    follow(split_bridge, subscriber, "pypi/project/backlog-7", "/one")
    pypi.backlog(BACKLOG, projects=500)
    expected = journal(pypi, index_url)
    split_bridge.start("poller")
    got = wait_pushes(subscriber, "/all", lambda n: n and n[-1]["until"] >= expected[-1],
                      timeout=120)  # fmt: skip
    assert serials(got) == expected  # every entry once, in journal order
    assert got[0]["since"] == 0
    for before, after in itertools.pairwise(got):
        assert after["since"] == before["until"]  # no gap between notifications
    assert [n["_sequence"] for n in got] == list(range(1, len(got) + 1))
    assert max(len(n["entries"]) for n in got) <= 1000
    one = wait_pushes(subscriber, "/one", lambda n: len(n) >= 1)
    assert {e["normalized"] for n in one for e in n["entries"]} == {"backlog-7"}


def test_poller_killed_mid_backlog_loses_nothing(
    split_bridge: RunningHub, fake_pypi: tuple[str, FakePyPIClient], subscriber: SubscriberClient
) -> None:
    index_url, pypi = fake_pypi
    follow(split_bridge, subscriber, "pypi/changes", "/all")
    pypi.backlog(BACKLOG // 2, projects=200)
    expected = journal(pypi, index_url)
    storage = split_bridge.storage
    assert storage is not None
    poller = split_bridge.start("poller")
    source = fake_pypi[0].removeprefix("http://")

    def midway() -> bool:
        state = storage.source_state(source)
        return bool(state and state.last_serial and 0 < state.last_serial < expected[-1])

    wait_for(midway, timeout=60, interval=0.01, message="the poller to be midway")
    split_bridge.kill("poller")  # SIGKILL: no graceful anything
    assert not poller.alive()
    split_bridge.start("poller")
    got = wait_pushes(subscriber, "/all", lambda n: n and n[-1]["until"] >= expected[-1],
                      timeout=120)  # fmt: skip
    delivered = collections.Counter(serials(got))
    assert sorted(delivered) == expected  # nothing lost
    twice = [s for s, n in delivered.items() if n > 1]
    assert len(twice) <= 1000  # at most the round in flight when it died
    assert storage.source_state(source).last_serial == expected[-1]


def test_two_pollers_publish_each_change_once(
    split_bridge: RunningHub, fake_pypi: tuple[str, FakePyPIClient], subscriber: SubscriberClient
) -> None:
    index_url, pypi = fake_pypi
    follow(split_bridge, subscriber, "pypi/changes", "/all")
    first = split_bridge.start("poller")
    second = split_bridge.start("poller")  # the first keeps running (and is scraped too)
    for i in range(10):
        pypi.release(f"pkg{i}", "1.0")
    expected = journal(pypi, index_url)
    got = wait_pushes(subscriber, "/all", lambda n: n and n[-1]["until"] >= expected[-1],
                      timeout=60)  # fmt: skip
    assert serials(got) == expected  # each change once, though two pollers ran
    assert first.alive() and second.alive()
    # one of them waited for the other's lease
    assert split_bridge.metric("broker_hub_polls_total", outcome="standby") > 0
