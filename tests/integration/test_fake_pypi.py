"""The fake PyPI-shaped index, run as a subprocess: every endpoint answers like pypi.org."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import subprocess
import sys
import tarfile
import xmlrpc.client
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.parsers.expat import ExpatError

import feedparser
import pytest
import requests

from tests.support.fake_pypi import ControlFailed, FakePyPIClient, running_fake_pypi
from tests.support.processes import Server, wait_for

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(scope="module")
def fake_index() -> Iterator[tuple[Server, FakePyPIClient]]:
    with running_fake_pypi() as pair:
        yield pair


@pytest.fixture
def index(fake_index: tuple[Server, FakePyPIClient]) -> Iterator[tuple[str, FakePyPIClient]]:
    server, client = fake_index
    client.reset()
    yield server.url("").rstrip("/"), client


def rpc(base: str) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(f"{base}/pypi", allow_none=True)


def test_release_writes_pypi_journal_entries(index: tuple[str, FakePyPIClient]) -> None:
    base, pypi = index
    serials = pypi.release("Foo_Bar", "1.0")
    journal = rpc(base).changelog_since_serial(0)
    assert [e[4] for e in journal] == serials == sorted(serials)
    assert [(e[0], e[1], e[3]) for e in journal] == [
        ("Foo_Bar", None, "create"),
        ("Foo_Bar", None, "add Owner fake-owner"),
        ("Foo_Bar", "1.0", "new release"),
        ("Foo_Bar", "1.0", "add py3 file foo_bar-1.0-py3-none-any.whl"),
        ("Foo_Bar", "1.0", "add source file foo_bar-1.0.tar.gz"),
    ]
    assert all(isinstance(e[2], int) and e[2] > 1_600_000_000 for e in journal)
    assert rpc(base).changelog_last_serial() == serials[-1]
    assert rpc(base).changelog_since_serial(serials[2]) == journal[3:]
    assert pypi.last_serial() == serials[-1]


def test_every_change_has_pypis_action_wording(index: tuple[str, FakePyPIClient]) -> None:
    base, pypi = index
    pypi.release("demo", "1.0", ["wheel"])
    start = pypi.last_serial()
    pypi.add_file("demo", "1.0", "sdist")
    pypi.add_file("demo", "1.0", "wheel", tag="cp311-cp311-manylinux_2_17_x86_64")
    pypi.yank("demo", "1.0", reason="broken")
    pypi.unyank("demo", "1.0")
    pypi.remove_file("demo", "1.0", "demo-1.0.tar.gz")
    pypi.role("demo", "alice", "Maintainer")
    pypi.role("demo", "alice", "Maintainer", op="change", to="Owner")
    pypi.role("demo", "alice", "Owner", op="remove")
    pypi.quarantine("demo")
    pypi.quarantine("demo", cleared=True)
    pypi.remove_release("demo", "1.0")
    pypi.remove_project("demo")
    actions = [(e[1], e[3]) for e in rpc(base).changelog_since_serial(start)]
    assert actions == [
        ("1.0", "add source file demo-1.0.tar.gz"),
        ("1.0", "add cp311 file demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        ("1.0", "yank release"),
        ("1.0", "unyank release"),
        ("1.0", "remove file demo-1.0.tar.gz"),
        (None, "add Maintainer alice"),
        (None, "change Maintainer alice to Owner"),
        (None, "remove Owner alice"),
        (None, "project quarantined"),
        (None, "project quarantine cleared"),
        ("1.0", "remove release"),
        (None, "remove project"),
    ]
    assert requests.get(f"{base}/pypi/demo/json", timeout=10).status_code == 404


def test_control_rejects_bad_requests(index: tuple[str, FakePyPIClient]) -> None:
    base, pypi = index
    for call, status in [
        (lambda: pypi.release("not valid!", "1.0"), 400),
        (lambda: pypi.yank("missing", "1.0"), 404),
        (lambda: pypi.control("nonsense"), 404),
        (lambda: pypi.control("garbage", mode="nope"), 400),
    ]:
        with pytest.raises(ControlFailed) as failed:
            call()
        assert failed.value.status == status
    answer = requests.post(f"{base}/_control/release", data=b"{nope", timeout=10)
    assert answer.status_code == 400 and "not JSON" in answer.json()["error"]


def test_json_api_and_redirects(index: tuple[str, FakePyPIClient]) -> None:
    base, pypi = index
    pypi.release("Foo_Bar", "1.0", requires_python=">=3.8")
    serial = pypi.release("Foo_Bar", "2.0", ["wheel"])[-1]
    moved = requests.get(f"{base}/pypi/foo-bar/json", timeout=10, allow_redirects=False)
    assert moved.status_code == 301 and moved.headers["Location"] == "/pypi/Foo_Bar/json"
    answer = requests.get(f"{base}/pypi/foo-bar/json", timeout=10)
    assert answer.status_code == 200 and answer.headers["X-PyPI-Last-Serial"] == str(serial)
    body = answer.json()
    assert body["info"]["name"] == "Foo_Bar" and body["info"]["version"] == "2.0"
    assert body["last_serial"] == serial
    assert sorted(body["releases"]) == ["1.0", "2.0"]
    [wheel] = body["urls"]
    assert wheel["filename"] == "foo_bar-2.0-py3-none-any.whl" and wheel["yanked"] is False
    assert wheel["url"].startswith(f"{base}/packages/")
    data = requests.get(wheel["url"], timeout=10).content
    assert hashlib.sha256(data).hexdigest() == wheel["digests"]["sha256"]
    old = requests.get(f"{base}/pypi/Foo_Bar/1.0/json", timeout=10).json()
    assert old["info"]["version"] == "1.0" and "releases" not in old
    assert {u["requires_python"] for u in old["urls"]} == {">=3.8"}
    assert requests.get(f"{base}/pypi/Foo_Bar/9.9/json", timeout=10).status_code == 404
    assert requests.get(f"{base}/pypi/nothing/json", timeout=10).status_code == 404


def test_simple_index_html_and_json(index: tuple[str, FakePyPIClient]) -> None:
    base, pypi = index
    pypi.release("Foo_Bar", "1.0", requires_python=">=3.8")
    serial = pypi.yank("Foo_Bar", "1.0", reason="bad build")[-1]
    other = pypi.release("other", "0.1")[-1]
    moved = requests.get(f"{base}/simple/Foo_Bar/", timeout=10, allow_redirects=False)
    assert moved.status_code == 301 and moved.headers["Location"] == "/simple/foo-bar/"
    page = requests.get(f"{base}/simple/Foo_Bar/", timeout=10)
    assert page.headers["X-PyPI-Last-Serial"] == str(serial)
    assert page.headers["Content-Type"].startswith("text/html")
    assert 'data-yanked="bad build"' in page.text and 'data-requires-python="&gt;=3.8"' in page.text
    assert "#sha256=" in page.text and "/packages/" in page.text
    answer = requests.get(f"{base}/simple/foo-bar/", headers={"Accept": SIMPLE_JSON}, timeout=10)
    assert answer.headers["Content-Type"] == SIMPLE_JSON
    body = answer.json()
    assert body["meta"]["_last-serial"] == serial and body["name"] == "foo-bar"
    assert {f["filename"] for f in body["files"]} == {
        "foo_bar-1.0-py3-none-any.whl", "foo_bar-1.0.tar.gz"}
    assert {f["yanked"] for f in body["files"]} == {"bad build"}
    root = requests.get(f"{base}/simple/", headers={"Accept": SIMPLE_JSON}, timeout=10)
    assert root.headers["X-PyPI-Last-Serial"] == str(other)
    assert [p["name"] for p in root.json()["projects"]] == ["Foo_Bar", "other"]
    html_root = requests.get(f"{base}/simple/", timeout=10).text
    assert '<a href="/simple/foo-bar/">Foo_Bar</a>' in html_root


def test_files_are_valid_wheels_and_sdists(index: tuple[str, FakePyPIClient]) -> None:
    base, pypi = index
    pypi.release("Foo.Bar", "1.2")
    files = requests.get(f"{base}/pypi/Foo.Bar/json", timeout=10).json()["urls"]
    by_type = {f["packagetype"]: f for f in files}
    wheel = requests.get(by_type["bdist_wheel"]["url"], timeout=10).content
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        names = set(archive.namelist())
        assert {"foo_bar-1.2.dist-info/METADATA", "foo_bar-1.2.dist-info/WHEEL",
                "foo_bar-1.2.dist-info/RECORD"} <= names
        assert b"Version: 1.2" in archive.read("foo_bar-1.2.dist-info/METADATA")
    sdist = requests.get(by_type["sdist"]["url"], timeout=10).content
    with tarfile.open(fileobj=io.BytesIO(sdist), mode="r:gz") as archive:
        info = archive.extractfile("foo_bar-1.2/PKG-INFO")
        assert info is not None and b"Name: Foo.Bar" in info.read()
    meta = requests.get(by_type["bdist_wheel"]["url"] + ".metadata", timeout=10)
    assert meta.status_code == 200 and b"Version: 1.2" in meta.content


def test_pip_downloads_a_generated_wheel(index: tuple[str, FakePyPIClient], tmp_path: Path) -> None:
    base, pypi = index
    pypi.release("Fancy_Name.Lib", "0.3")
    pip = Path(sys.executable).parent / "pip"
    result = subprocess.run(
        [str(pip), "download", "fancy-name-lib==0.3", "--no-deps", "--isolated",
         "--no-cache-dir", "--disable-pip-version-check", "--index-url", f"{base}/simple/",
         "-d", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["fancy_name_lib-0.3-py3-none-any.whl"]


def test_rss_feeds_have_no_guid_and_answer_304(index: tuple[str, FakePyPIClient]) -> None:
    base, pypi = index
    pypi.release("alpha", "1.0")
    pypi.release("beta", "2.0")
    answer = requests.get(f"{base}/rss/updates.xml", timeout=10)
    assert answer.status_code == 200 and "<guid" not in answer.text
    feed = feedparser.parse(answer.content)
    assert [(e.title, e.link) for e in feed.entries] == [
        ("beta 2.0", f"{base}/project/beta/2.0/"), ("alpha 1.0", f"{base}/project/alpha/1.0/")]
    etag = answer.headers["ETag"]
    again = requests.get(f"{base}/rss/updates.xml", headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 304 and again.content == b""
    since = requests.get(f"{base}/rss/updates.xml", timeout=10,
                         headers={"If-Modified-Since": answer.headers["Last-Modified"]})
    assert since.status_code == 304
    pypi.release("alpha", "1.1")
    changed = requests.get(f"{base}/rss/updates.xml", headers={"If-None-Match": etag}, timeout=10)
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    packages = feedparser.parse(requests.get(f"{base}/rss/packages.xml", timeout=10).content)
    assert [e.link for e in packages.entries] == [f"{base}/project/beta/", f"{base}/project/alpha/"]
    project = feedparser.parse(
        requests.get(f"{base}/rss/project/alpha/releases.xml", timeout=10).content)
    assert [e.title for e in project.entries] == ["1.1", "1.0"]


def test_backlog_pages_at_50000_with_ratelimit_headers(index: tuple[str, FakePyPIClient]) -> None:
    base, pypi = index
    written = pypi.backlog(60_000)
    assert written >= 60_000
    body = xmlrpc.client.dumps((0,), "changelog_since_serial").encode()
    answer = requests.post(f"{base}/pypi", data=body, timeout=60,
                           headers={"Content-Type": "text/xml", "User-Agent": "test-suite/1"})
    for header in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
        assert answer.headers[header].isdigit()
    (first,), _ = xmlrpc.client.loads(answer.content)
    assert len(first) == 50_000
    rest = rpc(base).changelog_since_serial(first[-1][4])
    serials = [e[4] for e in first + rest]
    assert len(serials) == written and serials == sorted(set(serials))
    assert serials[-1] == rpc(base).changelog_last_serial()
    assert any(b - a == 2 for a, b in itertools.pairwise(serials))  # skipped numbers
    assert "test-suite/1" in pypi.stats()["user_agents"]


def test_faults_outage_and_rate_limit(index: tuple[str, FakePyPIClient]) -> None:
    base, pypi = index
    pypi.release("foo", "1.0")
    pypi.fault(2, code=-32500, text="RuntimeError: boom")
    for _ in range(2):
        with pytest.raises(xmlrpc.client.Fault) as fault:
            rpc(base).changelog_last_serial()
        assert fault.value.faultString == "RuntimeError: boom"
    assert rpc(base).changelog_last_serial() == pypi.last_serial()
    pypi.outage()
    down = requests.post(f"{base}/pypi", data=b"<x/>", timeout=10)
    assert down.status_code == 503 and "text/html" in down.headers["Content-Type"]
    assert "Backend is unhealthy" in down.text
    assert requests.get(f"{base}/rss/updates.xml", timeout=10).status_code == 200
    pypi.outage(False)
    pypi.ratelimit(limit=1)
    rpc(base).changelog_last_serial()
    body = xmlrpc.client.dumps((), "changelog_last_serial").encode()
    limited = requests.post(f"{base}/pypi", data=body, timeout=10)
    assert limited.status_code == 429 and limited.headers["RateLimit-Remaining"] == "0"
    assert "HTTPTooManyRequests" in limited.text
    pypi.ratelimit(limit=1000)
    pypi.fault(1, rate_limit=True)
    with pytest.raises(xmlrpc.client.Fault, match="too many requests"):
        rpc(base).changelog_last_serial()


def test_garbage_modes(index: tuple[str, FakePyPIClient]) -> None:
    base, pypi = index
    serials = pypi.release("foo", "1.0")

    def post(method: str, *params: int) -> requests.Response:
        body = xmlrpc.client.dumps(params, method).encode()
        return requests.post(f"{base}/pypi", data=body, timeout=30)

    pypi.garbage("malformed_xml")
    with pytest.raises(ExpatError):
        xmlrpc.client.loads(post("changelog_since_serial", 0).content)
    pypi.garbage("html_200")
    page = post("changelog_since_serial", 0)
    assert page.status_code == 200 and page.text.startswith("<!DOCTYPE html>")
    pypi.garbage("serial_backwards")
    (entries,), _ = xmlrpc.client.loads(post("changelog_since_serial", serials[2]).content)
    assert entries[0][4] < serials[2]
    pypi.garbage("invalid_name")
    (entries,), _ = xmlrpc.client.loads(post("changelog_since_serial", 0).content)
    assert entries[0][0] == "not a/valid name!" and entries[0][4] == serials[0]
    pypi.garbage("entity")
    assert b"<!ENTITY" in post("changelog_since_serial", 0).content
    pypi.garbage("huge", size=4 << 20)
    huge = post("changelog_since_serial", 0)
    assert len(huge.content) > 4 << 20 and int(huge.headers["Content-Length"]) == len(huge.content)
    assert rpc(base).changelog_since_serial(0)[0][0] == "foo"  # one answer each, then normal


def test_cdn_lag_serves_the_previous_state_for_a_while(index: tuple[str, FakePyPIClient]) -> None:
    base, pypi = index
    before = pypi.release("foo", "1.0")[-1]
    pypi.cdn_lag(5)
    after = pypi.release("foo", "1.1")[-1]

    def serial() -> int:
        answer = requests.get(f"{base}/pypi/foo/json", timeout=10)
        return int(answer.headers["X-PyPI-Last-Serial"])

    assert rpc(base).changelog_last_serial() == after  # the journal has it at once...
    assert serial() == before  # ...the CDN does not yet
    assert wait_for(lambda: serial() == after, timeout=30, interval=0.2)
    simple = requests.get(f"{base}/simple/foo/", headers={"Accept": SIMPLE_JSON}, timeout=10)
    assert "1.1" in simple.json()["versions"]


def test_state_file_keeps_the_index_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "fake-pypi.json"
    with running_fake_pypi(state=state) as (_, pypi):
        serials = pypi.release("kept", "1.0")
    assert json.loads(state.read_text())["serial"] == serials[-1]
    with running_fake_pypi(state=state) as (server, pypi):
        assert pypi.last_serial() == serials[-1]
        answer = requests.get(server.url("/pypi/kept/json"), timeout=10)
        assert answer.headers["X-PyPI-Last-Serial"] == str(serials[-1])
