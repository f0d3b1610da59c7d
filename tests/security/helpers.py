"""Helpers of the security tests: a handle on a running hub, a loopback alias, waits."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import requests

from broker_hub.storage import Storage
from tests.support.processes import HubProcess

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Hub:
    """A running embedded hub: its URL, process and database."""

    url: str  # the hub endpoint, with its trailing slash
    process: HubProcess
    storage: Storage

    def post(self, data: object = None, **kwargs: object) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return requests.post(self.url, data=data, **kwargs)  # type: ignore[arg-type]

    def subscribe(self, topic: str, callback: str, **extra: str) -> requests.Response:
        pairs = [("hub.mode", "subscribe"), ("hub.topic", topic), ("hub.callback", callback)]
        return self.post(pairs + [(f"hub.{k}", v) for k, v in extra.items()])

    def publish(self, *topics: str, **kwargs: object) -> requests.Response:
        return self.post([("hub.mode", "publish")] + [("hub.url", t) for t in topics], **kwargs)

    def healthy(self) -> bool:
        return requests.get(self.url + "healthz", timeout=10).status_code == 200

    def metrics(self) -> str:
        return requests.get(self.url + "metrics", timeout=10).text

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on /metrics (0 when absent)."""
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        head = f"{name}{{{wanted}}}" if labels else name
        for line in self.metrics().splitlines():
            if line.startswith(head + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def subscription(self, topic: str, callback: str) -> object:
        return self.storage.find_subscription(topic, callback)

    def log(self) -> str:
        return self.process.log()


def loopback_alias() -> str:
    """A host name that resolves to loopback through /etc/hosts (no DNS) yet is no local name.

    The machine's own host name usually does; the test that needs it fails loudly otherwise.
    """
    for name in (socket.gethostname(), "vm", "runsc"):
        try:
            infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
        except OSError:
            continue
        if name.lower() != "localhost" and all(i[4][0].startswith("127.") for i in infos):
            return name
    raise AssertionError("no host name resolving to 127.0.0.1 found in /etc/hosts")


def quiet(seconds: float = 1.0) -> None:
    """Give the hub time to do something it must not do."""
    time.sleep(seconds)
