"""Helpers of the security tests: a loopback alias, the form content type, waits.

``Hub`` (a running hub whose helpers leave the status to the test) now lives in
:mod:`tests.support.hubs`; it is re-exported here for the tests that import it from here.
"""

from __future__ import annotations

import socket

from tests.support.hubs import Hub, quiet_period

__all__ = ["FORM", "Hub", "loopback_alias", "quiet"]

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


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
    quiet_period(seconds)
