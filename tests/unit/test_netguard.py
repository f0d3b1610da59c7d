"""Unit tests for broker_hub.netguard (SSRF address policy). Network: loopback only."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from broker_hub import netguard
from broker_hub.netguard import (
    ForbiddenAddress,
    check_url_host,
    guarded_session,
    is_forbidden_ip,
    resolve_allowed,
)

FORBIDDEN = [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "169.254.169.254", "169.254.1.1", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
    "240.0.0.1", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd00:ec2::254", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
    "2002:7f00:1::", "2002:a00:1::1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:db8::1", "not an address", "",
]  # fmt: skip
ALLOWED = [
    "93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:2800:220:1:248:1893:25c8:1946",
    "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
]  # fmt: skip


@pytest.mark.parametrize("address", FORBIDDEN)
def test_forbidden_addresses(address: str) -> None:
    assert is_forbidden_ip(address) is True


@pytest.mark.parametrize("address", ALLOWED)
def test_allowed_addresses(address: str) -> None:
    assert is_forbidden_ip(address) is False
    assert is_forbidden_ip(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/", "http://LOCALHOST./x", "https://api.localhost:8443/",
        "http://127.0.0.1:8080/", "http://127.1/", "http://2130706433/", "http://0x7f000001/",
        "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/latest/",
        "http://[fe80::1%25eth0]/", "http://10.0.0.1/", "http:///nohost",
    ],
)  # fmt: skip
def test_check_url_host_refuses(url: str) -> None:
    with pytest.raises(ForbiddenAddress):
        check_url_host(url, allow_private=False)
    check_url_host(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    ["http://example.com/feed", "https://93.184.216.34/", "http://[2606:2800:220:1::1]:81/",
     "http://localhost.example.com/"],
)  # fmt: skip
def test_check_url_host_allows(url: str) -> None:
    check_url_host(url, allow_private=False)


def test_error_message_never_has_credentials() -> None:
    with pytest.raises(ForbiddenAddress) as info:
        check_url_host("http://alice:s3cret@127.0.0.1/", allow_private=False)
    assert "s3cret" not in str(info.value) and "127.0.0.1" in str(info.value)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.split("to=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def _serve(host: str) -> Iterator[str]:
    server = ThreadingHTTPServer((host, 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server() -> Iterator[str]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def server2() -> Iterator[str]:
    yield from _serve("127.0.0.2")


def _port(hostport: str) -> str:
    return hostport.rsplit(":", 1)[1]


def test_session_refuses_loopback_literal(server: str) -> None:
    with guarded_session(allow_private=False) as s, pytest.raises(ForbiddenAddress):
        s.get(f"http://{server}/", timeout=5)


def test_session_refuses_localhost_name_at_connect(server: str) -> None:
    with guarded_session(allow_private=False) as s, pytest.raises(ForbiddenAddress) as info:
        s.get(f"http://localhost:{_port(server)}/", timeout=5)
    assert "localhost" in str(info.value)
    # a ForbiddenAddress is also a requests.ConnectionError for generic handlers
    assert isinstance(info.value, requests.ConnectionError)


def test_session_refuses_https_before_handshake(server: str) -> None:
    with guarded_session(allow_private=False) as s, pytest.raises(ForbiddenAddress):
        s.get(f"https://localhost:{_port(server)}/", timeout=5)


def test_session_allow_private_fetches(server: str) -> None:
    with guarded_session(allow_private=True) as s:
        assert s.get(f"http://{server}/", timeout=5).text == "hello"
        assert s.get(f"http://localhost:{_port(server)}/", timeout=5).status_code == 200


def test_peer_address_is_checked_after_connect(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even if resolution-time filtering were fooled (DNS rebinding), getpeername refuses."""
    monkeypatch.setattr(netguard, "_filter", lambda host, addresses, allow: addresses)
    with guarded_session(allow_private=False) as s, pytest.raises(ForbiddenAddress) as info:
        s.get(f"http://localhost:{_port(server)}/", timeout=5)
    assert "connected to forbidden address 127.0.0.1" in str(info.value)


def test_every_redirect_hop_is_checked(
    server: str, server2: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Policy patched to forbid only 127.0.0.2: the first hop passes, the redirect does not."""
    monkeypatch.setattr(netguard, "is_forbidden_ip", lambda a: str(a) == "127.0.0.2")
    with guarded_session(allow_private=False) as s:
        assert s.get(f"http://{server}/", timeout=5).text == "hello"
        with pytest.raises(ForbiddenAddress):
            s.get(f"http://{server}/redirect?to=http://{server2}/", timeout=5)
        with pytest.raises(ForbiddenAddress):
            s.get(f"http://{server2}/", timeout=5)


def test_guarded_session_ignores_env_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    assert guarded_session(allow_private=False).trust_env is False
    assert guarded_session(allow_private=True).trust_env is True


def test_resolve_allowed() -> None:
    with pytest.raises(ForbiddenAddress):
        asyncio.run(resolve_allowed("localhost", 80, allow_private=False))
    assert "127.0.0.1" in asyncio.run(resolve_allowed("localhost", 80, allow_private=True))
    assert asyncio.run(resolve_allowed("8.8.8.8", 53, allow_private=False)) == ["8.8.8.8"]
