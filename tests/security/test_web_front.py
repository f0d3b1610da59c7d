"""The web front under hostile clients (issue 15): bodies over the limit, slow bodies.

Each test runs against both servers the hub ships: the embedded werkzeug server of
``broker-hub run`` and Granian under ``broker-hub web`` (split mode, on the real RabbitMQ).
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.security.helpers import FORM, Hub
from tests.support import rabbit
from tests.support.processes import free_port, start_hub

LIMIT = 4096  # HUB_MAX_REQUEST_BYTES of these hubs


@pytest.fixture(scope="module", params=["embedded", "granian"])
def front(request, hub_factory, tmp_path_factory) -> Iterator[Hub]:
    """The hub endpoint served by one of the two servers."""
    settings = {"HUB_MAX_REQUEST_BYTES": str(LIMIT), "HUB_WEB_WORKERS": "1",
                "HUB_WEB_THREADS": "4"}  # fmt: skip
    if request.param == "embedded":
        yield hub_factory(**settings)
        return
    assert rabbit.rabbitmq_available(), "RabbitMQ must answer on 127.0.0.1:5672"
    tmp = tmp_path_factory.mktemp("granian")
    namespace = f"bht_{uuid.uuid4().hex[:8]}"
    env = {
        "HUB_BIND": f"127.0.0.1:{free_port()}",
        "HUB_BROKER_URL": rabbit.AMQP_URL,
        "HUB_NAMESPACE": namespace,
        "HUB_DATABASE_URL": f"sqlite:///{tmp / 'hub.sqlite3'}",
        "HUB_RATE_LIMIT_PER_MINUTE": "0",
        **settings,
    }
    url = f"http://{env['HUB_BIND']}/"
    process = start_hub("web", env, wait_health_url=url + "healthz", log_dir=tmp)
    from broker_hub.storage import Storage

    storage = Storage.from_url(env["HUB_DATABASE_URL"])
    try:
        yield Hub(url, process, storage)
    finally:
        process.stop()
        storage.close()
        rabbit.delete_namespace(namespace)


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
