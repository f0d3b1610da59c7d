"""Unit tests for broker_hub.topology: names, the delay ladder and delay queue arguments."""

from __future__ import annotations

import pytest

from broker_hub import topology
from broker_hub.topology import DELAY_LADDER_MS, delay_queue, delay_queue_name, delay_rung_ms


def test_exchange_is_durable_direct_named_after_namespace() -> None:
    ex = topology.exchange("ns1")
    assert ex.name == "ns1"
    assert ex.type == "direct"
    assert ex.durable is True


@pytest.mark.parametrize("target", topology.TARGETS)
def test_work_queue_names_and_bindings(target: str) -> None:
    q = topology.queue("ns1", target)
    assert q.name == f"ns1.{target}" == topology.queue_name("ns1", target)
    assert q.routing_key == target
    assert q.exchange.name == "ns1"
    assert q.durable is True


def test_work_queues_cover_every_target() -> None:
    names = [q.name for q in topology.work_queues("x")]
    assert names == ["x.fetch", "x.verify", "x.deliver", "x.parked"]


def test_ladder_is_sorted() -> None:
    assert list(DELAY_LADDER_MS) == sorted(DELAY_LADDER_MS)
    assert len(set(DELAY_LADDER_MS)) == len(DELAY_LADDER_MS)


@pytest.mark.parametrize(
    ("delay", "rung"),
    [
        (0.0, 250),
        (0.001, 250),
        (0.25, 250),
        (0.3, 1_000),
        (1.0, 1_000),
        (1.2, 5_000),
        (5.0, 5_000),
        (29.0, 30_000),
        (30.0, 30_000),
        (31.0, 120_000),
        (600.0, 600_000),
        (3599.0, 3_600_000),
        (6 * 3600.0, 21_600_000),
        (6 * 3600.0 + 1, 21_600_000),
        (10 * 86400.0, 21_600_000),
    ],
)
def test_delay_rung(delay: float, rung: int) -> None:
    assert delay_rung_ms(delay) == rung


@pytest.mark.parametrize(("delay", "rung"), [(0.2501, 1_000), (1.0005, 5_000), (30.0009, 120_000)])
def test_delay_rung_rounds_fractional_milliseconds_up(delay: float, rung: int) -> None:
    # A rung must be able to hold the whole delay: 250.1 ms does not fit in the 250 ms rung.
    assert delay_rung_ms(delay) == rung


def test_delay_rung_holds_every_delay_below_the_top() -> None:
    for ms in range(1, 40_000, 37):
        delay = ms / 1000 + 0.0004
        rung = delay_rung_ms(delay)
        assert rung >= delay * 1000
        smaller = [r for r in DELAY_LADDER_MS if r < rung]
        assert not smaller or smaller[-1] < delay * 1000


@pytest.mark.parametrize("target", topology.TARGETS)
def test_delay_queue_arguments(target: str) -> None:
    q = delay_queue("ns2", target, 5_000)
    assert q.name == delay_queue_name("ns2", target, 5_000) == f"ns2.{target}.delay.5000"
    assert q.routing_key == q.name
    assert q.exchange.name == ""  # default exchange: routed by queue name
    assert q.durable is True
    assert q.queue_arguments == {
        "x-message-ttl": 5_000,
        "x-dead-letter-exchange": "ns2",
        "x-dead-letter-routing-key": target,
    }


def test_delay_queues_of_different_rungs_differ() -> None:
    names = {delay_queue("n", "deliver", r).name for r in DELAY_LADDER_MS}
    assert len(names) == len(DELAY_LADDER_MS)
