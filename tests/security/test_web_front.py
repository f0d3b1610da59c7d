"""The web front under hostile clients (issue 15): bodies over the limit, slow bodies.

Each test runs against both servers the hub ships: the embedded werkzeug server of
``broker-hub run`` and Granian under ``broker-hub web`` (split mode, on the real RabbitMQ).
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from broker_hub.storage import Storage
from tests.security.helpers import FORM, Hub
from tests.support import rabbit
from tests.support.processes import free_port, start_hub

LIMIT = 4096  # HUB_MAX_REQUEST_BYTES of these hubs


SETTINGS = {"HUB_MAX_REQUEST_BYTES": str(LIMIT), "HUB_WEB_WORKERS": "1",
            "HUB_WEB_THREADS": "4", "HUB_WEB_BODY_TIMEOUT": "2"}  # fmt: skip


@contextlib.contextmanager
def _granian(tmp: Path) -> Iterator[Hub]:
    """``broker-hub web`` (Granian) on the real RabbitMQ, with SETTINGS."""
    assert rabbit.rabbitmq_available(), "RabbitMQ must answer on 127.0.0.1:5672"
    namespace = f"bht_{uuid.uuid4().hex[:8]}"
    env = {
        "HUB_BIND": f"127.0.0.1:{free_port()}",
        "HUB_BROKER_URL": rabbit.AMQP_URL,
        "HUB_NAMESPACE": namespace,
        "HUB_DATABASE_URL": f"sqlite:///{tmp / 'hub.sqlite3'}",
        "HUB_RATE_LIMIT_PER_MINUTE": "0",
        **SETTINGS,
    }
    url = f"http://{env['HUB_BIND']}/"
    process = start_hub("web", env, wait_health_url=url + "healthz", log_dir=tmp)
    storage = Storage.from_url(env["HUB_DATABASE_URL"])
    try:
        yield Hub(url, process, storage)
    finally:
        process.stop()
        storage.close()
        rabbit.delete_namespace(namespace)


@pytest.fixture(scope="module")
def granian(tmp_path_factory) -> Iterator[Hub]:
    with _granian(tmp_path_factory.mktemp("granian")) as hub:
        yield hub


@pytest.fixture(scope="module", params=["embedded", "granian"])
def front(request, hub_factory) -> Hub:
    """The hub endpoint served by one of the two servers."""
    if request.param == "embedded":
        return hub_factory(**SETTINGS)
    return request.getfixturevalue("granian")


def _address(hub: Hub) -> tuple[str, int]:
    parts = urlsplit(hub.url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _chunked_post(hub: Hub, chunks: list[bytes]) -> int:
    """POST ``chunks`` with Transfer-Encoding: chunked on a raw socket; the status code."""
    host, port = _address(hub)
    with socket.create_connection((host, port), timeout=15) as sock:
        head = (
            f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        ).encode()
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        with contextlib.suppress(OSError):  # the server may answer and close before the end
            sock.sendall(head + body)
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    return int(answer.split(b" ", 2)[1])


def test_a_chunked_body_over_the_limit_is_refused_not_cut(front: Hub) -> None:
    start = (
        b"hub.mode=subscribe&hub.topic=http%3A%2F%2Fexample.invalid%2Ff"
        b"&hub.callback=http%3A%2F%2Fexample.invalid%2Fcb&hub.pad="
    )
    pad = b"p" * (LIMIT - len(start))
    # The secret falls after the cut: cutting the body would accept a subscribe without it.
    status = _chunked_post(front, [start, pad, b"&hub.secret=s3cr3t-after-the-cut"])
    assert status == 413
    # At the limit exactly, and under it, the same request is read whole.
    fits = start + b"p" * (LIMIT - len(start) - len(b"&hub.secret=s")) + b"&hub.secret=s"
    assert len(fits) == LIMIT
    assert _chunked_post(front, [fits[:1000], fits[1000:]]) == 202
    assert _chunked_post(front, [b"hub.mode=publish&hub.url=http%3A%2F%2Fa.invalid%2F"]) == 204
    response = requests.post(front.url, data=b"x" * (LIMIT + 1), headers=FORM, timeout=10)
    assert response.status_code == 413  # Content-Length over the limit: refused up front


class _SlowBodies:
    """``n`` connections that declare a body and send it one byte a second, never finishing
    within the test (unless the server gives up on them)."""

    def __init__(self, hub: Hub, n: int, length: int) -> None:
        self.sockets: list[socket.socket] = []
        self.received = [b""] * n
        host, port = _address(hub)
        head = (
            f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {length}\r\n\r\nhub.mode=publish&hub.url="
        ).encode()
        for _ in range(n):
            sock = socket.create_connection((host, port), timeout=10)
            sock.sendall(head)
            self.sockets.append(sock)

    def trickle(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.send(b"a")

    def answers(self) -> list[bytes]:
        """What each connection got back so far (b"" when nothing yet)."""
        for i, sock in enumerate(self.sockets):
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                self.received[i] += sock.recv(4096)
        return list(self.received)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def test_slow_bodies_do_not_starve_the_web_front(front: Hub) -> None:
    # 20 connections, 5 times the front's 4 WSGI threads, each trickling a 4,000-byte body.
    slow = _SlowBodies(front, 20, 4000)
    try:
        for _ in range(3):  # they have all started and are being "read"
            slow.trickle()
            time.sleep(1)
        # A bounded wait, not a speed measurement: a starved front never answers these.
        assert requests.get(front.url + "healthz", timeout=10).status_code == 200
        slow.trickle()
        response = front.publish("http://example.invalid/feed", timeout=10)
        assert response.status_code == 204
        slow.trickle()
        response = front.subscribe("http://example.invalid/f", "http://example.invalid/cb")
        assert response.status_code == 202
    finally:
        slow.close()


def test_a_body_that_never_arrives_is_answered_408(granian: Hub) -> None:
    """Granian's front gives a body HUB_WEB_BODY_TIMEOUT (2 s here) to arrive. (The embedded
    server gives each connection a thread of its own: slow bodies cannot starve it.)"""
    slow = _SlowBodies(granian, 2, 4000)
    try:
        answers: list[bytes] = []
        for _ in range(10):
            slow.trickle()
            time.sleep(1)
            answers = slow.answers()
            if all(answers):
                break
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
    finally:
        slow.close()


def test_h2c_with_prior_knowledge_is_not_spoken(front: Hub) -> None:
    """With h2c one connection could carry hundreds of slow streams; the hub speaks HTTP/1.1."""
    host, port = _address(front)
    with socket.create_connection((host, port), timeout=10) as sock:
        # the HTTP/2 connection preface, then an empty SETTINGS frame
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        try:
            answer = sock.recv(64)
        except OSError:
            answer = b""
    # an HTTP/2 server answers with its own SETTINGS frame (type 4 in the fourth byte)
    assert not (len(answer) >= 9 and answer[3] == 4), answer
