"""Whatever the index answers, the poller never crashes, never delivers garbage, and never moves
its journal position past entries it did not publish."""

from __future__ import annotations

import pytest

from tests.pypi.conftest import follow, serials, wait_pushes
from tests.support.fake_pypi import FakePyPIClient
from tests.support.hubs import RunningHub
from tests.support.subscriber import SubscriberClient
from tests.support.waits import quiet_period


@pytest.mark.parametrize(
    "mode", ["malformed_xml", "html_200", "serial_backwards", "huge", "entity", "fault", "outage"]
)
def test_a_bad_answer_is_counted_and_the_next_good_one_delivers_everything(
    bridge: RunningHub,
    fake_pypi: tuple[str, FakePyPIClient],
    subscriber: SubscriberClient,
    mode: str,
) -> None:
    _, pypi = fake_pypi
    follow(bridge, subscriber, "pypi/changes", "/all")
    pypi.release("before", "1.0")
    wait_pushes(subscriber, "/all", lambda n: len(n) >= 1)
    failed = bridge.metric("broker_hub_polls_total", outcome="failed")
    if mode == "fault":
        pypi.fault(3)
    elif mode == "outage":
        pypi.outage(True)
    else:
        pypi.garbage(mode, count=2, size=80 * 1024 * 1024 if mode == "huge" else None)
    pypi.release("during", "1.0")
    wait_for_failures = wait_pushes  # the same bounded poll, on the metrics
    wait_for_failures(
        subscriber, "/all",
        lambda _: bridge.metric("broker_hub_polls_total", outcome="failed") > failed,
    )  # fmt: skip
    if mode == "outage":
        pypi.outage(False)
    newest = pypi.last_serial()
    got = wait_pushes(subscriber, "/all", lambda n: max(serials(n)) >= newest,
                      timeout=30)  # fmt: skip
    # every serial once, in order: nothing skipped past, nothing delivered twice
    assert serials(got) == sorted(set(serials(got)))
    assert {e["normalized"] for n in got for e in n["entries"]} >= {"before", "during"}
    assert bridge.processes["run"].alive()


def test_an_entry_with_an_invalid_name_is_skipped_and_counted(
    bridge: RunningHub, fake_pypi: tuple[str, FakePyPIClient], subscriber: SubscriberClient
) -> None:
    _, pypi = fake_pypi
    follow(bridge, subscriber, "pypi/changes", "/all")
    pypi.garbage("invalid_name")
    pypi.release("good-one", "1.0")
    newest = pypi.last_serial()
    got = wait_pushes(subscriber, "/all", lambda n: n and n[-1]["until"] >= newest)
    names = {e["project"] for n in got for e in n["entries"]}
    assert names == {"good-one"}  # the entry whose name was replaced is not delivered
    assert bridge.metric("broker_hub_source_entries_total", outcome="invalid") >= 1


def test_journal_outage_falls_back_to_rss_marked_degraded(
    bridge: RunningHub, fake_pypi: tuple[str, FakePyPIClient], subscriber: SubscriberClient
) -> None:
    _, pypi = fake_pypi
    follow(bridge, subscriber, "pypi/changes", "/all")
    pypi.release("first", "1.0")
    wait_pushes(subscriber, "/all", lambda n: len(n) >= 1)
    pypi.outage(True)  # XML-RPC answers 503 HTML pages; RSS still works
    pypi.release("while-down", "2.0")
    got = wait_pushes(subscriber, "/all", lambda n: any(x["degraded"] for x in n), timeout=30)
    degraded = next(n for n in got if n["degraded"])
    [entry] = [e for e in degraded["entries"] if e["normalized"] == "while-down"]
    assert entry["serial"] is None and entry["kind"] == "release_created"
    assert degraded["since"] == degraded["until"] == got[0]["until"]
    pypi.outage(False)
    newest = pypi.last_serial()
    got = wait_pushes(subscriber, "/all", lambda n: max(serials(n), default=0) >= newest,
                      timeout=40)  # fmt: skip
    journal = [n for n in got if not n["degraded"]]
    assert "while-down" in {e["normalized"] for n in journal for e in n["entries"]}


def test_rate_limit_answers_are_honoured(
    bridge: RunningHub, fake_pypi: tuple[str, FakePyPIClient], subscriber: SubscriberClient
) -> None:
    """Over the index's limit (429 + a rate-limit fault, RateLimit-Reset), the poller waits for
    the window instead of hammering, and what changed meanwhile still arrives."""
    _, pypi = fake_pypi
    follow(bridge, subscriber, "pypi/changes", "/all")
    pypi.ratelimit(limit=1, window=3)  # one call per 3 s; the poller would call every 0.2 s
    before = pypi.stats()["xmlrpc_calls"]
    quiet_period(2.0)
    for i in range(3):
        pypi.release(f"limited{i}", "1.0")
    newest = pypi.last_serial()
    wait_pushes(subscriber, "/all", lambda n: max(serials(n), default=0) >= newest, timeout=30)
    outcomes = ("rate_limited", "paced")
    waited = sum(bridge.metric("broker_hub_polls_total", outcome=o) for o in outcomes)
    assert waited >= 1  # refused (429) or paced by RateLimit-Remaining: 0
    calls = pypi.stats()["xmlrpc_calls"] - before
    assert calls <= 6, calls  # not the ~15 of 0.2 s polling over those ~3 s
