"""The circuit breaker, the bounded mirror labels and the multiprocess clean-up (pure parts)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from broker_hub.breaker import Breaker, BreakerPolicy, mirror_state
from broker_hub.metrics import OTHER, Metrics, MirrorLabels
from broker_hub.metrics_multiprocess import clean_dead_processes, reset_multiprocess_dir

POLICY = BreakerPolicy(failure_threshold=3, base_pause=10, max_pause=40)


def test_breaker_opens_probes_and_closes() -> None:
    b = Breaker(POLICY)
    for t in (0, 1, 2):
        assert b.allow("m", t)
        b.record("m", False, t)
    assert b.state("m", 3) == "paused"
    assert not b.allow("m", 5)  # paused: held back, never dropped by the breaker itself
    assert b.wait("m", 5) == 7
    assert b.allow("m", 12)  # the one probe
    assert not b.allow("m", 12)  # a second one waits for the probe's outcome
    b.record("m", False, 12)  # probe failed: the pause doubles
    assert not b.allow("m", 12 + 19)
    assert b.allow("m", 12 + 20)
    b.record("m", True, 33)
    assert b.state("m", 33) == "healthy" and b.allow("m", 33)


def test_pause_grows_to_a_cap_and_state_from_storage() -> None:
    assert [POLICY.pause(n) for n in (2, 3, 4, 5, 9)] == [0, 10, 20, 40, 40]
    assert mirror_state(0, None, 0, POLICY) == "healthy"
    assert mirror_state(2, 100, 101, POLICY) == "failing"
    assert mirror_state(3, 100, 105, POLICY) == "paused"
    assert mirror_state(3, 100, 111, POLICY) == "failing"  # pause over: probing


def test_mirror_labels_are_bounded_and_pruned() -> None:
    labels = MirrorLabels(limit=2)
    assert [labels.label(h) for h in ("a:1", "b:2", "c:3", "a:1")] == ["a:1", "b:2", OTHER, "a:1"]
    metrics = Metrics(CollectorRegistry())
    for host in ("a:1", "b:2", OTHER):
        metrics.deliveries.labels(host, "delivered").inc()
        metrics.delivery_latency.labels(host).observe(0.1)
    removed = labels.refresh(["c:3", "b:2", "a:1"])
    assert removed == {"a:1"}
    metrics.prune_mirrors(removed)
    text = generate_latest(metrics.registry).decode()
    assert 'mirror="a:1"' not in text and 'mirror="b:2"' in text
    assert labels.label("a:1") == OTHER and labels.label("c:3") == "c:3"


def test_every_process_exports_up_build_info_and_process_metrics() -> None:
    text = generate_latest(Metrics(CollectorRegistry(), process="deliverer").registry).decode()
    assert 'broker_hub_up{process="deliverer"} 1.0' in text
    assert 'broker_hub_build_info{process="deliverer",version="' in text
    assert "process_resident_memory_bytes" in text


def test_multiprocess_dir_reset_and_dead_workers(tmp_path: Path) -> None:
    directory = tmp_path / "prom"
    reset_multiprocess_dir(str(directory))
    (directory / "counter_111.db").write_bytes(b"")
    (directory / "gauge_livesum_111.db").write_bytes(b"")
    (directory / "gauge_livesum_222.db").write_bytes(b"")
    assert clean_dead_processes(str(directory), alive=lambda pid: pid == 222) == [111]
    assert sorted(p.name for p in directory.iterdir()) == ["counter_111.db",
                                                           "gauge_livesum_222.db"]
    reset_multiprocess_dir(str(directory))
    assert list(directory.iterdir()) == []
