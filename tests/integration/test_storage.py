"""broker_hub.storage against real databases: the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from broker_hub.storage import Notification, Storage, Subscription, TopicState

T = "https://pypi.example/simple/foo/"
T2 = "https://pypi.example/simple/bar/"
NOW = 1_700_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def storage(database_url: str) -> Iterator[Storage]:
    store = Storage.from_url(database_url)
    store.create_schema()
    store.create_schema()  # idempotent
    try:
        yield store
    finally:
        store.close()


def subscribed(storage: Storage, *topics: str) -> None:
    """Give each topic an active subscription: pings of topics nobody subscribes are ignored."""
    for topic in topics:
        storage.activate(topic, "https://mirror.example/cb", None, 10**10, NOW)


def fetch(storage: Storage, topic: str, seq: int, marker: str) -> None:
    storage.save_fetch(
        topic,
        fetched_seq=seq,
        etag=f"etag-{marker}",
        last_modified=f"lm-{marker}",
        content_hash=f"hash-{marker}",
        content_type="application/atom+xml",
        entries='{"a": "1"}',
        now=NOW,
    )


# --- topics --------------------------------------------------------------------------------------


def test_ping_answers(storage: Storage) -> None:
    storage.check()


def test_record_ping_increments_per_topic(storage: Storage) -> None:
    subscribed(storage, T, T2)
    assert [storage.record_ping(T).seq for _ in range(3)] == [1, 2, 3]
    assert storage.record_ping(T2).seq == 1
    assert storage.record_ping(T).seq == 4
    state = storage.topic_state(T)
    assert state is not None
    assert (state.url, state.ping_seq, state.fetched_seq) == (T, 4, 0)
    assert storage.topic_state(T2).ping_seq == 1


def test_topic_state_unknown_is_none(storage: Storage) -> None:
    assert storage.topic_state("https://nowhere.example/") is None


def test_save_fetch_records_state(storage: Storage) -> None:
    subscribed(storage, T, T2)
    storage.record_ping(T)
    storage.record_ping(T)
    fetch(storage, T, 2, "one")
    assert storage.topic_state(T) == TopicState(
        url=T,
        ping_seq=2,
        fetched_seq=2,
        etag="etag-one",
        last_modified="lm-one",
        content_hash="hash-one",
        content_type="application/atom+xml",
        entries='{"a": "1"}',
    )


def test_save_fetch_never_moves_fetched_seq_backwards(storage: Storage) -> None:
    subscribed(storage, T, T2)
    for _ in range(5):
        storage.record_ping(T)
    fetch(storage, T, 5, "new")
    fetch(storage, T, 3, "old")  # a slower, older fetch finishing late
    state = storage.topic_state(T)
    assert state.fetched_seq == 5
    # The content state is still that of the latest call.
    assert state.etag == "etag-old"
    fetch(storage, T, 6, "newer")
    assert storage.topic_state(T).fetched_seq == 6


def test_mark_fetched_never_moves_backwards_and_keeps_content(storage: Storage) -> None:
    subscribed(storage, T, T2)
    for _ in range(4):
        storage.record_ping(T)
    fetch(storage, T, 2, "c")
    storage.mark_fetched(T, 4)
    state = storage.topic_state(T)
    assert state.fetched_seq == 4
    assert (state.etag, state.content_hash) == ("etag-c", "hash-c")
    storage.mark_fetched(T, 1)
    assert storage.topic_state(T).fetched_seq == 4
    storage.mark_fetched(T, 4)
    assert storage.topic_state(T).fetched_seq == 4


def test_save_fetch_for_unknown_topic_creates_nothing(storage: Storage) -> None:
    fetch(storage, T, 1, "x")
    storage.mark_fetched(T, 1)
    assert storage.topic_state(T) is None


# --- subscriptions -------------------------------------------------------------------------------


def test_activate_creates_subscription(storage: Storage) -> None:
    sub = storage.activate(T, "http://m.example:81/cb", "s1", 3600, NOW)
    assert isinstance(sub, Subscription)
    assert sub.id > 0
    assert (sub.topic, sub.callback, sub.secret) == (T, "http://m.example:81/cb", "s1")
    assert sub.lease_seconds == 3600
    assert sub.expires_at == pytest.approx(NOW + 3600)
    assert sub.delivered_upto == 0
    assert storage.subscription(sub.id) == sub
    assert storage.find_subscription(T, "http://m.example:81/cb") == sub
    assert storage.find_subscription(T2, "http://m.example:81/cb") is None
    assert storage.subscription(sub.id + 1000) is None


def test_activate_without_secret(storage: Storage) -> None:
    sub = storage.activate(T, "http://m.example/cb", None, 60, NOW)
    assert sub.secret is None


def test_resubscribe_replaces_secret_and_lease_keeps_id_and_progress(storage: Storage) -> None:
    first = storage.activate(T, "http://m.example/cb", "old-secret", 3600, NOW)
    storage.mark_delivered([(first.id, 17)])
    again = storage.activate(T, "http://m.example/cb", "new-secret", 7200, NOW + 100)
    assert again.id == first.id
    assert again.secret == "new-secret"
    assert again.lease_seconds == 7200
    assert again.expires_at == pytest.approx(NOW + 100 + 7200)
    assert again.delivered_upto == 17
    assert storage.subscription(first.id) == again
    assert storage.count_for_topic(T, NOW) == 1


def test_same_callback_on_two_topics_is_two_subscriptions(storage: Storage) -> None:
    a = storage.activate(T, "http://m.example/cb", "s", 60, NOW)
    b = storage.activate(T2, "http://m.example/cb", "s", 60, NOW)
    assert a.id != b.id


def test_remove_and_remove_by_id(storage: Storage) -> None:
    a = storage.activate(T, "http://m.example/a", None, 60, NOW)
    b = storage.activate(T, "http://m.example/b", None, 60, NOW)
    assert storage.remove(T, "http://m.example/a") is True
    assert storage.remove(T, "http://m.example/a") is False
    assert storage.remove(T2, "http://m.example/b") is False  # other topic: untouched
    assert storage.subscription(a.id) is None
    assert storage.subscription(b.id) is not None
    assert storage.remove_by_id(b.id) is True
    assert storage.remove_by_id(b.id) is False
    assert storage.subscription(b.id) is None


def _subscribe_many(storage: Storage, topic: str, n: int, lease: int = 3600) -> list[int]:
    return [
        storage.activate(topic, f"http://m{i}.example/cb", None, lease, NOW).id for i in range(n)
    ]


def test_id_ranges_split_by_batch_size(storage: Storage) -> None:
    ids = _subscribe_many(storage, T, 7)
    _subscribe_many(storage, T2, 3)  # another topic's subscriptions are not counted
    assert list(storage.id_ranges(T, NOW, 3)) == [
        (ids[0], ids[2]),
        (ids[3], ids[5]),
        (ids[6], ids[6]),
    ]
    assert list(storage.id_ranges(T, NOW, 7)) == [(ids[0], ids[6])]
    assert list(storage.id_ranges(T, NOW, 100)) == [(ids[0], ids[6])]
    assert list(storage.id_ranges(T, NOW, 1)) == [(i, i) for i in ids]
    assert list(storage.id_ranges("https://none.example/", NOW, 3)) == []


def test_id_ranges_leave_out_expired(storage: Storage) -> None:
    ids = _subscribe_many(storage, T, 6)
    expired = {ids[1], ids[4]}
    for sid in expired:
        sub = storage.subscription(sid)
        storage.activate(T, sub.callback, None, 10, NOW - 100)  # expired at NOW - 90
    active = [i for i in ids if i not in expired]
    ranges = list(storage.id_ranges(T, NOW, 2))
    assert ranges == [(active[0], active[1]), (active[2], active[3])]
    covered = [i for first, last in ranges for i in active if first <= i <= last]
    assert covered == active
    # Later than every lease: nothing left.
    assert list(storage.id_ranges(T, NOW + 10_000, 2)) == []


def test_due_in_range(storage: Storage) -> None:
    ids = _subscribe_many(storage, T, 5)
    other = storage.activate(T2, "http://o.example/cb", None, 3600, NOW).id
    # ids[1] already had notification 10, ids[2] has notification 9 only, ids[3] is expired.
    storage.mark_delivered([(ids[1], 10), (ids[2], 9)])
    storage.activate(T, storage.subscription(ids[3]).callback, None, 1, NOW - 10)
    due = storage.due_in_range(T, ids[0], ids[4], 10, NOW)
    assert [s.id for s in due] == [ids[0], ids[2], ids[4]]
    assert all(isinstance(s, Subscription) and s.topic == T for s in due)
    # The range bounds are inclusive and respected.
    assert [s.id for s in storage.due_in_range(T, ids[2], ids[2], 10, NOW)] == [ids[2]]
    assert [s.id for s in storage.due_in_range(T, ids[0], ids[1], 10, NOW)] == [ids[0]]
    # A range spanning another topic's id returns only this topic's subscriptions.
    span = storage.due_in_range(T, min([*ids, other]), max([*ids, other]), 10, NOW)
    assert other not in [s.id for s in span]
    # delivered_upto == notification id means already delivered.
    assert [s.id for s in storage.due_in_range(T, ids[1], ids[1], 11, NOW)] == [ids[1]]


def test_mark_delivered_never_moves_backwards(storage: Storage) -> None:
    a, b = _subscribe_many(storage, T, 2)
    storage.mark_delivered([(a, 5), (b, 3)])
    assert storage.subscription(a).delivered_upto == 5
    assert storage.subscription(b).delivered_upto == 3
    storage.mark_delivered([(a, 2), (b, 8)])
    assert storage.subscription(a).delivered_upto == 5
    assert storage.subscription(b).delivered_upto == 8
    storage.mark_delivered([])
    storage.mark_delivered([(a, 9), (a, 7)])
    assert storage.subscription(a).delivered_upto == 9
    storage.mark_delivered([(a + b + 1000, 99)])  # unknown id: ignored


def test_purge_expired(storage: Storage) -> None:
    keep = storage.activate(T, "http://keep.example/cb", None, 3600, NOW)
    storage.activate(T, "http://gone1.example/cb", None, 10, NOW - 20)
    storage.activate(T2, "http://gone2.example/cb", None, 10, NOW - 20)
    edge = storage.activate(T, "http://edge.example/cb", None, 10, NOW - 10)  # expires at NOW
    assert storage.count_subscriptions(NOW) == {"active": 1, "expired": 3}
    assert storage.purge_expired(NOW) == 3
    assert storage.subscription(edge.id) is None
    assert storage.subscription(keep.id) == keep
    assert storage.count_subscriptions(NOW) == {"active": 1, "expired": 0}
    assert storage.purge_expired(NOW) == 0


def test_count_for_topic_and_host(storage: Storage) -> None:
    storage.activate(T, "http://m.example:8080/a", None, 3600, NOW)
    storage.activate(T, "http://m.example:8080/b", None, 3600, NOW)
    storage.activate(T2, "http://m.example:8080/c", None, 3600, NOW)
    storage.activate(T, "http://other.example/a", None, 3600, NOW)
    storage.activate(T, "http://m.example:8080/old", None, 10, NOW - 100)  # expired
    storage.activate(T, "http://[::1]:9000/cb", None, 3600, NOW)
    assert storage.count_for_topic(T, NOW) == 4
    assert storage.count_for_topic(T2, NOW) == 1
    assert storage.count_for_topic("https://none.example/", NOW) == 0
    assert storage.count_for_host("m.example:8080", NOW) == 3
    assert storage.count_for_host("other.example", NOW) == 1
    assert storage.count_for_host("[::1]:9000", NOW) == 1
    assert storage.count_for_host("m.example", NOW) == 0
    assert storage.count_for_host("m.example:8080", NOW + 10**7) == 0


# --- notifications -------------------------------------------------------------------------------

BODIES = [
    b"",
    b"plain ascii",
    b"\x00\x01\x02 NUL inside \x00 and at end\x00",
    b"\xff\xfe\xfd not utf-8 \x80\x81 \xc3\x28",
    bytes(range(256)) * 4,
    '<?xml version="1.0"?><feed>caf\u00e9 \u2603</feed>'.encode(),
]


def test_notification_round_trips_bytes_exactly(storage: Storage) -> None:
    ids = []
    for i, body in enumerate(BODIES):
        stored = storage.add_notification(T, "application/octet-stream", body, NOW + i, NOW + 100)
        assert stored is not None and stored.sequence == i + 1
        ids.append(stored.id)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    for i, (nid, body) in enumerate(zip(ids, BODIES, strict=True)):
        note = storage.notification(nid)
        assert note == Notification(
            nid, T, "application/octet-stream", body, NOW + i, i + 1, NOW + 100
        )
        assert type(note.body) is bytes
        assert note.body == body
    assert storage.notification(max(ids) + 1000) is None


def test_delete_notifications_before(storage: Storage) -> None:
    old = storage.add_notification(T, "text/plain", b"old", NOW, NOW - 100).id
    new = storage.add_notification(T, "text/plain", b"new", NOW, NOW + 100).id
    assert storage.delete_notifications_before(NOW) == 1
    assert storage.notification(old) is None
    assert storage.notification(new).body == b"new"


# --- concurrency ---------------------------------------------------------------------------------


def test_concurrent_record_ping_counts_exactly(storage: Storage) -> None:
    subscribed(storage, T, T2)
    threads_n, pings = 8, 50
    results: list[list[int]] = [[] for _ in range(threads_n)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def work(slot: int) -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(pings):
                results[slot].append(storage.record_ping(T).seq)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            storage.close()  # this thread's own connection

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in workers)
    assert errors == []
    seqs = [s for r in results for s in r]
    assert len(seqs) == threads_n * pings
    assert sorted(seqs) == list(range(1, threads_n * pings + 1))
    for r in results:  # each thread sees its own pings in increasing order
        assert r == sorted(r)
    assert storage.topic_state(T).ping_seq == threads_n * pings


def test_pings_queue_one_fetch_until_a_fetcher_claims_it(storage: Storage) -> None:
    subscribed(storage, T, T2)
    first, second, third = (storage.record_ping(T, now=10.0) for _ in range(3))
    assert (first.queue, second.queue, third.queue) == (True, False, False)
    assert storage.claim_fetch(T, 10.5, 30).seq == 3  # the fetch starting now covers 1..3
    fourth = storage.record_ping(T, now=11.0)
    assert fourth == (4, True)  # arrived after the claim: needs a fetch of its own
    assert not storage.record_ping(T, now=11.5).queue


def test_unqueue_lets_the_next_ping_queue_again(storage: Storage) -> None:
    subscribed(storage, T, T2)
    ping = storage.record_ping(T, now=10.0)
    storage.unqueue(T, ping.seq)  # its message could not be published
    assert storage.record_ping(T, now=11.0).queue


def test_stale_queued_finds_fetches_never_started(storage: Storage) -> None:
    subscribed(storage, T, T2)
    storage.record_ping(T, now=100.0)
    storage.record_ping(T2, now=100.0)
    storage.claim_fetch(T2, 100.0, 30)
    assert storage.stale_queued(queued_before=200.0) == [(T, 1, 100.0)]
    assert storage.stale_queued(queued_before=50.0) == []
    storage.touch_queued(T, 300.0)
    assert storage.stale_queued(queued_before=200.0) == []


# --- the fetch lease -------------------------------------------------------------------------


def test_one_fetch_of_a_topic_at_a_time(storage: Storage) -> None:
    subscribed(storage, T, T2)
    storage.record_ping(T, now=10.0)
    first = storage.claim_fetch(T, 10.0, 30)
    assert first.seq == 1 and first.until == 40.0 and not first.busy
    storage.record_ping(T, now=11.0)
    second = storage.claim_fetch(T, 11.0, 30)
    assert second.busy and second.until == 40.0 and second.seq is None
    assert storage.claim_fetch(T2, 11.0, 30) == (None, 0.0, False)  # a topic with no row
    storage.release_fetch(T, first.until)
    third = storage.claim_fetch(T, 12.0, 30)
    assert not third.busy and third.seq == 2


def test_an_expired_or_forced_lease_goes_to_the_next_fetcher(storage: Storage) -> None:
    subscribed(storage, T, T2)
    storage.record_ping(T, now=10.0)
    first = storage.claim_fetch(T, 10.0, 30)
    assert storage.claim_fetch(T, 39.0, 30).busy
    late = storage.claim_fetch(T, 41.0, 30)  # the first fetcher overran its lease
    assert not late.busy and late.until == 71.0
    storage.release_fetch(T, first.until)  # the overrunning fetcher ends: the lease stays
    assert storage.claim_fetch(T, 42.0, 30).busy
    forced = storage.claim_fetch(T, 43.0, 30, force=True)  # a redelivered message
    assert not forced.busy and forced.until == 73.0


def test_create_schema_adds_columns_an_older_database_lacks(database_url: str) -> None:
    """A database made before topics.fetch_until existed gets the column, keeping its rows."""
    from broker_hub.storage.schema import DIALECTS

    old = Storage.from_url(database_url)
    try:
        real = DIALECTS[old.backend.dialect]["real"]
        with old.backend.transaction():
            old.backend.execute("DROP TABLE IF EXISTS topics")
            old.backend.execute(
                "CREATE TABLE topics (url TEXT PRIMARY KEY, ping_seq BIGINT NOT NULL DEFAULT 0, "
                "fetched_seq BIGINT NOT NULL DEFAULT 0, queued_seq BIGINT NOT NULL DEFAULT 0, "
                f"claimed_seq BIGINT NOT NULL DEFAULT 0, queued_at {real}, etag TEXT, "
                "last_modified TEXT, content_hash TEXT, content_type TEXT, entries TEXT, "
                f"fetched_at {real})"
            )
            old.backend.execute("INSERT INTO topics (url, ping_seq) VALUES (?, 7)", (T,))
        old.create_schema()
        old.create_schema()  # idempotent
        assert old.topic_state(T).ping_seq == 7
        assert not old.claim_fetch(T, 10.0, 30).busy
        assert old.claim_fetch(T, 11.0, 30).busy
    finally:
        old.close()


def test_mark_delivered_from_two_threads_never_deadlocks(storage: Storage) -> None:
    """Two deliverers recording the same subscriptions, each in its own order, at once: on
    PostgreSQL, updates taken in different orders deadlock (and a deliverer's batches were
    delivered again); they are taken in id order."""
    import threading

    ids = [storage.activate(T, f"http://m{i}.example/cb", None, 3600, NOW).id for i in range(300)]
    errors: list[BaseException] = []

    def record(order: list[int], base: int) -> None:
        try:
            for n in range(15):
                storage.mark_delivered([(sid, base + n) for sid in order])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [
        threading.Thread(target=record, args=(ids, 1000)),
        threading.Thread(target=record, args=(list(reversed(ids)), 2000)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert {storage.subscription(sid).delivered_upto for sid in ids} == {2014}


def test_mirror_results_fold_in_order(storage: Storage) -> None:
    from broker_hub.storage.health import MirrorResult

    storage.activate(T, "http://a.example/cb", None, 3600, NOW)
    storage.activate(T, "http://b.example/cb", None, 3600, NOW)
    storage.record_mirror_results(
        [MirrorResult("a.example", False, 503, "http_503"), MirrorResult("b.example", False, 500),
         MirrorResult("a.example", True, 200), MirrorResult("b.example", False, 502, "http_5xx"),
         MirrorResult("a.example", False, 429, "http_429"),
         MirrorResult("a.example", False, 503, "http_503")],
        NOW,
    )  # fmt: skip
    storage.record_mirror_results([MirrorResult("b.example", False, 504, "timeout")], NOW + 1)
    health = {h.mirror: h for h in storage.mirrors_health(NOW + 2, 10)}
    a, b = health["a.example"], health["b.example"]
    assert (a.consecutive_failures, a.last_status, a.last_error_class) == (2, 503, "http_503")
    assert a.last_success_at == NOW
    assert (b.consecutive_failures, b.last_status, b.last_success_at) == (3, 504, None)


def test_subscribed_topics_reads_at_most_up_to_of_each_topic(storage: Storage) -> None:
    """Counting stops at ``up_to`` (a big topic is "more than one batch", never counted whole);
    expired subscriptions and unsubscribed topics are left out; more than one chunk of topics."""
    now = 1000.0
    big = "http://t.example/big"
    for n in range(7):
        storage.activate(big, f"http://m{n}.example/cb", None, 3600, now)
    storage.activate(big, "http://old.example/cb", None, 10, now - 100)  # expired
    ids = sorted(s.id for s in storage.due_in_range(big, 0, 10**9, 1, now))
    small = [f"http://t.example/p{k}" for k in range(150)]
    for k, topic in enumerate(small):
        storage.activate(topic, f"http://s{k}.example/cb", None, 3600, now)
    found = storage.subscribed_topics([big, *small, "http://t.example/nobody"], now, up_to=3)
    assert (found[big].count, found[big].first_id, found[big].last_id) == (3, ids[0], ids[2])
    assert len(found) == 151 and all(found[t].count == 1 for t in small)
    assert found[small[0]].first_id == found[small[0]].last_id
