"""Migrations from an empty database and from the pre-versioning schema; mirror health,
backlog and the status snapshot, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from broker_hub.opsview import error_class, shown_url, take_snapshot
from broker_hub.storage import MirrorResult, Storage, migrations
from broker_hub.storage.schema import DIALECTS

# The tables as broker-hub 0.1 shipped them (before fetch_until and before versioning).
OLD_TOPICS = """CREATE TABLE topics (url TEXT PRIMARY KEY, ping_seq BIGINT NOT NULL DEFAULT 0,
    fetched_seq BIGINT NOT NULL DEFAULT 0, queued_seq BIGINT NOT NULL DEFAULT 0,
    claimed_seq BIGINT NOT NULL DEFAULT 0, queued_at {real}, etag TEXT, last_modified TEXT,
    content_hash TEXT, content_type TEXT, entries TEXT, fetched_at {real})"""

OLD_NOTIFICATIONS = """CREATE TABLE notifications (id {pk}, topic TEXT NOT NULL,
    content_type TEXT NOT NULL, body {blob} NOT NULL, pinged_at {real} NOT NULL,
    created_at {real} NOT NULL)"""


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


def _columns(storage: Storage, table: str) -> set[str]:
    from broker_hub.storage.schema import COLUMNS_QUERY

    rows = storage.backend.execute(COLUMNS_QUERY[storage.backend.dialect], (table,)).fetchall()
    return {r[0] for r in rows}


def test_migrate_from_empty_applies_every_step_once(db_url: str) -> None:
    storage = Storage.from_url(db_url)
    assert storage.migrate() == [s.version for s in migrations.STEPS]
    assert migrations.current_version(storage.backend) == migrations.latest_version()
    assert {"mirror_health", "schema_version"} <= _tables(storage)
    assert storage.migrate() == []  # idempotent
    storage.close()


def test_migrate_from_the_schema_that_shipped_before(db_url: str) -> None:
    storage = Storage.from_url(db_url)
    dialect = DIALECTS[storage.backend.dialect]
    real, blob, pk = dialect["real"], dialect["blob"], dialect["pk"]
    storage.backend.execute(OLD_TOPICS.format(real=real))
    storage.backend.execute(
        "INSERT INTO topics (url, ping_seq, fetched_seq) VALUES ('http://t.example/f', 3, 3)"
    )
    assert "fetch_until" not in _columns(storage, "topics")
    storage.backend.execute(OLD_NOTIFICATIONS.format(real=real, blob=blob, pk=pk))
    applied = storage.migrate()
    assert applied == [s.version for s in migrations.STEPS]
    assert "fetch_until" in _columns(storage, "topics")
    assert {"sequence", "dedupe_key"} <= _columns(storage, "notifications")
    assert {"mirror_health", "sources", "source_entries"} <= _tables(storage)
    row = storage.backend.execute("SELECT ping_seq, fetch_until FROM topics").fetchone()
    assert (int(row[0]), float(row[1])) == (3, 0.0)  # data kept, new column defaulted
    storage.close()


def test_steps_are_numbered_in_order() -> None:
    assert [s.version for s in migrations.STEPS] == list(range(1, len(migrations.STEPS) + 1))


def _tables(storage: Storage) -> set[str]:
    if storage.backend.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        sql = ("SELECT table_name FROM information_schema.tables "
               "WHERE table_schema = current_schema()")
    return {r[0] for r in storage.backend.execute(sql).fetchall()}


def test_mirror_health_backlog_and_snapshot(db_url: str) -> None:
    storage = Storage.from_url(db_url)
    storage.create_schema()
    now = 10_000.0
    topic = "https://user:pw@feeds.example/f?token=abc"
    storage.record_ping(topic, now - 50)
    good = storage.activate(topic, "http://good.example/cb?k=secret", "s3cret", 3600, now - 100)
    bad = storage.activate(topic, "http://bad.example:8080/cb?x=1", None, 3600, now - 100)
    nid = storage.add_notification(topic, "application/atom+xml", b"<feed/>", now - 40, now - 40).id
    storage.mark_delivered([(good.id, nid)])
    storage.record_mirror_results([MirrorResult("good.example", True, 200)], now - 39)
    storage.record_mirror_results(
        [MirrorResult("bad.example:8080", False, 503, "http_503")] * 6, now - 5
    )
    snap = take_snapshot(storage, now, queue_depths=lambda: {("parked", "ready"): 2},
                         mirror_limit=10)
    mirrors = {m.mirror: m for m in snap.mirrors}
    assert snap.mirrors[0].mirror == "bad.example:8080"  # failing first
    assert mirrors["bad.example:8080"].consecutive_failures == 6
    assert mirrors["bad.example:8080"].state == "paused"  # 6 >= threshold 5, 5 s ago
    assert mirrors["bad.example:8080"].backlog_oldest == pytest.approx(40.0)
    assert mirrors["good.example"].state == "healthy"
    assert mirrors["good.example"].backlog_oldest == 0.0
    assert snap.backlog_oldest == pytest.approx(40.0)
    assert snap.parked == 2
    assert [f.mirror for f in snap.failures] == ["bad.example:8080"]
    assert snap.failures[0].last_status == 503
    text = repr(snap.as_json())
    for secret in ("user:pw", "token=abc", "s3cret", "k=secret", "/cb"):
        assert secret not in text
    assert snap.topic_rows[0].topic == "https://feeds.example/f?<redacted>"
    # one success resets the run of failures
    storage.record_mirror_results([MirrorResult("bad.example:8080", True, 204)], now)
    again = take_snapshot(storage, now + 1, mirror_limit=10)
    assert {m.mirror: m.state for m in again.mirrors}["bad.example:8080"] == "healthy"
    # mirrors whose subscriptions ended are forgotten
    storage.remove_by_id(bad.id)
    assert storage.purge_mirror_health() == 1
    storage.close()


def test_bounded_mirror_list(db_url: str) -> None:
    storage = Storage.from_url(db_url)
    storage.create_schema()
    for port in range(20):
        storage.activate("https://t.example/f", f"http://127.0.0.1:{9000 + port}/", None, 60, 0)
    storage.record_mirror_results([MirrorResult("127.0.0.1:9019", False, None, "timeout")], 1)
    snap = take_snapshot(storage, 2, mirror_limit=5)
    assert len(snap.mirrors) == 5
    assert snap.mirrors[0].mirror == "127.0.0.1:9019"  # a failing mirror is never hidden
    storage.close()


def test_shown_url_and_error_class() -> None:
    assert shown_url("https://a:b@h.example:8443/p?q=1#f") == "https://h.example:8443/p?<redacted>"
    assert shown_url("http://[::1]:80/x") == "http://[::1]:80/x"
    assert error_class(503, None) == "http_503"
    assert error_class(404, None) == "http_4xx"
    assert error_class(None, "TimeoutError") == "timeout"
    assert error_class(None, "ConnectionRefusedError") == "refused"
    assert error_class(None, "KeyError") == "other"
