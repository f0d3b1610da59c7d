"""JournalClient and RssFallback against the fake PyPI index running as a subprocess."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from broker_hub.pypi import errors
from broker_hub.pypi.journal import PAGE_LIMIT, JournalClient
from broker_hub.pypi.rss import RssFallback
from tests.support.fake_pypi import FakePyPIClient, running_fake_pypi
from tests.support.processes import Server

UA = "broker-hub-tests/1 (+https://example.invalid/contact)"


@pytest.fixture(scope="module")
def fake_index() -> Iterator[tuple[Server, FakePyPIClient]]:
    with running_fake_pypi() as pair:
        yield pair


@pytest.fixture
def index(fake_index: tuple[Server, FakePyPIClient]) -> tuple[str, FakePyPIClient]:
    server, client = fake_index
    client.reset()
    return server.url("").rstrip("/"), client


def journal(url: str, **kwargs: object) -> JournalClient:
    options: dict = {"user_agent": UA, "timeout": 30.0, "allow_private": True, **kwargs}
    return JournalClient(url, **options)


def test_reads_the_journal_with_kinds_and_user_agent(index: tuple[str, FakePyPIClient]) -> None:
    url, pypi = index
    serials = pypi.release("Foo_Bar", "1.0")
    pypi.add_file("Foo_Bar", "1.0")
    pypi.yank("Foo_Bar", "1.0")
    client = journal(url)
    assert client.last_serial() == pypi.last_serial()
    page = client.since(0)
    assert [c.kind for c in page.changes] == [
        "project_created", "roles_changed", "release_created", "file_added", "file_added",
        "file_added", "yanked"]
    assert page.changes[-2].filename == "foo_bar-1.0-py2.py3-none-any.whl"
    assert {c.normalized for c in page.changes} == {"foo-bar"}
    assert page.bad == [] and page.more is False
    assert page.last_serial_seen == pypi.last_serial()
    assert client.since(serials[2]).changes[0].serial == serials[3]
    empty = client.since(page.last_serial_seen)
    assert empty.changes == [] and empty.last_serial_seen == page.last_serial_seen
    assert client.rate_limit is not None and client.rate_limit.limit == 1000
    assert UA in pypi.stats()["user_agents"]


def test_pages_through_a_60000_entry_backlog(index: tuple[str, FakePyPIClient]) -> None:
    url, pypi = index
    written = pypi.backlog(60_000)
    client = journal(url)
    last, seen, pages = 0, [], 0
    while True:
        page = client.since(last)
        pages += 1
        seen += [c.serial for c in page.changes]
        if not page.more:
            break
        assert len(page.changes) == PAGE_LIMIT
        last = page.last_serial_seen
    assert pages == 2 and len(seen) == written
    assert seen == sorted(set(seen)) and seen[-1] == pypi.last_serial()


@pytest.mark.parametrize(("mode", "error"), [
    ("malformed_xml", errors.MalformedAnswer),
    ("html_200", errors.JournalUnavailable),
    ("serial_backwards", errors.MalformedAnswer),
    ("entity", errors.HostileAnswer),
])
def test_garbage_answers_raise_clear_errors(
    index: tuple[str, FakePyPIClient], mode: str, error: type[Exception]
) -> None:
    url, pypi = index
    pypi.release("foo", "1.0")
    client = journal(url)
    pypi.garbage(mode)
    with pytest.raises(error):
        client.since(1)
    later = pypi.release("foo", "1.1")
    assert [c.serial for c in client.since(1).changes][-3:] == later  # the next answer is fine


def test_huge_answer_is_refused_at_the_cap(index: tuple[str, FakePyPIClient]) -> None:
    url, pypi = index
    pypi.release("foo", "1.0")
    pypi.garbage("huge", size=8 << 20)
    with pytest.raises(errors.MalformedAnswer, match="bytes"):
        journal(url, max_bytes=1 << 20).since(0)


def test_invalid_name_is_set_aside_not_fatal(index: tuple[str, FakePyPIClient]) -> None:
    url, pypi = index
    serials = pypi.release("foo", "1.0")
    pypi.garbage("invalid_name")
    page = journal(url).since(0)
    [(raw, reason)] = page.bad
    assert raw[0] == "not a/valid name!" and raw[4] == serials[0]
    assert "not a valid project name" in reason
    assert [c.serial for c in page.changes] == serials[1:]
    assert page.last_serial_seen == serials[-1]


def test_faults_rate_limits_and_outage(index: tuple[str, FakePyPIClient]) -> None:
    url, pypi = index
    client = journal(url)
    pypi.fault(1, code=-32500, text="RuntimeError: boom")
    with pytest.raises(errors.JournalFault) as fault:
        client.last_serial()
    assert fault.value.code == -32500 and "boom" in fault.value.text
    pypi.fault(1, rate_limit=True)
    with pytest.raises(errors.RateLimited) as limited:
        client.since(0)
    assert 1 <= limited.value.retry_after <= 60
    pypi.ratelimit(limit=1, window=30)
    client.last_serial()
    with pytest.raises(errors.RateLimited) as limited:
        client.last_serial()
    assert 1 <= limited.value.retry_after <= 30
    assert client.rate_limit is not None and client.rate_limit.remaining == 0
    pypi.ratelimit(limit=1000)
    pypi.outage()
    with pytest.raises(errors.JournalUnavailable) as down:
        client.since(0)
    assert down.value.status == 503
    pypi.outage(False)
    assert client.since(0).changes == []


def test_private_index_needs_allow_private(index: tuple[str, FakePyPIClient]) -> None:
    url, pypi = index
    before = pypi.stats()["xmlrpc_calls"]
    with pytest.raises(errors.IndexForbidden):
        journal(url, allow_private=False).last_serial()
    with pytest.raises(errors.IndexForbidden):
        RssFallback(url, user_agent=UA).poll()
    assert pypi.stats()["xmlrpc_calls"] == before


def test_connection_errors_and_the_deadline_are_unavailable() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        with pytest.raises(errors.JournalUnavailable):
            journal(f"http://127.0.0.1:{port}", timeout=1.0).last_serial()
    with pytest.raises(errors.JournalUnavailable):
        journal(f"http://127.0.0.1:{port}", timeout=5.0).last_serial()  # now closed: refused


class _Misbehaving(BaseHTTPRequestHandler):
    """``/big503/pypi``: a 503 with an 8 MiB body; ``/drip/pypi``: a 200 dripping one byte at
    a time, forever (until the client hangs up)."""

    def log_message(self, *_args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.startswith("/big503"):
            body = b"<html>" + b"x" * (8 << 20) + b"</html>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(600):  # at most ~2 minutes
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)


@pytest.fixture
def misbehaving() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_error_page_status_wins_over_its_size(misbehaving: str) -> None:
    with pytest.raises(errors.JournalUnavailable) as down:
        journal(misbehaving + "/big503", max_bytes=1 << 20).last_serial()
    assert down.value.status == 503


def test_a_dripping_answer_hits_the_total_deadline(misbehaving: str) -> None:
    with pytest.raises(errors.JournalUnavailable, match="within"):
        journal(misbehaving + "/drip", timeout=1.5).last_serial()


def test_empty_user_agent_is_refused() -> None:
    with pytest.raises(ValueError, match="User-Agent"):
        JournalClient("https://pypi.org", user_agent=" ")


def test_rss_fallback_finds_new_releases_once(index: tuple[str, FakePyPIClient]) -> None:
    url, pypi = index
    pypi.release("Foo_Bar", "1.0")
    rss = RssFallback(url, user_agent=UA, allow_private=True)
    assert rss.poll().changes == []  # first poll, nothing known: primes only
    pypi.outage()  # XML-RPC down does not touch RSS
    pypi.release("Foo_Bar", "1.1")
    pypi.release("other", "2.0")
    pypi.yank("Foo_Bar", "1.0")  # RSS cannot show this
    got = rss.poll()
    assert [(c.project, c.version, c.kind, c.serial) for c in got.changes] == [
        ("Foo_Bar", "1.1", "release_created", None), ("other", "2.0", "release_created", None)]
    assert got.degraded and got.changes[0].normalized == "foo-bar"
    assert rss.poll().not_modified
    restarted = RssFallback(url, user_agent=UA, allow_private=True, state=rss.export_state())
    pypi.release("third", "0.1")
    assert [c.project for c in restarted.poll().changes] == ["third"]


def test_rss_newer_than_skips_what_the_journal_published(
    index: tuple[str, FakePyPIClient],
) -> None:
    url, pypi = index
    pypi.release("old", "1.0")
    published = journal(url).since(0).changes[-1].timestamp
    rss = RssFallback(url, user_agent=UA, allow_private=True)
    assert rss.poll(newer_than=published + 3600).changes == []  # older: skipped, remembered
    pypi.release("new", "1.0")
    assert [c.project for c in rss.poll(newer_than=0).changes] == ["new"]
    same_second = RssFallback(url, user_agent=UA, allow_private=True)
    assert {c.project for c in same_second.poll(newer_than=published).changes} >= {"old"}


def test_rss_errors(index: tuple[str, FakePyPIClient]) -> None:
    url, pypi = index
    with pytest.raises(errors.JournalUnavailable) as missing:
        RssFallback(url + "/nowhere", user_agent=UA, allow_private=True).poll()
    assert missing.value.status == 404
    rss = RssFallback(url, user_agent=UA, allow_private=True)
    rss.poll()
    pypi.release("foo", "1.0")
    for mode, error in [("rss_html", errors.MalformedAnswer), ("rss_entity", errors.HostileAnswer),
                        ("rss_malformed", errors.MalformedAnswer)]:
        pypi.garbage(mode)
        with pytest.raises(error):
            rss.poll()
    pypi.outage(rss=True)
    with pytest.raises(errors.JournalUnavailable) as down:
        rss.poll()
    assert down.value.status == 503
    pypi.outage(False)
    assert [c.project for c in rss.poll().changes] == ["foo"]  # nothing lost to the failures
