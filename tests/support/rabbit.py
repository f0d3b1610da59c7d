"""The real RabbitMQ on 127.0.0.1:5672: is it there, and clean up a test's namespace."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

HOST = "127.0.0.1"
PORT = 5672
AMQP_URL = os.environ.get("BROKER_HUB_TEST_AMQP_URL", f"amqp://guest:guest@{HOST}:{PORT}//")
VHOST = "/"


def rabbitmq_available(host: str = HOST, port: int = PORT, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on the AMQP port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_rabbitmq() -> None:
    """Fail the test (never skip) when RabbitMQ does not answer."""
    if not rabbitmq_available():
        pytest.fail(
            f"RabbitMQ is not answering on {HOST}:{PORT}. These tests never skip: "
            "start it with `make rabbitmq` (scripts/ensure-rabbitmq.sh).",
            pytrace=False,
        )


def _rabbitmqctl_names(what: str, vhost: str = VHOST) -> list[str]:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    result = subprocess.run(
        [ctl, what, "-q", "--no-table-headers", "-p", vhost, "name"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def list_names(prefix: str, vhost: str = VHOST) -> tuple[list[str], list[str]]:
    """(queues, exchanges) whose names start with ``prefix`` (via ``rabbitmqctl``, in parallel)."""
    with ThreadPoolExecutor(2) as pool:
        queues = pool.submit(_rabbitmqctl_names, "list_queues", vhost)
        exchanges = pool.submit(_rabbitmqctl_names, "list_exchanges", vhost)
        return (
            [n for n in queues.result() if n.startswith(prefix)],
            [n for n in exchanges.result() if n.startswith(prefix)],
        )


def delete_names(queues: list[str], exchanges: list[str], url: str = AMQP_URL) -> None:
    """Delete the named queues and exchanges over AMQP (missing ones are fine)."""
    if not queues and not exchanges:
        return
    from amqp.exceptions import AMQPError
    from kombu import Connection
    from kombu.exceptions import OperationalError

    errors = (AMQPError, OperationalError, OSError)

    with Connection(url, connect_timeout=5) as conn:
        channel = conn.channel()
        for kind, names in (("queue", queues), ("exchange", exchanges)):
            for name in names:
                try:
                    if kind == "queue":
                        channel.queue_delete(queue=name)
                    else:
                        channel.exchange_delete(exchange=name)
                except errors:
                    # A channel error closes the channel: open a fresh one and go on.
                    with contextlib.suppress(*errors):
                        channel.close()
                    channel = conn.channel()
        with contextlib.suppress(*errors):
            channel.close()


def delete_namespace(prefix: str, url: str = AMQP_URL, vhost: str = VHOST) -> tuple[int, int]:
    """Delete every queue and exchange whose name starts with ``prefix``.

    Returns (queues deleted, exchanges deleted). Does nothing if RabbitMQ is down.
    """
    if not prefix:
        raise ValueError("refusing to delete with an empty prefix")
    if not rabbitmq_available():
        return (0, 0)
    queues, exchanges = list_names(prefix, vhost)
    delete_names(queues, exchanges, url)
    return (len(queues), len(exchanges))
