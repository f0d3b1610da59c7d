"""The agent's pure logic and its callback handler in process (no wire involved)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker_hub.signing import signature_header
from mirror.adapters import SyncError
from mirror.adapters.command import CommandAdapter, split_template
from mirror.callback import create_app
from mirror.leases import Leases
from mirror.metrics import MirrorMetrics
from mirror.names import NameFilter, is_valid, normalize
from mirror.notifications import BadNotification, is_gap, parse
from mirror.reader import changes_from
from mirror.state import Change, State


def entry(serial, project, kind, filename=None):
    return {"serial": serial, "project": project, "normalized": normalize(project),
            "version": "1", "action": kind, "kind": kind, "filename": filename,
            "timestamp": 0}


def body(*entries, since=1, until=9) -> bytes:
    return json.dumps({"since": since, "until": until, "entries": list(entries)}).encode()


def test_names_and_filters():
    assert normalize("Foo__Bar.baz") == "foo-bar-baz"
    assert is_valid("Foo_Bar") and not is_valid("-rf") and not is_valid("a b")
    assert not is_valid("x;rm") and not is_valid("")
    allowed = NameFilter(allow=["django*", "Requests"], deny=["django-evil*"])
    assert allowed("django-rest") and allowed("requests")
    assert not allowed("django-evil-thing") and not allowed("flask")
    assert NameFilter()("anything")


def test_parse_rejects_what_is_not_a_notification():
    for bad in (b"nope", b"[]", b'{"entries": 3}', b'{"since": "1", "entries": []}'):
        with pytest.raises(BadNotification):
            parse(bad)
    note = parse(body(entry(3, "Ok_Name", "file_added", "ok-1.whl"),
                      entry(4, "bad name!", "file_added"), entry(5, "x", "other", "../evil")))
    assert [e.normalized for e in note.entries] == ["ok-name", "x"]
    assert note.entries[1].filename is None


def test_gap_rule():
    assert not is_gap(None, None, 5, 1)
    assert not is_gap(10, 3, 10, 4)
    assert is_gap(10, 3, 12, 4)  # serial chain broken
    assert is_gap(10, 3, 10, 5)  # a sequence number missed
    assert not is_gap(10, 3, 8, 2)  # an older one arriving late


def test_changes_keep_the_newest_file_and_forget_a_removed_one():
    metrics = MirrorMetrics()
    note = parse(body(entry(1, "A", "project_created"), entry(2, "A", "file_added", "a-1.whl"),
                      entry(3, "B", "file_added", "b-1.whl"), entry(4, "B", "file_removed",
                                                                    "b-1.whl"),
                      entry(5, "Skip_Me", "file_added", "s.whl")))
    changes = {c.normalized: c for c in changes_from(note.entries, 100.0,
                                                     NameFilter(deny=["skip-*"]), metrics)}
    assert set(changes) == {"a", "b"}
    assert changes["a"].filename == "a-1.whl" and changes["a"].new_project
    assert changes["a"].serial == 2
    assert changes["b"].filename == "" and changes["b"].serial == 4


def test_state_queue_merges_and_keeps_a_newer_serial(tmp_path: Path):
    state = State(str(tmp_path / "s.sqlite"))
    state.enqueue([Change("a", "A", 5, "a-1.whl", False, 10.0)])
    state.enqueue([Change("a", "A", 3, "a-0.whl", False, 20.0)])  # older: kept out
    (due,) = state.due(now=100.0)
    assert (due.serial, due.filename, due.first_seen) == (5, "a-1.whl", 10.0)
    state.enqueue([Change("a", "A", 7, None, False, 30.0)])  # newer, no file: file kept
    state.synced(due)  # serial 5 synced while 7 arrived: still pending
    (again,) = state.due(now=100.0)
    assert (again.serial, again.filename) == (7, "a-1.whl")
    state.synced(again)
    assert state.due(now=100.0) == []
    assert state.accept("d1", "t", 1, b"{}", 1.0) and not state.accept("d1", "t", 1, b"{}", 2.0)
    assert state.count("inbox") == 1


def test_retry_then_give_up(tmp_path: Path):
    state = State(str(tmp_path / "s.sqlite"))
    state.enqueue([Change("a", "A", 1, None, False, 0.0)])
    for attempt in range(3):
        (c,) = state.due(now=1e9)
        assert c.attempts == attempt
        gave_up = state.retry_later(c, "broken", at=0.0, max_attempts=3)
    assert gave_up and state.count("failed") == 1 and state.count("pending") == 0


def test_command_template_is_an_argument_list():
    adapter = CommandAdapter("bandersnatch -c '/etc/my conf' sync {projects}")
    changes = [Change("foo", "Foo", 1, None, False, 0.0), Change("bar-baz", "Bar", 2, None,
                                                                 False, 0.0)]
    assert adapter.commands(changes) == [
        ["bandersnatch", "-c", "/etc/my conf", "sync", "foo", "bar-baz"]]
    each = CommandAdapter("echo {project}")
    assert each.commands(changes) == [["echo", "foo"], ["echo", "bar-baz"]]
    with pytest.raises(SyncError):
        adapter.commands([Change("$(reboot)", "x", 1, None, False, 0.0)])
    with pytest.raises(ValueError):
        split_template("bandersnatch mirror")


def test_command_adapter_runs_without_a_shell(tmp_path: Path):
    out = tmp_path / "out"
    adapter = CommandAdapter(f"touch {out}-{{project}}")
    adapter.trigger([Change("a", "A", 1, None, False, 0.0)])
    assert (tmp_path / "out-a").exists()
    with pytest.raises(SyncError):
        CommandAdapter("false {projects}").trigger([Change("a", "A", 1, None, False, 0.0)])


def test_leases_renew_before_the_end(tmp_path: Path):
    state = State(str(tmp_path / "s.sqlite"))
    state.want_topics(["t"])
    leases = Leases(state, hub_url="http://hub/", callback_base="http://me/", session=None,
                    lease_seconds=None)
    (sub,) = state.subscriptions()
    assert leases.needs_request(sub, 0.0)
    state.requested("t", 0.0)
    (sub,) = state.subscriptions()
    assert not leases.needs_request(sub, 10.0)  # verification on its way
    state.verified("t", "subscribe", 1000, 5.0)
    (sub,) = state.subscriptions()
    assert not leases.needs_request(sub, 500.0)
    assert leases.needs_request(sub, 1000.0 - 59)  # within the margin (max(60, lease/10))
    state.want_topics([])
    (sub,) = state.subscriptions()
    assert sub.wanted == "unsubscribe" and leases.needs_request(sub, 0.0)
    state.verified("t", "unsubscribe", None, 1.0)
    assert state.subscriptions() == []


def test_callback_verifies_only_what_it_asked_for(tmp_path: Path):
    state = State(str(tmp_path / "s.sqlite"))
    state.want_topics(["http://hub/pypi/changes"])
    (sub,) = state.subscriptions()
    client = create_app(state, MirrorMetrics()).test_client()
    q = {"hub.mode": "subscribe", "hub.topic": "http://hub/pypi/changes", "hub.challenge": "c1",
         "hub.lease_seconds": "600"}
    assert client.get(f"/callback/{sub.token}", query_string=q).data == b"c1"
    assert state.subscriptions()[0].expires_at is not None
    other = {**q, "hub.topic": "http://hub/pypi/project/evil"}
    assert client.get(f"/callback/{sub.token}", query_string=other).status_code == 404
    assert client.get("/callback/not-a-token", query_string=q).status_code == 404
    unsub = {**q, "hub.mode": "unsubscribe"}
    assert client.get(f"/callback/{sub.token}", query_string=unsub).status_code == 404


def test_callback_checks_signature_and_body(tmp_path: Path):
    state = State(str(tmp_path / "s.sqlite"))
    state.want_topics(["t"])
    (sub,) = state.subscriptions()
    metrics = MirrorMetrics()
    metrics.watch(state.count)
    client = create_app(state, metrics).test_client()
    good = body(entry(2, "A", "file_added", "a.whl"))
    sign = {"X-Hub-Signature": signature_header(sub.secret, good), "X-Hub-Delivery-Id": "n.1",
            "X-Hub-Sequence": "1"}
    assert client.post(f"/callback/{sub.token}", data=good,
                       headers={**sign, "X-Hub-Signature": "sha256=00"}).status_code == 403
    assert client.post(f"/callback/{sub.token}", data=good + b" ",
                       headers=sign).status_code == 403
    junk = b"not json"
    junk_sign = {**sign, "X-Hub-Signature": signature_header(sub.secret, junk)}
    assert client.post(f"/callback/{sub.token}", data=junk, headers=junk_sign).status_code == 400
    assert client.post(f"/callback/{sub.token}", data=good, headers=sign).status_code == 202
    assert client.post(f"/callback/{sub.token}", data=good, headers=sign).status_code == 200
    other = body(entry(3, "B", "file_added", "b.whl"))  # a reset hub reuses the id
    assert client.post(f"/callback/{sub.token}", data=other, headers={
        **sign, "X-Hub-Signature": signature_header(sub.secret, other)}).status_code == 202
    assert state.count("inbox") == 2
    assert client.post("/callback/no-such-token", data=good, headers=sign).status_code == 410
    assert b"broker_hub_mirror_inbox 2.0" in client.get("/metrics").data
    assert client.get("/status").data.startswith(b"subscriptions 0/1 active; inbox 2")


def test_projects_file_and_flags_become_topics(tmp_path: Path):
    import argparse

    from mirror.cli import add_parser, config_from

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    listing = tmp_path / "projects.txt"
    listing.write_text("# the ones we serve\nDjango\nrequests  # HTTP\n\nZope.Interface\n")
    args = parser.parse_args(["mirror", "--hub", "https://hub.example/", "--callback-url",
                              "http://me:8390/", "--projects-file", str(listing),
                              "--project", "Django", "--bind", "0.0.0.0:9000"])
    config = config_from(args)
    assert config.topics == [f"https://hub.example/pypi/project/{n}"
                             for n in ("django", "requests", "zope-interface")]
    assert (config.host, config.port) == ("0.0.0.0", 9000)
    firehose = config_from(parser.parse_args(["mirror", "--hub", "https://hub.example",
                                              "--callback-url", "http://me/"]))
    assert firehose.topics == ["https://hub.example/pypi/changes"]
