"""SSRF policy: which addresses an open hub must never reach, and clients that enforce it.

The policy is applied to the address actually connected to, so a name that resolves (or
re-resolves, DNS rebinding) to a forbidden address is refused at connect time, on every
redirect hop. ``check_url_host`` is the cheap syntactic pre-check used at subscribe time and
before each request of the deliverer, whose client (``workers.http11``) connects only to
addresses that ``resolve_allowed`` let through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as u3conn

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ForbiddenAddress(requests.exceptions.ConnectionError):
    """An outbound request would reach an address the policy forbids.

    It is an ``OSError`` and a ``requests.ConnectionError`` (so generic ``requests`` handlers
    see it); the guarded ``requests`` session raises it unwrapped. The message names host and
    address only.
    """


_EXTRA_FORBIDDEN = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "169.254.169.254/32",  # cloud metadata
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4COMPAT = ipaddress.IPv6Network("::/96")
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def _to_ip(address: str | IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return address
    return ipaddress.ip_address(address.strip().strip("[]"))


def _plain_forbidden(ip: IPAddress) -> bool:
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or any(ip.version == net.version and ip in net for net in _EXTRA_FORBIDDEN)
    )


def is_forbidden_ip(address: str | IPAddress) -> bool:
    """True when the policy forbids connecting to ``address`` (unparsable input counts too).

    IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by
    the embedded address as well; Teredo is always forbidden.
    """
    try:
        ip = _to_ip(address)
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(ip.packed)  # drop any %scope
        if ip.ipv4_mapped is not None:
            return _plain_forbidden(ip.ipv4_mapped)
        if ip in _NAT64 or (ip in _V4COMPAT and int(ip) > 1):
            return _plain_forbidden(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.teredo is not None:
            return True
        if ip.sixtofour is not None and _plain_forbidden(ip.sixtofour):
            return True
    return _plain_forbidden(ip)


def _literal_ip(host: str) -> IPAddress | None:
    """The address a host string denotes without DNS (including legacy forms like ``127.1``)."""
    try:
        return _to_ip(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host)) if ":" not in host else None
    except OSError:
        return None


def check_url_host(url: str, *, allow_private: bool) -> None:
    """Raise ForbiddenAddress when the URL's host is a forbidden IP literal or a local name.

    Local names are ``localhost`` and ``*.localhost`` (and a few aliases). No DNS is
    resolved, so this is cheap (subscribe time); connection-time checks do the rest.
    """
    if allow_private:
        return
    try:
        host = urlsplit(url).hostname
    except ValueError as exc:
        raise ForbiddenAddress(f"unparsable URL host: {exc}") from None
    if not host:
        raise ForbiddenAddress("URL has no host")
    name = host.rstrip(".").lower()
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        raise ForbiddenAddress(f"host {host!r} is a local name")
    ip = _literal_ip(name)
    if ip is not None and is_forbidden_ip(ip):
        raise ForbiddenAddress(f"host {host!r} is forbidden address {ip}")


def _filter(host: str, addresses: list[str], allow_private: bool) -> list[str]:
    if allow_private:
        return addresses
    allowed = [a for a in addresses if not is_forbidden_ip(a)]
    if not allowed:
        shown = ", ".join(addresses) or "nothing"
        raise ForbiddenAddress(f"host {host!r} resolves only to forbidden addresses ({shown})")
    return allowed


async def resolve_allowed(host: str, port: int, *, allow_private: bool) -> list[str]:
    """Resolve ``host`` and return its allowed addresses (in resolver order, deduplicated)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    return _filter(host, addresses, allow_private)


class _GuardedConnMixin:
    """Resolve, connect only to allowed addresses, then verify the peer address."""

    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any
    _dns_host: str  # the host as given, for DNS (urllib3 keeps any trailing dot here)

    def _new_conn(self) -> socket.socket:
        try:
            family = u3conn.allowed_gai_family()
            infos = socket.getaddrinfo(self._dns_host, self.port, family, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        last: Exception | None = None
        for address in _filter(self.host, addresses, False):
            try:
                sock = u3conn.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                last = ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                )
                last.__cause__ = exc
                continue
            except OSError as exc:
                last = NewConnectionError(self, f"Failed to establish a new connection: {exc}")  # type: ignore[arg-type]
                last.__cause__ = exc
                continue
            peer = str(sock.getpeername()[0])
            if is_forbidden_ip(peer):
                sock.close()
                raise ForbiddenAddress(f"host {self.host!r} connected to forbidden address {peer}")
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        assert last is not None
        raise last


class GuardedHTTPConnection(_GuardedConnMixin, HTTPConnection):
    """urllib3 HTTP connection enforcing the policy."""


class GuardedHTTPSConnection(_GuardedConnMixin, HTTPSConnection):
    """urllib3 HTTPS connection enforcing the policy (before the TLS handshake)."""


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


_POOL_CLASSES = {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}


def _find_forbidden(exc: BaseException) -> ForbiddenAddress | None:
    """The ForbiddenAddress buried in urllib3/requests wrapping, if any."""
    todo: list[Any] = [exc]
    seen: set[int] = set()
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ForbiddenAddress):
            return item
        todo.extend((item.__cause__, item.__context__, getattr(item, "reason", None)))
        todo.extend(item.args)
    return None


class GuardedAdapter(HTTPAdapter):
    """HTTPAdapter whose pools use guarded connections; re-raises ForbiddenAddress unwrapped."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().send(request, *args, **kwargs)
        except requests.exceptions.RequestException as exc:
            forbidden = _find_forbidden(exc)
            if forbidden is None or forbidden is exc:
                raise
            raise forbidden from exc


def guarded_session(*, allow_private: bool, pool_maxsize: int = 10) -> requests.Session:
    """A requests.Session that refuses forbidden peers on every connection and redirect hop.

    Each new connection resolves the host, connects only to allowed addresses and checks
    ``sock.getpeername()`` before any byte (or TLS handshake) is sent. Environment proxies
    are ignored (``trust_env = False``): a proxy would hide the real peer. With
    ``allow_private=True`` it is a plain session with the given pool size.
    """
    session = requests.Session()
    if allow_private:
        adapter: HTTPAdapter = HTTPAdapter(pool_maxsize=pool_maxsize)
    else:
        adapter = GuardedAdapter(pool_maxsize=pool_maxsize)
        session.trust_env = False
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
