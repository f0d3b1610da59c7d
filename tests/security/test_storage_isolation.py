"""Storage under hostile load (issue 15), on SQLite and PostgreSQL: limits enforced where a
subscription is written (never overshot by concurrent subscribes), counted per address; pings
of topics nobody subscribes store nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from broker_hub.storage import Storage, SubscriptionLimits, VerifiedChange

NOW = 1_700_000_000.0
TOPIC = "https://pypi.example/simple/foo/"


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    store = Storage.from_url(url)
    store.create_schema()
    try:
        yield store
    finally:
        store.close()


def _concurrently(n: int, work):
    """Run ``work(i)`` on ``n`` threads released together; their results (or exceptions)."""
    results: list[object] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int, store: Storage) -> None:
        try:
            barrier.wait(timeout=20)
            results[i] = work(i, store)
        except BaseException as exc:  # noqa: BLE001 - checked by the caller
            results[i] = exc
        finally:
            store.close()

    return results, run


def _run_threads(n: int, run, storage: Storage) -> None:
    threads = [threading.Thread(target=run, args=(i, storage)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)


def test_concurrent_subscribes_never_overshoot_the_topic_limit(storage: Storage) -> None:
    # Before: the limit was read when each intent arrived; 40 at once to a topic limited to
    # 5 all saw 0 and all became active.
    limits = SubscriptionLimits(per_topic=5)
    results, run = _concurrently(
        40,
        lambda i, store: store.apply_verified(
            [VerifiedChange("subscribe", TOPIC, f"https://10.0.{i}.1/cb", None, 3600)],
            NOW,
            limits=limits,
        ),
    )
    _run_threads(40, run, storage)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert storage.count_for_topic(TOPIC, NOW) == 5
    assert sum(1 for r in results if r == []) == 5  # five written, 35 refused
    assert sum(1 for r in results if r and len(r) == 1) == 35


def test_concurrent_subscribes_never_overshoot_the_address_limit(storage: Storage) -> None:
    limits = SubscriptionLimits(per_address=3)
    spellings = ["127.0.0.1", "127.1", "2130706433", "0x7f.1", "127.0.0.01", "localhost"]
    results, run = _concurrently(
        24,
        lambda i, store: store.activate(
            f"https://t{i}.example/feed",
            f"http://{spellings[i % len(spellings)]}:{8000 + i}/cb",
            None,
            3600,
            NOW,
            limits=limits,
        ),
    )
    _run_threads(24, run, storage)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(1 for r in results if r is not None) == 3
    assert storage.count_for_address("127.0.0.1", NOW) == 3


def test_a_resubscribe_at_the_limit_is_renewed_not_refused(storage: Storage) -> None:
    limits = SubscriptionLimits(per_topic=1, per_address=1)
    first = storage.activate(TOPIC, "http://127.0.0.1:9/cb", "a", 60, NOW, limits=limits)
    assert first is not None
    again = storage.activate(TOPIC, "http://127.0.0.1:9/cb", "b", 600, NOW + 1, limits=limits)
    assert again is not None and again.id == first.id and again.secret == "b"
    assert storage.activate(TOPIC, "http://127.1:10/cb", None, 60, NOW, limits=limits) is None
    other = "https://other.example/feed"
    assert storage.activate(other, "http://2130706433/cb", None, 60, NOW, limits=limits) is None
    # expired subscriptions do not count
    assert storage.activate(other, "http://[::ffff:7f00:1]/x", None, 60, NOW + 700, limits=limits)


def test_pings_of_a_topic_nobody_subscribes_store_nothing(storage: Storage) -> None:
    assert storage.record_ping("https://nobody.example/feed", NOW) == (0, False)
    assert storage.topic_state("https://nobody.example/feed") is None
    assert storage.topics_summary() == []
    storage.activate(TOPIC, "https://mirror.example/cb", None, 60, NOW)
    assert storage.record_ping(TOPIC, NOW) == (1, True)
    assert storage.has_subscribers(TOPIC, NOW)
    # the subscription expired: pings are ignored again, the row is not touched
    assert storage.record_ping(TOPIC, NOW + 61) == (0, False)
    assert not storage.has_subscribers(TOPIC, NOW + 61)
    assert storage.topic_state(TOPIC).ping_seq == 1
